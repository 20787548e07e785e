"""Parquet files already in the canonical event schema (what `distillguard` itself exports).

Read with `iter_batches`, so memory follows the batch size, not the file. Missing
optional columns become null; a missing required column or one that cannot be cast to its
canonical type rejects the file with the column named; a null in a required column rejects that
row (line = 1-based row number).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.io.base import ReadOptions, RejectSink
from distillguard.schema import EVENT_SCHEMA

PARQUET_MAGIC = b"PAR1"


def is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == PARQUET_MAGIC


class ParquetReader:
    name = "parquet"

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool:
        return first is None and is_parquet(path)

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]:
        # A column not read is not decompressed: responses are most of a log's bytes.
        skip = () if options.keep_responses else ("response_text",)
        yield from read_parquet(path, rejects, EVENT_SCHEMA, options.batch_rows, skip)


def read_parquet(
    path: Path, rejects: RejectSink, schema: pa.Schema, batch_rows: int, skip: tuple[str, ...] = ()
) -> Iterator[pa.RecordBatch]:
    """Batches of `schema` from a Parquet file whose columns are a subset or superset of it; the
    optional columns in `skip` are not read (null)."""
    required = [f.name for f in schema if not f.nullable]
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        rejects.add(path, 0, "<file>", f"unreadable Parquet file: {exc}")
        return
    missing = [n for n in required if n not in pf.schema_arrow.names]
    if missing:
        rejects.add(path, 0, missing[0], f"required column(s) missing: {', '.join(missing)}")
        return
    present = [f.name for f in schema if f.name in pf.schema_arrow.names and f.name not in skip]
    offset = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=present):
            conformed = _conform(path, batch, offset, rejects, schema, required)
            offset += batch.num_rows
            if conformed.num_rows:
                yield conformed
    except _BadColumn as exc:
        rejects.add(path, offset + 1, exc.column, exc.reason)
    except (OSError, pa.ArrowException) as exc:
        rejects.add(path, offset + 1, "<file>", f"unreadable Parquet data: {exc}")


class _BadColumn(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column, self.reason = column, reason


def _conform(
    path: Path,
    batch: pa.RecordBatch,
    offset: int,
    rejects: RejectSink,
    schema: pa.Schema,
    required: list[str],
) -> pa.RecordBatch:
    """Cast to `schema`, fill absent optional columns, drop rows with a null required field."""
    arrays = []
    for f in schema:
        if f.name not in batch.schema.names:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(f.name)
        # Finer timestamps (ns) are truncated to the canonical microseconds, not refused.
        safe = not (pa.types.is_timestamp(column.type) and pa.types.is_timestamp(f.type))
        try:
            arrays.append(column if column.type == f.type else column.cast(f.type, safe=safe))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _BadColumn(f.name, f"cannot read {column.type} as {f.type}: {exc}") from exc
    keep = pa.array([True] * batch.num_rows)
    for name in required:
        valid = pc.is_valid(arrays[schema.get_field_index(name)])
        for i in pc.indices_nonzero(pc.and_(keep, pc.invert(valid))).to_pylist():
            rejects.add(path, offset + i + 1, name, "required field missing")
        keep = pc.and_(keep, valid)
    nullable = pa.schema([f.with_nullable(True) for f in schema])
    table = pa.Table.from_arrays(arrays, schema=nullable).filter(keep)
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=schema)
