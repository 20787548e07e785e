from datetime import UTC, datetime

import pyarrow as pa
import pytest

from distillguard.schema import REQUEST_SIGNAL_SCHEMA, rows_to_batch
from distillguard.signals import (
    PROMPT_INPUTS,
    PROMPT_SIGNALS,
    SIGNAL_INPUTS,
    default_signals,
    event_signals,
    prompt_signals,
    request_signal_row,
    request_signals,
)
from distillguard.signals.base import DistinctCache
from distillguard.signals.workers import WORKERS_ENV, SignalWorkers, default_workers


def _event(i: int, **kw):
    base = {
        "request_id": f"r{i}",
        "source_format": "litellm",
        "start_time": datetime(2026, 3, 1, tzinfo=UTC),
        "account_id": "a1",
        "status": "success",
        "content_present": True,
    }
    return base | kw


def test_request_signals_schema_and_nulls():
    rows = [
        _event(0, client_ip="24.0.0.1", user_agent="OpenAI/Python 1.54",
               user_text="Bonjour, peux-tu m'aider ?", prompt_tokens=10, completion_tokens=300),
        _event(1, content_present=False, client_ip="52.95.110.1", error_code="429", status="failure"),
    ]  # fmt: skip
    out = request_signals(rows_to_batch(rows))
    assert out.schema == REQUEST_SIGNAL_SCHEMA
    first, second = out.to_pylist()
    assert (
        first["language"] == "fr"
        and first["ua_family"] == "openai-python"
        and first["ip_kind"] == "residential"
    )
    assert first["template_id"] is not None and first["prompt_chars"] == 26 and first["output_ratio"] == 30.0
    assert second["language"] is None and second["template_id"] is None and second["prompt_chars"] is None
    assert second["is_rate_limited"] is True and first["is_rate_limited"] is False


def test_distinct_cache_computes_each_value_once_and_stays_bounded():
    calls: list[list] = []

    def upper(values: list) -> list:
        calls.append(values)
        return [None if v is None else v.upper() for v in values]

    cache = DistinctCache(upper, limit=3)
    assert cache(["\ud800"]) == ["\ud800".upper()]  # a lone surrogate is a value like any other
    cache.results.clear()
    calls.clear()
    assert cache(["a", "b", "a", None]) == ["A", "B", "A", None]
    assert cache(["b", None, "a"]) == ["B", None, "A"]
    assert calls == [["a", "b", None]]  # the second call was served from the table
    assert cache(["c", "d", "a"]) == ["C", "D", "A"]  # full: cleared, recomputed whole
    assert calls[-1] == ["c", "d", "a"] and len(cache.results) == 3
    # One value at a time (the gateway): from the table when there, else computed, bounded alike.
    calls.clear()
    assert cache.one("a") == "A" and calls == []
    assert cache.one(None) is None and calls == [[None]]  # full: cleared first
    assert [cache.one(v) for v in ("d", "e", "d")] == ["D", "E", "D"]
    assert calls == [[None], ["d"], ["e"]] and len(cache.results) == 3


def test_signals_over_many_batches_equal_one_batch(sharegpt, items):
    # Text signals remember results across batches; batch boundaries must not change any value.
    prompts = (sharegpt[:300] + [f"Solve step by step and show your reasoning: {x}" for x in items]) * 2
    rows = [
        {
            "request_id": f"r{i}",
            "source_format": "test",
            "start_time": datetime(2026, 3, 1, tzinfo=UTC),
            "account_id": f"a{i % 7}",
            "status": "success",
            "user_text": p,
            "content_present": True,
        }
        for i, p in enumerate(prompts)
    ]
    batch = rows_to_batch(rows)
    whole = request_signals(batch)
    parts = [request_signals(batch.slice(i, 97)) for i in range(0, batch.num_rows, 97)]
    assert pa.Table.from_batches(parts).equals(pa.Table.from_batches([whole]))


def _same(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        got[k] == want[k] or (isinstance(want[k], float) and abs(got[k] - want[k]) <= 1e-12 * abs(want[k]))
        for k in want
    )


