from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from io_helpers import FIXTURES, gzip_copy, read_all, zstd_copy

from distillguard.io import detect_format


@pytest.mark.parametrize("name", ["spendlogs.csv", "spendlogs.jsonl"])
def test_fixture_rows_map_to_metadata_only_events(name: str) -> None:
    path = FIXTURES / name
    assert detect_format(path) == "spendlogs"
    table, rejects = read_all(path)
    assert len(rejects) == 0
    rows = table.to_pylist()
    assert [r["account_id"] for r in rows] == ["acct_7731", "team-ext-42", "org-acme"]
    first, failed, emb = rows
    assert first["model_served"] == "o3-mini" and first["stream"] is True and first["max_tokens"] == 2048
    assert (first["reasoning_tokens"], first["cached_tokens"]) == (256, 64)
    assert first["client_ip"] == "203.0.113.45"
    assert str(first["start_time"]) == "2025-05-14 09:21:07.412000+00:00"
    assert failed["status"] == "failure" and failed["error_class"] == "RateLimitError"
    assert failed["error_code"] == "429" and failed["end_user_id"] == "customer-991"
    assert emb["call_type"] == "aembedding" and emb["client_ip"] is None
    assert not any(r["content_present"] or r["user_text"] for r in rows)


def test_compressed_copies_read_the_same(tmp_path: Path) -> None:
    plain, _ = read_all(FIXTURES / "spendlogs.csv")
    gz, _ = read_all(gzip_copy(FIXTURES / "spendlogs.csv", tmp_path / "a.csv.gz"))
    zs, _ = read_all(zstd_copy(FIXTURES / "spendlogs.csv", tmp_path / "a.csv.zst"))
    assert gz.equals(plain) and zs.equals(plain)


def _csv_with(tmp_path: Path, *extra: bytes) -> Path:
    path = tmp_path / "spend.csv"
    shutil.copy(FIXTURES / "spendlogs.csv", path)
    with path.open("ab") as fh:
        for line in extra:
            fh.write(line + b"\n")
    return path


def _good_line(**changes: str) -> bytes:
    header, first = (FIXTURES / "spendlogs.csv").read_text().splitlines()[:2]
    row = dict(zip(header.split(","), next(csv.reader([first])), strict=True))
    row.update(changes)
    out = io.StringIO()
    csv.DictWriter(out, fieldnames=list(row), lineterminator="").writerow(row)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (_good_line(request_id="r-bad-time", startTime="yesterday"), "startTime"),
        (_good_line(request_id="r-bad-int", prompt_tokens="many"), "prompt_tokens"),
        (_good_line(request_id="", api_key=""), "request_id"),
        (_good_line(request_id="r-bad-md", metadata="{not json"), "metadata"),
        (b"only,three,fields", "<line>"),
        (b"r-\xff\xfe,acompletion", "<line>"),
    ],
)
def test_bad_rows_are_rejected_and_the_rest_kept(tmp_path: Path, line: bytes, field: str) -> None:
    table, rejects = read_all(_csv_with(tmp_path, line, _good_line(request_id="r-after")))
    assert table.num_rows == 4 and table["request_id"][-1].as_py() == "r-after"
    assert [(r.line, r.field) for r in rejects.rejects] == [(5, field)]
