from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard
from io_helpers import FIXTURES, read_all

from distillguard.io import detect_format
from distillguard.io.base import (
    ReadOptions,
    RecordError,
    RejectSink,
    as_time,
    iter_json_lines,
    parse_networks,
    resolve_client_ip,
)

LINES = b'{"a": 1}\n\n{"a": 2}\n[1]\n{bad\n{"a": "\xff"}\n'


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, zstandard.ZstdCompressor().compress])
def test_json_lines_plain_gzip_zstd(tmp_path: Path, compress) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(compress(LINES))
    rejects = RejectSink()
    got = [(n, obj) for n, _, obj in iter_json_lines(path, rejects)]
    assert got == [(1, {"a": 1}), (3, {"a": 2})]
    assert [(r.line, r.reason.split(":")[0]) for r in rejects.rejects] == [
        (4, "expected a JSON object, got list"),
        (5, "malformed JSON"),
        (6, "not UTF-8"),
    ]


def test_truncated_gzip_keeps_the_lines_before_and_rejects_the_rest(tmp_path: Path) -> None:
    body = b"".join(b'{"n": %d}\n' % i for i in range(5000))
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(body)[:-400])
    rejects = RejectSink()
    got = list(iter_json_lines(path, rejects))
    assert 0 < len(got) < 5000
    assert len(rejects) == 1 and rejects.rejects[0].field == "<file>"
    assert rejects.rejects[0].line == len(got) + 1


def test_unknown_format_is_one_reject(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    assert detect_format(path) is None
    table, rejects = read_all(path)
    assert table.num_rows == 0 and [r.reason for r in rejects.rejects] == ["unknown log format"]


TRUSTED = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("xff", "peer", "trusted", "expected"),
    [
        # The client wrote 6.6.6.6 itself; our balancer appended the real address.
        ("6.6.6.6, 203.0.113.45", "10.0.4.12", TRUSTED, "203.0.113.45"),
        ("6.6.6.6, 203.0.113.45, 10.1.1.1", "10.0.4.12", TRUSTED, "203.0.113.45"),
        # No trusted proxies: the header is never believed, only the peer.
        ("6.6.6.6", "198.51.100.7", (), "198.51.100.7"),
        ("6.6.6.6", None, (), None),
        # A direct client that is not a proxy of ours cannot inject anything.
        ("6.6.6.6", "198.51.100.7", TRUSTED, "198.51.100.7"),
        ("203.0.113.45:51234", "10.0.4.12", TRUSTED, "203.0.113.45"),
        ("[2001:db8::1]:443", "2001:db8:ffff::2", TRUSTED, "2001:db8::1"),
        ("unknown", "10.0.4.12", TRUSTED, "unknown"),
        (None, "10.0.4.12", TRUSTED, "10.0.4.12"),
    ],
)
def test_resolve_client_ip(xff, peer, trusted, expected) -> None:
    assert resolve_client_ip(xff, peer, trusted) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1747214467, datetime(2025, 5, 14, 9, 21, 7, tzinfo=UTC)),
        (1747214467.5, datetime(2025, 5, 14, 9, 21, 7, 500000, tzinfo=UTC)),
        ("1747214467412", datetime(2025, 5, 14, 9, 21, 7, 412000, tzinfo=UTC)),
        ("1747214467412000", datetime(2025, 5, 14, 9, 21, 7, 412000, tzinfo=UTC)),
        ("1747214467412000000", datetime(2025, 5, 14, 9, 21, 7, 412000, tzinfo=UTC)),
        ("1747214467.25", datetime(2025, 5, 14, 9, 21, 7, 250000, tzinfo=UTC)),
        ("2025-05-14T09:21:07Z", datetime(2025, 5, 14, 9, 21, 7, tzinfo=UTC)),
        ("2025-05-14T11:21:07+02:00", datetime(2025, 5, 14, 9, 21, 7, tzinfo=UTC)),
        ("2025-05-14 09:21:07.412", datetime(2025, 5, 14, 9, 21, 7, 412000, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_as_time(value, expected) -> None:
    assert as_time(value, "t") == expected


@pytest.mark.parametrize("value", [True, "yesterday", "nan", float("inf"), -5, "3000-01-01T00:00:00Z", [1]])
def test_as_time_rejects(value) -> None:
    with pytest.raises(RecordError) as info:
        as_time(value, "startTime")
    assert info.value.field == "startTime"


def test_litellm_payload_fixture() -> None:
    path = FIXTURES / "litellm_payloads.jsonl"
    assert detect_format(path) == "litellm"
    table, rejects = read_all(path, ReadOptions(trusted_proxies=TRUSTED, keep_responses=True))
    assert len(rejects) == 0
    ok, failed = table.to_pylist()
    assert ok["account_id"] == "acct_7731" and ok["team_id"] == "team-research"
    assert ok["client_ip"] == "203.0.113.45"  # 6.6.6.6 was written by the client
    assert (ok["app_title"], ok["referer"]) == ("MathDistill", "https://mathdistill.example")
    assert ok["user_agent"] == "OpenAI/Python 1.82.0"
    assert (ok["reasoning_tokens"], ok["cached_tokens"], ok["max_tokens"]) == (256, 64, 2048)
    assert ok["model_served"] == "openai/o3-mini" and ok["stream"] is False
    assert (
        ok["user_text"] == "Find the last three digits of 7^2025."
        and ok["system_prompt"] == "Reason step by step."
    )
    assert ok["response_text"] == "The last three digits are 807." and ok["content_present"]
    assert failed["status"] == "failure" and (failed["error_code"], failed["error_class"]) == (
        "429",
        "RateLimitError",
    )
    assert failed["response_text"] is None
