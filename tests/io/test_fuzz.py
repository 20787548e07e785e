"""Property-based tests: mutated and random input never crashes a reader, and nothing is dropped
silently: every input line ends up as an event or as a reject naming that line."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_helpers import FIXTURES, read_all

from distillguard.io import READERS, ReadOptions

BATCH = FIXTURES / "openai_batch"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# (fixture, options) for readers where one line is one record.
LINE_READERS = {
    "litellm": (FIXTURES / "litellm_payloads.jsonl", ReadOptions()),
    "spendlogs": (FIXTURES / "spendlogs.jsonl", ReadOptions()),
    "openai_batch": (BATCH / "eval_input.jsonl", ReadOptions(batch_envelope=BATCH / "batch_envelope.json")),
}


_INTS = st.integers(-(2**63), 2**64 - 1)  # what orjson can write


def _mutate(line: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "cut", "swap_value", "random", "keep"]))
    if kind == "flip" and line:
        i = data.draw(st.integers(0, len(line) - 1))
        return line[:i] + bytes([data.draw(st.integers(0, 255))]) + line[i + 1 :]
    if kind == "cut":
        return line[: data.draw(st.integers(0, len(line)))]
    if kind == "swap_value":
        obj = orjson.loads(line)
        key = data.draw(st.sampled_from(sorted(obj)))
        obj[key] = data.draw(st.one_of(st.none(), _INTS, st.floats(), st.text(max_size=5), st.lists(_INTS)))
        return orjson.dumps(obj)
    if kind == "random":
        return data.draw(st.binary(max_size=60))
    return line


def _one_line(line: bytes) -> bytes:
    """The line as written: a mutation's newline would otherwise split it in two."""
    return line.replace(b"\n", b" ").replace(b"\r", b" ")


@contextmanager
def _scratch(name: str) -> Iterator[Path]:
    """Where one case writes its file, removed with its folder after the case (hundreds run)."""
    with tempfile.TemporaryDirectory(prefix="distillguard-fuzz-") as folder:
        yield Path(folder) / name


@contextmanager
def _written(lines: list[bytes]) -> Iterator[Path]:
    with _scratch("fuzz.jsonl") as path:
        path.write_bytes(b"\n".join(_one_line(line) for line in lines) + b"\n")
        yield path


@FUZZ
@given(name=st.sampled_from(sorted(LINE_READERS)), data=st.data())
def test_every_line_is_an_event_or_a_reject(name: str, data: st.DataObject) -> None:
    fixture, options = LINE_READERS[name]
    good = fixture.read_bytes().splitlines()
    picks = data.draw(st.lists(st.sampled_from(good), min_size=1, max_size=8))
    # The first line stays intact so that the reader's own sniffing sees its format.
    lines = [good[0]] + [_mutate(line, data) for line in picks]
    with _written(lines) as path:
        table, rejects = read_all(path, options, fmt=name)
    expected = sum(1 for line in lines if line.replace(b"\n", b" ").strip())
    rejected_lines = {r.line for r in rejects.rejects}
    assert all(1 <= r.line <= len(lines) for r in rejects.rejects)
    assert table.num_rows + len(rejected_lines) == expected


@FUZZ
@given(data=st.data())
def test_csv_rows_are_events_or_rejects(data: st.DataObject) -> None:
    text = (FIXTURES / "spendlogs.csv").read_bytes().splitlines()
    header, rows = text[0], text[1:]
    field = st.text(
        alphabet=st.characters(blacklist_characters=',"\r\n', blacklist_categories=["Cs"]), max_size=8
    )
    lines = [header]
    for _ in range(data.draw(st.integers(1, 6))):
        if data.draw(st.booleans()):
            lines.append(data.draw(st.sampled_from(rows)))
        else:
            cells = data.draw(st.lists(field, min_size=1, max_size=40))
            lines.append(",".join(cells).encode())
    with _written(lines) as path:
        table, rejects = read_all(path, fmt="spendlogs")
    body = [line for line in lines[1:] if line.strip()]
    assert table.num_rows + len({r.line for r in rejects.rejects}) == len(body)


@FUZZ
@given(data=st.data())
def test_otel_lines_and_spans_are_accounted_for(data: st.DataObject) -> None:
    good = (FIXTURES / "otel_genai.jsonl").read_bytes().splitlines()
    lines = [good[0]] + [
        _mutate(line, data) for line in data.draw(st.lists(st.sampled_from(good), max_size=6))
    ]
    lines = [_one_line(line) for line in lines]
    with _written(lines) as path:
        table, rejects = read_all(path, fmt="otel")
    genai_spans = 0
    for n, line in enumerate(lines, start=1):
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            if line.strip():
                assert n in {r.line for r in rejects.rejects}
            continue
        genai_spans += str(doc).count("'key': 'gen_ai.operation.name'")
    assert table.num_rows <= genai_spans + len(lines)


@FUZZ
@given(name=st.sampled_from(sorted(READERS)), blob=st.binary(max_size=400))
def test_random_bytes_never_crash(name: str, blob: bytes) -> None:
    with _scratch("blob") as path:
        path.write_bytes(blob)
        table, rejects = read_all(path, ReadOptions(account_id="a"), fmt=name)
    # Two non-blank lines: even a CSV reader (whose first line is the header) has a record to account for.
    if sum(1 for line in blob.splitlines() if line.strip()) >= 2:
        assert table.num_rows + len(rejects) > 0


@FUZZ
@given(name=st.sampled_from(sorted(LINE_READERS)), cut=st.integers(10, 400))
def test_truncated_gzip_is_a_reject_not_a_crash(name: str, cut: int) -> None:
    fixture, options = LINE_READERS[name]
    raw = fixture.read_bytes() * 20
    with _scratch(f"{fixture.stem}.jsonl.gz") as path:
        path.write_bytes(gzip.compress(raw)[:-cut])
        table, rejects = read_all(path, options, fmt=name)
    assert any(r.field == "<file>" for r in rejects.rejects)
    assert table.num_rows <= raw.count(b"\n")


@FUZZ
@given(cut=st.integers(1, 3000), flip=st.integers(0, 10_000))
def test_damaged_parquet_never_crashes(cut: int, flip: int) -> None:
    events, _ = read_all(FIXTURES / "spendlogs.csv")
    with _scratch("e.parquet") as path:
        pq.write_table(events, path)
        blob = bytearray(path.read_bytes())
        blob[flip % len(blob)] ^= 0xFF
        path.write_bytes(bytes(blob[: max(4, len(blob) - cut)]))
        table, rejects = read_all(path, fmt="parquet")
    assert table.num_rows + len(rejects) >= 1
