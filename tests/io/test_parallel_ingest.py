"""Ingest on several processes (blocks of lines converted by the signal workers) gives the events and
rejects of ingest in one process: same rows in file order, same rejects with the same line numbers,
for plain, gzip and zstd logs and a truncated gzip log."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import zstandard
from io_helpers import FIXTURES

from distillguard.io import ReadOptions, RejectSink
from distillguard.io.blocks import iter_blocks
from distillguard.pipeline import file_events
from distillguard.schema import EVENT_SCHEMA
from distillguard.signals.workers import SignalWorkers


@pytest.fixture(scope="module")
def workers() -> SignalWorkers:
    with SignalWorkers(2) as pool:
        yield pool


def _log_lines() -> bytes:
    records = [orjson.loads(line) for line in (FIXTURES / "litellm_payloads.jsonl").read_bytes().splitlines()]
    lines: list[bytes] = []
    for i in range(300):
        rec = dict(records[i % len(records)], id=f"req-{i}")
        lines.append(json.dumps(rec).encode())
        if i % 37 == 0:
            lines += [b"not json", b"", b"   ", b"[1, 2]", b'{"standard_logging_object": 3}', b"\xff\xfe"]
    return b"\n".join(lines)  # no newline after the last line


def _events(path: Path, workers: SignalWorkers | None) -> tuple[pa.Table, list]:
    rejects = RejectSink()
    options = ReadOptions(batch_rows=50)
    table = pa.Table.from_batches(list(file_events(path, rejects, options, workers)), schema=EVENT_SCHEMA)
    return table, rejects.rejects


_COMPRESS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "truncated-gzip": lambda b: gzip.compress(b)[:-300],
}


@pytest.mark.parametrize("kind", list(_COMPRESS))
def test_blocks_on_workers_equal_one_process(
    tmp_path: Path, workers: SignalWorkers, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr("distillguard.io.blocks.BLOCK_BYTES", 20_000)  # many blocks, some mid-batch
    path = tmp_path / "litellm.log"
    path.write_bytes(_COMPRESS[kind](_log_lines()))
    want, want_rejects = _events(path, None)
    got, got_rejects = _events(path, workers)
    assert want.num_rows > 100 and len(want_rejects) > 20
    assert got.equals(want)
    assert got_rejects == want_rejects
    assert len(list(iter_blocks(path, tmp_path))) > 5  # the file was split into blocks
    assert ("<file>" in {r.field for r in want_rejects}) == (kind == "truncated-gzip")


@pytest.mark.parametrize("block_bytes", [1, 13, 1000, 10**6])
def test_blocks_cover_every_line_once(tmp_path: Path, block_bytes: int) -> None:
    body = b"".join(b'{"n": %d}\n' % i + (b"\n" if i % 3 == 0 else b"") for i in range(2000))
    path = tmp_path / "x.jsonl"
    long = b'{"pad": "' + b"x" * 5000 + b'"}\n'  # longer than a block
    path.write_bytes(body[:7000] + long + long + body[7000:] + b'{"n": "last"}')
    sink = RejectSink()
    lines, before = [], 0
    for block in iter_blocks(path, tmp_path, block_bytes):
        numbered, count = block.lines(sink)
        lines += [(before + n, line) for n, line in numbered]
        before += count
    with path.open("rb") as fh:
        want = [(n, line) for n, line in enumerate(fh, start=1) if line.strip()]
    assert lines == want and not sink.rejects


def test_a_log_that_shrinks_under_a_block_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # Blocks are mapped from the file, and a mapped page past a shrunken file's end would kill the
    # process: a log truncated (rotated) after its blocks were found must fail with a clear error.
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(5000)))
    blocks = list(iter_blocks(path, tmp_path, 10_000))
    path.write_bytes(b'{"n": 0}\n')
    with pytest.raises(OSError, match="shrank"):
        blocks[-1].lines(RejectSink())
