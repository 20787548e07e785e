"""Cross-account context: what account features need to know about every other account.

Three account features count other accounts: how many accounts share each template
(`template_shared_*`) and each IP prefix (`prefix_accounts_mean`), and when each model was first
seen (`new_model_early_share`). A scan of one partition of the accounts (by account hash, as a
scaled-out run cuts them) sees only its own accounts, so it computes them from partial counts.

A partitioned run therefore works in two passes:
1. each partition computes its partial context (`CrossAccountContext.of`), cheap aggregates;
2. the partials are merged (`merge`: sums of account counts, since partitions hold disjoint
   accounts, and the earliest first sighting), and every partition computes its features with
   the merged context (`features.account_features(..., context=...)`).

Features, scores and verdicts then equal the single full run's, account for account. Campaigns
need one more pass over all partitions at once (`pipeline.link_partitions`), since an edge may join
accounts of two partitions. `bench/slice.py` measures both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import mmh3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from distillguard.io import ReadOptions

_FILES = ("templates", "prefixes", "models")
_DAY = 86400.0


@dataclass(frozen=True)
class CrossAccountContext:
    """Accounts per template and per IP prefix, and each model's first sighting (epoch seconds)."""

    templates: pa.Table  # template_id, tpl_accounts
    prefixes: pa.Table  # ip_prefix, pfx_accounts
    models: pa.Table  # model_requested, model_first

    @classmethod
    def of(cls, requests: ir.Table) -> CrossAccountContext:
        """The context of one set of accounts, from `features.request_table` rows."""
        return cls(*(t.to_pyarrow() for t in context_tables(requests)))

    @classmethod
    def merge(cls, parts: Sequence[CrossAccountContext]) -> CrossAccountContext:
        """The context of the union of disjoint sets of accounts."""

        def combine(tables: list[pa.Table], key: str, value: str, how: str) -> pa.Table:
            both = pa.concat_tables(tables)
            out = both.group_by(key, use_threads=False).aggregate([(value, how)])
            return out.rename_columns([key, value]).select([key, value])

        return cls(
            combine([p.templates for p in parts], "template_id", "tpl_accounts", "sum"),
            combine([p.prefixes for p in parts], "ip_prefix", "pfx_accounts", "sum"),
            combine([p.models for p in parts], "model_requested", "model_first", "min"),
        )

    def tables(self) -> tuple[ir.Table, ir.Table, ir.Table]:
        """The three tables as Ibis expressions, shaped as `context_tables` returns them."""
        return ibis.memtable(self.templates), ibis.memtable(self.prefixes), ibis.memtable(self.models)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in zip(_FILES, (self.templates, self.prefixes, self.models), strict=True):
            pq.write_table(table, directory / f"{name}.parquet")

    @classmethod
    def load(cls, directory: Path) -> CrossAccountContext:
        missing = [n for n in _FILES if not (directory / f"{n}.parquet").exists()]
        if missing:
            raise FileNotFoundError(
                f"{directory}: no cross-account context ({', '.join(missing)}.parquet missing)"
            )
        return cls(*(pq.read_table(directory / f"{n}.parquet") for n in _FILES))


def context_tables(requests: ir.Table) -> tuple[ir.Table, ir.Table, ir.Table]:
    """Accounts per template, accounts per IP prefix and each model's first sighting, as
    expressions over `features.request_table` rows."""
    r = requests
    return (
        r.group_by("template_id").agg(tpl_accounts=r.account_id.nunique()),
        r.group_by("ip_prefix").agg(pfx_accounts=r.account_id.nunique()),
        r.group_by("model_requested").agg(model_first=r.ts.min()),
    )


def with_release(models: ir.Table) -> ir.Table:
    """Models with `model_released`: first seen a day or more after the earliest model, so released
    during the window. The start is taken from `models` itself: a reduction of the requests bound
    here would be rebound to the table they are joined to, comparing each model with its own first use."""
    return models.mutate(model_released=models.model_first > models.model_first.min() + _DAY)


def account_partition(account_ids: pa.Array | pa.ChunkedArray, parts: int) -> pa.Array:
    """Partition number of each account: mmh3 (seed 0) of the id, modulo `parts`; the same on every
    engine and machine."""
    return pa.array([mmh3.hash(a, 0, signed=False) % parts for a in account_ids.to_pylist()], pa.int64())


def write_partitions(log: Path, out: Path, parts: int, options: ReadOptions | None = None) -> list[Path]:
    """The log's events cut into `parts` canonical Parquet files (out/part-N.parquet) by account."""
    from distillguard.io import ReadOptions, RejectSink, read_events

    chunks: list[list[pa.RecordBatch]] = [[] for _ in range(parts)]
    for batch in read_events(log, RejectSink(), options or ReadOptions()):
        part = account_partition(batch.column("account_id"), parts)
        for i in range(parts):
            chunks[i].append(batch.filter(pc.equal(part, i)))
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"part-{i}.parquet" for i in range(parts)]
    for path, batches in zip(paths, chunks, strict=True):
        pq.write_table(pa.Table.from_batches(batches), path)
    return paths
