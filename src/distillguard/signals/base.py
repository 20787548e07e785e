"""The protocol every per-request signal follows, and the chain that runs them.

A signal is a small object with a `name`, the output `columns` it adds, and a vectorized
`transform(batch)` over an Arrow batch of events returning those columns for the same rows.
Signals are pure and row-wise, so the same code runs in DuckDB locally and in Spark's
`mapInArrow` at scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc


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


def per_distinct(values: pa.Array, fn: Callable[[list[Any]], list[Any]], out_type: pa.DataType) -> pa.Array:
    """Compute `fn` once per distinct value (null included) and spread the results back onto every row.

    Prompts, IPs and user agents repeat heavily in gateway logs, so row-wise Python work is paid per
    distinct value only.
    """
    distinct = pc.unique(values)
    results = pa.array(fn(distinct.to_pylist()), type=out_type)
    return results.take(pc.index_in(values, value_set=distinct))


def prompt_text(batch: pa.RecordBatch, with_system: bool = False) -> pa.Array:
    """The user prompt, optionally preceded by the system prompt; null where no prompt was logged."""
    user = batch.column("user_text")
    if with_system:
        # null unless both are present; (null_handling="skip" drops rows on all-null input in pyarrow 26)
        joined = pc.binary_join_element_wise(batch.column("system_prompt"), user, "\n")
        user = pc.coalesce(joined, user)
    return pc.if_else(batch.column("content_present"), user, pa.nulls(len(user), pa.string()))
