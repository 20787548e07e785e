"""A log's lines in blocks that other processes read for themselves: ingest on every core.

Converting JSON lines to events is Python work per line, so one process converts on one core. The
pipeline hands blocks of lines to its worker processes, but not their bytes: a process that sends
tens of megabytes down a pipe, or receives them, needs its GIL back for every 64 KiB the pipe
carries, and a parent busy converting lines itself hands it back only every few milliseconds (a
worker's 20 MB result reached the parent 2.5 s after it was ready). A worker gets a `LineBlock`
instead: where the lines lie (a region of the log itself, or of a spill file holding a compressed
log's text), and it reads them itself.
"""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from distillguard.io import READERS
from distillguard.io.base import (
    STREAM_ERRORS,
    Line,
    LineReader,
    ReadOptions,
    Reject,
    RejectSink,
    as_asked,
    is_compressed,
    open_binary,
)

BLOCK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class LineBlock:
    """Consecutive lines of `log`, held in `source` at `offset` (the log itself, or a spill file).

    A block does not know the number of its first line (finding it would mean reading the file
    twice): its lines are numbered from 1, and whoever reads the blocks in order adds the lines of
    those before (`renumbered`)."""

    log: Path  # the file the lines come from, named in rejects
    source: Path
    offset: int
    length: int
    # A compressed stream that broke after the block's lines: a reject after theirs, as `iter_lines` adds it.
    broken: str | None = None

    def lines(self, rejects: RejectSink) -> tuple[list[tuple[int, Line]], int]:
        """The block's non-blank lines (number in the block, raw line, as `iter_lines` gives them) and
        how many lines it holds, blank ones included; a spill file is deleted once mapped.

        The lines are views of the block mapped from the file, not copies: reading 16 MB into bytes
        and splitting it copied every line twice, a fifth of the time it then took to parse them."""
        numbered: list[tuple[int, Line]] = []
        count = 0
        if self.length:
            mapped, pos = _mapped(self.source, self.offset, self.length)
            if self.source != self.log:
                self.source.unlink(missing_ok=True)
            view, end = memoryview(mapped), pos + self.length
            while pos < end:
                stop = mapped.find(b"\n", pos, end)
                stop = end if stop < 0 else stop + 1  # a file's lines keep their newline
                count += 1
                line = view[pos:stop]
                # Blank is whitespace only: a line's first byte tells nearly every line apart.
                if line[0] not in _WHITESPACE or bytes(line).strip():
                    numbered.append((count, line))
                pos = stop
        if self.broken is not None:
            rejects.add(self.log, count + 1, "<file>", self.broken)
        return numbered, count


_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() strips


def _mapped(path: Path, offset: int, length: int) -> tuple[mmap.mmap, int]:
    """`length` bytes of the file from `offset`, mapped read-only, and where they start in the map
    (a map starts at a multiple of the allocation granularity). The map closes with its last view."""
    base = offset - offset % mmap.ALLOCATIONGRANULARITY
    with path.open("rb") as fh:
        # Reading a mapped page past the end of a file that shrank kills the process (SIGBUS).
        if os.fstat(fh.fileno()).st_size < offset + length:
            raise OSError(f"{path}: the file shrank while it was read (rotated or truncated?)")
        mapped = mmap.mmap(fh.fileno(), length + offset - base, access=mmap.ACCESS_READ, offset=base)
    return mapped, offset - base


def read_block(
    fmt: str, block: LineBlock, options: ReadOptions
) -> tuple[list[pa.RecordBatch], list[Reject], int]:
    """The events (stored `as_asked`) and rejects (line numbers within the block) of a block of one
    log's lines, and how many lines it held. Run in the signal workers: here, not in the pipeline,
    so that a worker imports the readers and not every stage (2 CPU-seconds a worker)."""
    reader = READERS[fmt]
    assert isinstance(reader, LineReader)
    sink = RejectSink()
    lines, count = block.lines(sink)
    batches = [as_asked(options, b) for b in reader.read_lines(block.log, lines, sink, options)]
    return batches, sink.rejects, count


def renumbered(rejects: list[Reject], lines_before: int) -> list[Reject]:
    """A block's rejects with file line numbers, given the lines of the blocks before it."""
    return [replace(r, line=r.line + lines_before) for r in rejects]


def iter_blocks(path: Path, spill_dir: Path, block_bytes: int | None = None) -> Iterator[LineBlock]:
    """The file's lines in blocks of about `block_bytes` (default `BLOCK_BYTES`). A plain file's
    blocks are regions of it, found without reading it; a compressed file's text is spilled to
    `spill_dir`, a file per block. A broken compressed stream ends the last block, whose `lines`
    reject it after the lines read before it, as `iter_lines` does."""
    block_bytes = block_bytes or BLOCK_BYTES
    if not is_compressed(path):
        yield from _regions(path, block_bytes)
        return
    held: list[bytes] = []
    size = 0

    def block(broken: str | None = None) -> LineBlock:
        spill = spill_dir / f"{uuid.uuid4().hex}.jsonl"
        spill.write_bytes(b"".join(held))
        held.clear()
        return LineBlock(path, spill, 0, size, broken)

    try:
        with open_binary(path) as fh:
            for line in fh:
                size += len(line)
                held.append(line)
                if size >= block_bytes:
                    yield block()
                    size = 0
    except STREAM_ERRORS as exc:
        yield block(f"unreadable or truncated compressed stream: {exc}")
        return
    if size:
        yield block()


def _regions(path: Path, block_bytes: int) -> Iterator[LineBlock]:
    """A plain file's blocks: regions ending at the end of a line (or of the file)."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as fh:
        while offset < size:
            fh.seek(min(offset + block_bytes, size) - 1)  # the block's last byte, then the rest of its line
            fh.readline()
            end = fh.tell()
            yield LineBlock(path, path, offset, end - offset)
            offset = end
