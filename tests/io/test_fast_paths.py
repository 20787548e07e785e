"""The LiteLLM hot path (tuples, epoch microseconds, column-wise Arrow) equals the row-by-row path.

The reference is what the reader did before: `payload_to_event` dicts with datetimes, checked and
batched by `batches_from_records`. Same events, same rejects (file, line, field, reason), on the
fixture, on a bench-sized slice of generated lines, and on lines with a wrong value in each field.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from io_helpers import FIXTURES

from distillguard.io.base import (
    ReadOptions,
    RecordError,
    RejectSink,
    as_time,
    as_time_us,
    batches_from_records,
    iter_json_lines,
    parse_networks,
)
from distillguard.io.litellm import LiteLLMReader, payload_to_event
from distillguard.schema import EVENT_SCHEMA

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Values that exercise every converter's branches: wrong types, text numbers, out-of-range numbers.
_ODD = [None, "", "x", "12", "1.5", 1.5, 7, -3, True, [], {}, [1], 2**70, 1e300, "2026-03-01T10:00:00Z",
        "1747214467412", 1747214467412, 1747214467412000, 1747214467412000000, float("inf")]  # fmt: skip
_PATHS = [
    ("id",), ("startTime",), ("endTime",), ("completionStartTime",), ("status",), ("call_type",),
    ("model",), ("model_group",), ("prompt_tokens",), ("completion_tokens",), ("end_user",),
    ("messages",), ("response",), ("metadata",), ("model_parameters",), ("error_information",),
    ("hidden_params",), ("requester_ip_address",), ("metadata", "user_api_key_user_id"),
    ("metadata", "user_api_key_hash"), ("metadata", "user_agent"), ("metadata", "requester_custom_headers"),
    ("metadata", "usage_object"), ("model_parameters", "temperature"), ("model_parameters", "max_tokens"),
    ("model_parameters", "n"), ("model_parameters", "stream"), ("model_parameters", "logprobs"),
    ("model_parameters", "tools"),
]  # fmt: skip


def _reference(path: Path, options: ReadOptions) -> tuple[pa.Table, RejectSink]:
    rejects = RejectSink()

    def convert(obj: dict) -> dict:
        return payload_to_event(obj.get("standard_logging_object", obj), options)

    batches = list(batches_from_records(path, iter_json_lines(path, rejects), convert, rejects, 7))
    return pa.Table.from_batches(batches, schema=EVENT_SCHEMA), rejects


def _fast(path: Path, options: ReadOptions) -> tuple[pa.Table, RejectSink]:
    rejects = RejectSink()
    batches = list(LiteLLMReader().read(path, rejects, options))
    return pa.Table.from_batches(batches, schema=EVENT_SCHEMA), rejects


def _mutants(records: list[dict]) -> list[dict]:
    out = []
    rng = random.Random(5)
    for rec in records:
        for path in _PATHS:
            for value in rng.sample(_ODD, 6):
                mutant = copy.deepcopy(rec)
                parent = mutant
                for key in path[:-1]:
                    parent = parent.setdefault(key, {}) if isinstance(parent, dict) else {}
                if isinstance(parent, dict):
                    parent[path[-1]] = value
                out.append(mutant)
    return out


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8",)])
def test_reader_equals_row_by_row_path(tmp_path: Path, trusted: tuple[str, ...]) -> None:
    records = [orjson.loads(line) for line in (FIXTURES / "litellm_payloads.jsonl").read_bytes().splitlines()]
    lines = [json.dumps(r).encode() for r in records + _mutants(records)]
    lines += [b"not json", b"[1, 2]", b'{"standard_logging_object": 3}', b"\xff\xfe"]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    options = ReadOptions(trusted_proxies=parse_networks(list(trusted)), batch_rows=7)

    want, want_rejects = _reference(path, options)
    got, got_rejects = _fast(path, options)
    assert want.num_rows > 50 and len(want_rejects) > 50  # both outcomes are exercised
    assert got.equals(want)
    assert got_rejects.rejects == want_rejects.rejects


def test_epoch_microseconds_equal_as_time() -> None:
    rng = random.Random(3)
    values: list[object] = [rng.uniform(6.3e8, 7.3e9) for _ in range(20_000)]
    values += [v * scale for v in values[:2000] for scale in (1e3, 1e6, 1e9)]  # type: ignore[operator]
    values += [rng.randint(631_152_000, 7_258_118_399) for _ in range(2000)]
    values += [631152000.0, 631151999.9999995, 7258118399.9999995, 7258118400.0, 1764000000.5000005,
               1e300, -1e300, float("nan"), float("inf"), 10**40, 0, -5, True, "1764000000.25",
               "2026-03-01T10:00:00.123456Z", "2026-03-01 10:00:00", "yesterday", None, ""]  # fmt: skip
    for value in values:
        try:
            ts = as_time(value, "t")
            want: object = None if ts is None else (ts - _EPOCH) // timedelta(microseconds=1)
        except RecordError as exc:
            want = (exc.field, exc.reason)
        try:
            got: object = as_time_us(value, "t")
        except RecordError as exc:
            got = (exc.field, exc.reason)
        assert got == want, value
