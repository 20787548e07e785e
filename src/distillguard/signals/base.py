"""The protocol every per-request signal follows, and the chain that runs them.

A signal is a small object with a `name`, the output `columns` it adds, and a vectorized
`transform(batch)` over an Arrow batch of events returning those columns for the same rows.
Signals are pure and row-wise, so the same code runs in DuckDB locally and in Spark's
`mapInArrow` at scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa


class Signal(Protocol):
    name: str
    columns: pa.Schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


def apply_signals(batch: pa.RecordBatch, signals: Sequence[Signal], out_schema: pa.Schema) -> pa.RecordBatch:
    """Run each signal on the batch and assemble `out_schema` (request_id plus every column)."""
    columns: dict[str, pa.Array] = {"request_id": batch.column("request_id")}
    for signal in signals:
        result = signal.transform(batch)
        if result.num_rows != batch.num_rows:
            raise ValueError(f"signal {signal.name} returned {result.num_rows} rows for {batch.num_rows}")
        for name in result.schema.names:
            columns[name] = result.column(name)
    arrays = [
        columns[f.name].cast(f.type) if f.name in columns else pa.nulls(batch.num_rows, f.type)
        for f in out_schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=out_schema)
