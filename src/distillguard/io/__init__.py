"""Readers for the log formats distillguard understands, and format sniffing.

`read_events(path, ...)` picks the reader from the file's content (never from its extension
alone) and yields canonical event batches; unreadable records land in the `RejectSink`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from distillguard.io.base import Reader, ReadOptions, RejectSink, first_json_record
from distillguard.io.litellm import LiteLLMReader
from distillguard.io.openai_batch import OpenAIBatchReader
from distillguard.io.otel import OTelReader
from distillguard.io.parquet import ParquetReader, is_parquet
from distillguard.io.spendlogs import SpendLogsReader

READERS: dict[str, Reader] = {
    r.name: r
    for r in (LiteLLMReader(), SpendLogsReader(), OpenAIBatchReader(), OTelReader(), ParquetReader())
}


def detect_format(path: Path) -> str | None:
    """Name of the reader whose `sniff` accepts the file, or None."""
    first = None if is_parquet(path) else first_json_record(path)
    for reader in READERS.values():
        if reader.sniff(path, first):
            return reader.name
    return None


def read_events(
    path: Path,
    rejects: RejectSink,
    options: ReadOptions | None = None,
    fmt: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Canonical event batches from one log file; an unknown format is one reject, not a crash."""
    options = options or ReadOptions()
    name = fmt or detect_format(path)
    if name is None or name not in READERS:
        rejects.add(path, 0, "<file>", f"unknown log format{f' {fmt!r}' if fmt else ''}")
        return
    yield from READERS[name].read(path, rejects, options)


__all__ = ["READERS", "ReadOptions", "RejectSink", "detect_format", "read_events"]
