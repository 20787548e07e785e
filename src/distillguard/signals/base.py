"""The protocol every per-request signal follows, and the chain that runs them.

A signal is a small object with a `name`, the output `columns` it adds, a vectorized
`transform(batch)` over an Arrow batch of events returning those columns for the same rows, and
`row(event)`, the same columns for one event dict. Signals are pure and row-wise, so the same code
runs in DuckDB locally, in Spark's `mapInArrow` at scale, and per request at the gateway: `row`
calls the very function that `transform` applies per distinct value, without the Arrow round trip
that costs more than the work on a single request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import mmh3
import pyarrow as pa
import pyarrow.compute as pc


class Signal(Protocol):
    name: str
    columns: pa.Schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]: ...


def apply_signals(
    batch: pa.RecordBatch,
    signals: Sequence[Signal],
    out_schema: pa.Schema,
    carried: Sequence[str] = ("request_id",),
) -> pa.RecordBatch:
    """Run each signal on the batch and assemble `out_schema`: the batch's `carried` columns (the
    request id, or signal columns computed before) and every signal's columns; null where absent."""
    columns: dict[str, pa.Array] = {name: batch.column(name) for name in carried}
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
    encoded = pc.dictionary_encode(values, null_encoding="encode")  # one hashing pass for both
    results = pa.array(fn(encoded.dictionary.to_pylist()), type=out_type)
    return results.take(encoded.indices)


_SEED = 20260401


class DistinctCache:
    """`fn` over a list of values, remembered across batches under a 128-bit hash of each value.

    Prompts recur across the batches of a long scan (wrappers, popular questions, retries), so a
    text signal is computed once per prompt per scan rather than once per batch. `fn` must be
    row-wise: its result for a value may not depend on the other values in the list. The table is
    bounded; when full it is simply cleared.
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], limit: int = 200_000) -> None:
        self.fn = fn
        self.limit = limit
        self.results: dict[int | None, Any] = {}

    def __call__(self, values: list[str | None]) -> list[Any]:
        keys = [_key(v) for v in values]
        missing = {k: v for k, v in zip(keys, values, strict=True) if k not in self.results}
        if len(self.results) + len(missing) > self.limit:
            self.results = {}
            missing = dict(zip(keys, values, strict=True))
        if missing:
            self.results.update(zip(missing, self.fn(list(missing.values())), strict=True))
        return [self.results[k] for k in keys]

    def one(self, value: str | None) -> Any:
        """`self([value])[0]`, without the list work: the gateway asks for one value at a time."""
        key = _key(value)
        found = self.results.get(key, _MISSING)
        if found is _MISSING:
            if len(self.results) >= self.limit:
                self.results = {}
            found = self.results[key] = self.fn([value])[0]
        return found


_MISSING = object()


# The last text hashed and its key: an event's text signals look up the same prompt object (when it
# has no system prompt), so it is hashed once. One tuple, rebound whole, so threads cannot mix pairs.
_last: tuple[str | None, int | None] = (None, None)


def _key(value: str | None) -> int | None:
    global _last
    if value is None:
        return None
    last = _last
    if value is last[0]:
        return last[1]
    # Hashed as bytes: mmh3 crashes on a str holding a lone surrogate, which JSON can spell.
    key = mmh3.hash128(value.encode("utf-8", "surrogatepass"), _SEED)
    _last = (value, key)
    return key


def prompt_text(batch: pa.RecordBatch, with_system: bool = False) -> pa.Array:
    """The user prompt, optionally preceded by the system prompt; null where no prompt was logged."""
    user = batch.column("user_text")
    if with_system:
        # null unless both are present; (null_handling="skip" drops rows on all-null input in pyarrow 26)
        joined = pc.binary_join_element_wise(batch.column("system_prompt"), user, "\n")
        user = pc.coalesce(joined, user)
    return pc.if_else(batch.column("content_present"), user, pa.nulls(len(user), pa.string()))


def prompt_of(event: Mapping[str, Any], with_system: bool = False) -> str | None:
    """`prompt_text` of one event dict."""
    if not event.get("content_present"):
        return None
    user, system = event.get("user_text"), event.get("system_prompt")
    return f"{system}\n{user}" if with_system and user is not None and system is not None else user
