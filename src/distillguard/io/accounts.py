"""The accounts table (CSV with a header row, or Parquet): who owns each billing account.

Columns are `ACCOUNT_SCHEMA`'s; only `account_id` is required. A row with a value of the wrong
type is rejected with its line and field, the other rows are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.io.base import (
    DEFAULT_BATCH_ROWS,
    RecordError,
    RejectSink,
    as_bool,
    as_str,
    as_time,
    iter_csv_records,
)
from distillguard.io.parquet import is_parquet, read_parquet
from distillguard.schema import ACCOUNT_SCHEMA, rows_to_batch


def read_accounts(path: Path, rejects: RejectSink) -> pa.Table:
    """All good rows of an accounts file as an `ACCOUNT_SCHEMA` table; bad rows go to `rejects`."""
    if is_parquet(path):
        batches = list(read_parquet(path, rejects, ACCOUNT_SCHEMA, DEFAULT_BATCH_ROWS))
        return pa.Table.from_batches(batches, schema=ACCOUNT_SCHEMA)
    rows = []
    for lineno, raw, record in iter_csv_records(path, rejects):
        try:
            rows.append(account_row(record))
        except RecordError as exc:
            rejects.add(path, lineno, exc.field, exc.reason, raw)
    return pa.Table.from_batches([rows_to_batch(rows, ACCOUNT_SCHEMA)])


def account_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise one accounts row (country upper-case, e-mail reduced to its domain)."""
    account = as_str(record.get("account_id"), "account_id")
    if account is None:
        raise RecordError("account_id", "required field missing")
    country = as_str(record.get("country"), "country")
    if country is not None:
        country = country.strip().upper()
        if len(country) != 2 or not country.isascii() or not country.isalpha():
            raise RecordError("country", f"expected an ISO 3166-1 alpha-2 code, got {country!r:.20}")
    domain = as_str(record.get("email_domain"), "email_domain")
    if domain is not None:
        # Keep the domain only: a full address is personal data the analysis does not need.
        domain = domain.rsplit("@", 1)[-1].strip().lower() or None
    return {
        "account_id": account,
        "created_at": as_time(record.get("created_at"), "created_at"),
        "email_domain": domain,
        "payment_fingerprint": as_str(record.get("payment_fingerprint"), "payment_fingerprint"),
        "country": country,
        "account_type": as_str(record.get("account_type"), "account_type"),
        "verified": as_bool(record.get("verified"), "verified"),
    }