def _edge_case_events(sharegpt: list[str], items: list[str]) -> list[dict]:
    ips = ["24.0.0.1", "52.95.110.1", "2600:1f18::1", "::ffff:8.8.8.8", "10.0.0.1", "bad", " 1.1.1.1 ", None]
    agents = ["OpenAI/Python 1.54", "litellm/1.50", "Mozilla/5.0 (X11)", "curl/8.1", "", None]
    graded = [f"Grade this answer from 1 to 10: {x}" for x in items[:20]]
    texts = [*sharegpt[:40], *graded, "", "  ", None]
    return [
        _event(
            i,
            client_ip=ips[i % len(ips)],
            user_agent=agents[i % len(agents)],
            user_text=texts[i % len(texts)],
            system_prompt=["You are terse.", None, ""][i % 3],
            content_present=[True, True, False, None][i % 4],
            prompt_tokens=[10, 0, None, -1, 7][i % 5],
            completion_tokens=[300, None, 5][i % 3],
            error_code=["429", None, "500"][i % 3],
            error_class=[None, "RateLimitError", "APIError", None][i % 4],
        )
        for i in range(240)
    ]


def test_row_path_equals_the_batch_path_on_edge_cases(sharegpt, items):
    # The gateway computes one event's signals without Arrow; every column must match the batch row.
    rows = _edge_case_events(sharegpt, items)
    want = request_signals(rows_to_batch(rows)).to_pylist()
    got = [request_signal_row(r) for r in rows]
    bad = [(g, w) for g, w in zip(got, want, strict=True) if not _same(g, w)]
    assert not bad, bad[:2]


def test_signals_read_only_their_inputs(sharegpt, items):
    # Stores hand the signals SIGNAL_INPUTS only (no responses): nothing may change without the rest.
    rows = [
        e | {"response_text": f"answer {i}", "model_requested": "m", "max_tokens": 9, "stream": True}
        for i, e in enumerate(_edge_case_events(sharegpt, items))
    ]
    batch = rows_to_batch(rows)
    inputs = pa.RecordBatch.from_arrays([batch.column(n) for n in SIGNAL_INPUTS], names=list(SIGNAL_INPUTS))
    assert request_signals(inputs).equals(request_signals(batch))


def test_worker_processes_give_this_process_results_in_order(sharegpt, items):
    rows = _edge_case_events(sharegpt, items) * 3
    batch = rows_to_batch([r | {"request_id": f"r{i}"} for i, r in enumerate(rows)])
    batches = [batch.slice(i, 50) for i in range(0, batch.num_rows, 50)]
    with SignalWorkers(3) as workers:  # this process and two others
        got = list(workers.apply(request_signals, ((b,) for b in batches)))
    assert pa.Table.from_batches(got).equals(pa.Table.from_batches([request_signals(b) for b in batches]))


def test_worker_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=WORKERS_ENV):
            default_workers()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_store_computes_prompt_signals_once_per_prompt_and_joins_them(tmp_path, sharegpt, items, workers):
    # The DuckDB store computes the prompt signals per distinct prompt and joins them to its events
    # (nulls, empty texts and system prompts included); every stored row must equal `request_signals`.
    from distillguard.pipeline import compute_request_signals
    from distillguard.store import REQUEST_SIGNALS, Store

    rows = [
        r | {"request_id": f"r{i:04d}", "content_present": bool(r["content_present"])}
        for i, r in enumerate(_edge_case_events(sharegpt, items) * 2)
    ]
    batch = rows_to_batch(rows)
    assert {s.name for s in default_signals()} >= PROMPT_SIGNALS
    store = Store(tmp_path / "s.duckdb")
    store.append_events([batch])
    with SignalWorkers(workers) as pool:
        assert compute_request_signals(store, batch_rows=37, workers=pool) == len(rows)
    stored = store.con.table(REQUEST_SIGNALS).to_pyarrow().cast(REQUEST_SIGNAL_SCHEMA)
    want = pa.Table.from_batches([request_signals(batch)])
    key = [("request_id", "ascending")]
    assert stored.sort_by(key).equals(want.sort_by(key))
    assert compute_request_signals(store) == 0
    store.close()


def test_prompt_and_event_halves_equal_request_signals(sharegpt, items):
    rows = _edge_case_events(sharegpt, items)
    batch = rows_to_batch(rows)
    prompts = pa.RecordBatch.from_arrays([batch.column(n) for n in PROMPT_INPUTS], names=list(PROMPT_INPUTS))
    found = prompt_signals(prompts)
    carried = batch
    for name in found.schema.names:
        carried = carried.append_column(found.schema.field(name), found.column(name))
    others = [n for n in SIGNAL_INPUTS if n not in PROMPT_INPUTS]
    events = carried.select([*others, *found.schema.names])
    assert event_signals(events).equals(request_signals(batch))
