"""Helpers shared by the reader tests: fixture paths, compressed copies, reading a file whole."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import zstandard

from distillguard.io import ReadOptions, RejectSink, read_events
from distillguard.schema import EVENT_SCHEMA

FIXTURES = Path(__file__).parent.parent / "fixtures" / "logs"


def read_all(
    path: Path, options: ReadOptions | None = None, fmt: str | None = None
) -> tuple[pa.Table, RejectSink]:
    rejects = RejectSink()
    batches = list(read_events(path, rejects, options, fmt))
    for b in batches:
        assert b.schema.equals(EVENT_SCHEMA)
    return pa.Table.from_batches(batches, schema=EVENT_SCHEMA), rejects


def gzip_copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def zstd_copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    return dst
