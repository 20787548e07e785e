"""Fixture and bad-input tests for the OTel, OpenAI Batch, Parquet and accounts readers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_helpers import FIXTURES, gzip_copy, read_all

from distillguard.io import detect_format
from distillguard.io.accounts import read_accounts
from distillguard.io.base import ReadOptions, RejectSink, parse_networks
from distillguard.schema import ACCOUNT_SCHEMA

BATCH = FIXTURES / "openai_batch"


def test_otel_fixture() -> None:
    path = FIXTURES / "otel_genai.jsonl"
    assert detect_format(path) == "otel"
    table, rejects = read_all(path, ReadOptions(trusted_proxies=parse_networks(["10.0.0.0/8"])))
    assert len(rejects) == 0
    rows = {r["request_id"].split(":")[1]: r for r in table.to_pylist()}
    assert "eee19b7ec3c1b174" not in rows  # the HTTP server span is not an exchange
    chat = rows["eee19b7ec3c1b173"]
    assert chat["client_ip"] == "192.0.2.77" and chat["app_title"] == "RubricBench"
    assert chat["system_prompt"] == "You are a careful grader." and chat["user_text"].startswith(
        "Score this proof"
    )
    assert chat["response_text"].endswith("Overall 8/10.")
    assert (chat["prompt_tokens"], chat["completion_tokens"], chat["max_tokens"]) == (41, 19, 512)
    assert str(chat["start_time"]) == "2025-05-14 09:21:00.120000+00:00"
    old = rows["00f067aa0ba902b7"]
    assert old["user_text"] == "Think step by step: is 1001 prime?" and old["response_text"].startswith(
        "1001 = 7"
    )
    err = rows["00f067aa0ba902b8"]
    assert (err["status"], err["error_class"], err["error_code"]) == ("failure", "RateLimitError", "429")
    assert rows["b7ad6b7169203331"]["content_present"] is False


def test_otel_bad_span_is_one_reject_and_its_siblings_stay(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "otel_genai.jsonl").read_text().splitlines()[1])
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "soon"
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"][0]["value"] = {"intValue": "x"}
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(doc) + "\n" + '{"resourceSpans": 7}\n' + (FIXTURES / "otel_genai.jsonl").read_text()
    )
    table, rejects = read_all(path)
    assert table.num_rows == 4
    assert [(r.line, r.field) for r in rejects.rejects] == [
        (1, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"),
        (1, "resourceSpans[0].scopeSpans[0].spans[1].gen_ai.operation.name"),
        (2, "resourceSpans"),
    ]


@pytest.mark.parametrize("given", ["eval_input.jsonl", "eval_output.jsonl", "eval_errors.jsonl"])
def test_openai_batch_joins_whichever_file_is_given(given: str) -> None:
    assert detect_format(BATCH / given) == "openai_batch"
    table, rejects = read_all(BATCH / given, ReadOptions(batch_envelope=BATCH / "batch_envelope.json"))
    assert len(rejects) == 0
    rows = {r["request_id"].rsplit(":", 1)[1]: r for r in table.to_pylist()}
    assert sorted(rows) == ["req-0001", "req-0002", "req-0003", "req-0004", "req-0005"]
    assert {r["account_id"] for r in rows.values()} == {"org-Vx81KqP3"}
    one = rows["req-0001"]
    assert one["user_text"].startswith("Let n be") and one["response_text"].endswith("n = 100.")
    assert (one["logprobs"], one["top_logprobs"], one["cached_tokens"]) == (True, 5, 32)
    assert rows["req-0003"]["reasoning_tokens"] == 192 and rows["req-0003"]["system_prompt"].startswith(
        "Grade"
    )
    assert rows["req-0004"]["error_code"] == "batch_expired"
    assert (rows["req-0005"]["error_code"], rows["req-0005"]["error_class"]) == (
        "400",
        "invalid_request_error",
    )


def test_openai_batch_pairs_by_envelope_file_ids(tmp_path: Path) -> None:
    envelope = json.loads((BATCH / "batch_envelope.json").read_text())
    shutil.copy(BATCH / "eval_input.jsonl", tmp_path / f"{envelope['input_file_id']}.jsonl")
    gzip_copy(BATCH / "eval_output.jsonl", tmp_path / f"{envelope['output_file_id']}.jsonl.gz")
    shutil.copy(BATCH / "batch_envelope.json", tmp_path / "batch.json")
    options = ReadOptions(batch_envelope=tmp_path / "batch.json", account_id="acct-cli")
    table, rejects = read_all(tmp_path / f"{envelope['input_file_id']}.jsonl", options)
    assert len(rejects) == 0 and table.num_rows == 5
    assert set(table["account_id"].to_pylist()) == {"acct-cli"}
    assert table.filter(pa.compute.equal(table["status"], "success")).num_rows == 3


def test_openai_batch_without_account_or_time_rejects_every_line(tmp_path: Path) -> None:
    shutil.copy(BATCH / "eval_input.jsonl", tmp_path / "solo.jsonl")
    table, rejects = read_all(tmp_path / "solo.jsonl", ReadOptions(account_id="a"))
    assert table.num_rows == 0 and {r.field for r in rejects.rejects} == {"start_time"}
    assert [r.line for r in rejects.rejects] == [1, 2, 3, 4, 5]


def test_openai_batch_bad_lines(tmp_path: Path) -> None:
    lines = (BATCH / "eval_input.jsonl").read_text().splitlines()
    lines[1] = lines[0]  # duplicate custom_id
    lines[2] = lines[2].replace('"max_output_tokens": 1024', '"max_output_tokens": "lots"')
    (tmp_path / "b_input.jsonl").write_text("\n".join([*lines, "{trunc"]) + "\n")
    shutil.copy(BATCH / "eval_output.jsonl", tmp_path / "b_output.jsonl")
    table, rejects = read_all(
        tmp_path / "b_input.jsonl", ReadOptions(batch_envelope=BATCH / "batch_envelope.json")
    )
    assert [(r.line, r.field) for r in rejects.rejects] == [
        (2, "custom_id"),
        (3, "body.max_tokens"),
        (6, "<line>"),
    ]
    # req-0002 and req-0003 lost their input lines; their results still count as events.
    assert table.num_rows == 5


def test_parquet_roundtrip_missing_optional_and_bad_columns(tmp_path: Path) -> None:
    events, _ = read_all(FIXTURES / "spendlogs.csv")
    at = events.schema.get_field_index("response_text")
    events = events.set_column(at, events.schema.field(at), pa.array(["Yes.", None, "No."]))
    path = tmp_path / "e.parquet"
    trimmed = events.drop_columns(["user_agent", "referer"])
    trimmed = trimmed.set_column(
        trimmed.schema.get_field_index("start_time"),
        "start_time",
        trimmed["start_time"].cast(pa.timestamp("ns")),
    )
    pq.write_table(trimmed, path)
    assert detect_format(path) == "parquet"
    table, rejects = read_all(path, ReadOptions(batch_rows=2, keep_responses=True))
    assert len(rejects) == 0 and table.equals(events)
    # Without keep_responses the responses are not read at all; every other column is.
    table, rejects = read_all(path, ReadOptions(batch_rows=2))
    assert table["response_text"].null_count == table.num_rows
    assert table.drop_columns(["response_text"]).equals(events.drop_columns(["response_text"]))

    pq.write_table(events.drop_columns(["account_id"]), path)
    table, rejects = read_all(path)
    assert table.num_rows == 0 and rejects.rejects[0].field == "account_id"

    bad = events.set_column(
        events.schema.get_field_index("prompt_tokens"), "prompt_tokens", pa.array(["a"] * 3)
    )
    pq.write_table(bad, path)
    table, rejects = read_all(path)
    assert rejects.rejects[0].field == "prompt_tokens" and "cannot read" in rejects.rejects[0].reason

    nulls = events.set_column(
        events.schema.get_field_index("account_id"), "account_id", pa.array(["a", None, "c"])
    )
    pq.write_table(nulls, path)
    table, rejects = read_all(path)
    assert table.num_rows == 2 and [(r.line, r.field) for r in rejects.rejects] == [(2, "account_id")]


def test_corrupt_parquet_is_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 50)
    table, rejects = read_all(path)
    assert table.num_rows == 0 and rejects.rejects[0].field == "<file>"


def test_accounts_csv_and_parquet(tmp_path: Path) -> None:
    rejects = RejectSink()
    table = read_accounts(FIXTURES / "accounts.csv", rejects)
    assert len(rejects) == 0 and table.schema.equals(ACCOUNT_SCHEMA) and table.num_rows == 4
    assert table["country"].to_pylist() == ["GB", "SG", "SG", "US"]
    assert table["verified"].to_pylist() == [True, False, None, True]
    pq.write_table(table, tmp_path / "a.parquet")
    assert read_accounts(tmp_path / "a.parquet", rejects).equals(table)


def test_accounts_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    text = (FIXTURES / "accounts.csv").read_bytes()
    path.write_bytes(
        text
        + b"acct_x,not-a-date,x.com,,US,free,true\n"
        + b",2025-01-01,x.com,,US,free,true\n"
        + b"acct_y,2025-01-01,x.com,,Singapore,free,true\n"
        + b"acct_z,2025-01-01,x.com,,US,free,maybe\n"
        + b"acct_\xff,2025-01-01,x.com,,US,free,true\n"
        + b"acct_w,2025-01-01,ann@Example.ORG,,us,free,0\n"
    )
    rejects = RejectSink()
    table = read_accounts(path, rejects)
    assert [(r.line, r.field) for r in rejects.rejects] == [
        (6, "created_at"),
        (7, "account_id"),
        (8, "country"),
        (9, "verified"),
        (10, "<line>"),
    ]
    assert table.num_rows == 5 and table["email_domain"][-1].as_py() == "example.org"
