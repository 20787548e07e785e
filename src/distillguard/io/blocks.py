"""A log's lines in blocks that other processes read for themselves: ingest on every core.

Converting JSON lines to events is Python work per line, so one process converts on one core. The
pipeline hands blocks of lines to its worker processes, but not their bytes: a process that sends
tens of megabytes down a pipe, or receives them, needs its GIL back for every 64 KiB the pipe
carries, and a parent busy converting lines itself hands it back only every few milliseconds (a
worker's 20 MB result reached the parent 2.5 s after it was ready). A worker gets a `LineBlock`
instead: where the lines lie (a region of the log itself, or of a spill file holding a compressed
log's text) and the number of the first, and it reads them itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from distillguard.io.base import STREAM_ERRORS, RejectSink, is_compressed, open_binary

BLOCK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class LineBlock:
    """Consecutive lines of `log`, held in `source` at `offset` (the log itself, or a spill file)."""

    log: Path  # the file the lines come from, named in rejects
    source: Path
    offset: int
    length: int
    first_line: int  # 1-based number in `log` of the block's first line
    length_in_lines: int
    # A compressed stream that broke after the block's lines: a reject after theirs, as `iter_lines` adds it.
    broken: str | None = None

    def lines(self, rejects: RejectSink) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line) for the block's non-blank lines, as `iter_lines` gives them; a
        spill file is deleted once read."""
        yield from self._lines()
        if self.broken is not None:
            rejects.add(self.log, self.first_line + self.length_in_lines, "<file>", self.broken)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        if not self.length:
            return
        with self.source.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.length)
        if self.source != self.log:
            self.source.unlink(missing_ok=True)
        pieces = data.split(b"\n")
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            line = piece if i == last else piece + b"\n"  # a file's lines keep their newline
            if line.strip():
                yield self.first_line + i, line


def iter_blocks(path: Path, spill_dir: Path, block_bytes: int | None = None) -> Iterator[LineBlock]:
    """The file's lines in blocks of about `block_bytes` (default `BLOCK_BYTES`). A plain file's
    blocks are regions of it; a compressed file's text is spilled to `spill_dir`, a file per block.
    A broken compressed stream ends the last block, whose `lines` reject it after the lines read
    before it, as `iter_lines` does."""
    block_bytes = block_bytes or BLOCK_BYTES
    if not is_compressed(path):
        yield from _regions(path, block_bytes)
        return
    held: list[bytes] = []
    first, size, lineno = 1, 0, 0

    def block(broken: str | None = None) -> LineBlock:
        spill = spill_dir / f"{uuid.uuid4().hex}.jsonl"
        spill.write_bytes(b"".join(held))
        held.clear()
        return LineBlock(path, spill, 0, size, first, lineno + 1 - first, broken)

    try:
        with open_binary(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                size += len(line)
                held.append(line)
                if size >= block_bytes:
                    yield block()
                    first, size = lineno + 1, 0
    except STREAM_ERRORS as exc:
        yield block(f"unreadable or truncated compressed stream: {exc}")
        return
    if size:
        yield block()


def _regions(path: Path, block_bytes: int) -> Iterator[LineBlock]:
    """A plain file's blocks: regions ending at a newline (or the end), lines counted in C."""
    first, offset, want = 1, 0, block_bytes
    with path.open("rb") as fh:
        while True:
            fh.seek(offset)
            data = fh.read(want)
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if len(data) == want else len(data)  # at the end: the rest
            if cut == 0:  # one line longer than a block: read more of it
                want *= 2
                continue
            lines = data.count(b"\n", 0, cut) + (data[cut - 1] != ord("\n"))
            yield LineBlock(path, path, offset, cut, first, lines)
            first, offset, want = first + lines, offset + cut, block_bytes
