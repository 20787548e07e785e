"""The embedded store: one DuckDB file, reached through Ibis so the same queries run on Spark.

Appends are idempotent on `request_id`: a file ingested twice adds nothing the second time,
and a request id seen twice within one file is kept once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from ibis.expr.types import Table

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

EVENTS = "events"
ACCOUNTS = "accounts"
# Tables the pipeline derives from events, in the order its stages write them.
REQUEST_SIGNALS = "request_signals"
ACCOUNT_FEATURES = "account_features"
ACCOUNT_EDGES = "account_edges"
ACCOUNT_SCORES = "account_scores"
_STAGING = "_staging_events"


class Store:
    """A DuckDB file (or ':memory:') holding `events` and `accounts` tables in the canonical schema."""

    def __init__(self, path: Path | str = ":memory:", con: Any = None) -> None:
        self.path = str(path)
        self.con = con if con is not None else ibis.duckdb.connect(self.path)
        tables = set(self.con.list_tables())
        if EVENTS not in tables:
            self.con.create_table(EVENTS, schema=ibis.Schema.from_pyarrow(EVENT_SCHEMA))
        if ACCOUNTS not in tables:
            self.con.create_table(ACCOUNTS, schema=ibis.Schema.from_pyarrow(ACCOUNT_SCHEMA))

    @property
    def events(self) -> Table:
        return self.con.table(EVENTS)

    @property
    def accounts(self) -> Table:
        return self.con.table(ACCOUNTS)

    def append_events(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Stage the batches, then insert the request ids not stored yet; returns rows added."""
        before = self.count_events()
        self.con.drop_table(_STAGING, force=True)
        # In memory: staged rows are read once, by the insert below, so they need no write to the file.
        self.con.create_table(_STAGING, schema=ibis.Schema.from_pyarrow(EVENT_SCHEMA), temp=True)
        for batch in batches:
            if batch.num_rows:
                self.con.insert(_STAGING, pa.Table.from_batches([batch]))
        staged = self.con.table(_STAGING)
        if staged.request_id.nunique().execute() != staged.count().execute():
            # Only a file that repeats request ids pays for the per-id aggregation.
            staged = staged.distinct(on="request_id", keep="first")
        new = staged.anti_join(self.events, "request_id")
        self.con.insert(EVENTS, new.select(*EVENT_SCHEMA.names))
        self.con.drop_table(_STAGING)
        return self.count_events() - before

    def upsert_accounts(self, table: pa.Table) -> int:
        """Replace stored accounts by id with the given rows (the newest account file wins)."""
        table = table.select(ACCOUNT_SCHEMA.names).cast(ACCOUNT_SCHEMA)
        incoming = ibis.memtable(table).distinct(on="account_id", keep="last")
        kept = self.accounts.anti_join(incoming, "account_id").to_pyarrow().cast(ACCOUNT_SCHEMA)
        merged = pa.concat_tables([kept, incoming.to_pyarrow().cast(ACCOUNT_SCHEMA)])
        self.con.insert(ACCOUNTS, merged, overwrite=True)
        return table.num_rows

    def count_events(self) -> int:
        return int(self.events.count().execute())

    def close(self) -> None:
        self.con.disconnect()
