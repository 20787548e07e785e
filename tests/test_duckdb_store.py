from pathlib import Path

import pyarrow as pa

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA, rows_to_batch
from distillguard.store import Store


def _events(ids: list[str]) -> pa.RecordBatch:
    rows = [
        {
            "request_id": rid,
            "source_format": "test",
            "start_time": pa.scalar(1_764_000_000_000_000 + i, pa.timestamp("us", tz="UTC")).as_py(),
            "account_id": f"acct-{i % 2}",
            "status": "success",
            "content_present": False,
        }
        for i, rid in enumerate(ids)
    ]
    return rows_to_batch(rows, EVENT_SCHEMA)


def test_append_is_idempotent_on_request_id(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    store = Store(db)
    assert store.append_events([_events(["a", "b", "c"])]) == 3
    assert store.append_events([_events(["a", "b", "c"])]) == 0
    # A duplicate inside one batch is kept once; a new id is added.
    assert store.append_events([_events(["c", "d", "d"])]) == 1
    store.close()
    reopened = Store(db)
    assert reopened.count_events() == 4
    assert sorted(reopened.events.request_id.to_pyarrow().to_pylist()) == ["a", "b", "c", "d"]


def test_append_keeps_the_first_of_each_request_id(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    assert store.append_events([_events(["a", "b"])]) == 2  # a: acct-0, b: acct-1
    # b again (now acct-0), then e twice in one file: acct-1 first, acct-0 second; across batches too.
    assert store.append_events([_events(["b", "e"]), _events(["x", "x", "e"])]) == 2
    kept = {r["request_id"]: r["account_id"] for r in store.events.to_pyarrow().to_pylist()}
    assert kept == {"a": "acct-0", "b": "acct-1", "e": "acct-1", "x": "acct-0"}
    assert store.count_events() == 4


def test_upsert_accounts_newest_file_wins(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")

    def table(domain: str) -> pa.Table:
        return pa.table(
            {
                "account_id": ["u1", "u2"],
                "created_at": pa.array([None, None], pa.timestamp("us", tz="UTC")),
                "email_domain": [domain, "b.org"],
                "payment_fingerprint": ["p1", None],
                "country": ["US", "DE"],
                "account_type": ["free", "paid"],
                "verified": [True, False],
            },
            schema=ACCOUNT_SCHEMA,
        )

    store.upsert_accounts(table("old.com"))
    store.upsert_accounts(table("new.com"))
    rows = {r["account_id"]: r for r in store.accounts.to_pyarrow().to_pylist()}
    assert len(rows) == 2
    assert rows["u1"]["email_domain"] == "new.com"


def test_every_event_gets_request_signals_across_batches(tmp_path: Path) -> None:
    # Signals are computed batch by batch while being inserted; an earlier version streamed the
    # work list on the inserting connection and silently stopped after the first batch.
    from distillguard.pipeline import compute_request_signals
    from distillguard.store import REQUEST_SIGNALS

    store = Store(tmp_path / "s.duckdb")
    store.append_events([_events([f"r{i:04d}" for i in range(250)])])
    assert compute_request_signals(store, batch_rows=40) == 250
    signals = store.con.table(REQUEST_SIGNALS)
    assert signals.count().execute() == 250
    assert signals.request_id.nunique().execute() == 250
    assert compute_request_signals(store, batch_rows=40) == 0  # a re-run has nothing left to do
    store.close()


def test_ingest_stores_responses_only_when_asked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distillguard.cli import app

    log = Path(__file__).parent / "fixtures" / "logs" / "litellm_payloads.jsonl"
    texts = {}
    for keep in (False, True):
        db = tmp_path / f"keep-{keep}.duckdb"
        args = ["ingest", str(log), "--db", str(db), "--rejects", str(tmp_path / "rejects.jsonl")]
        result = CliRunner().invoke(app, args + (["--keep-responses"] if keep else []))
        assert result.exit_code == 0, result.output
        store = Store(db)
        texts[keep] = store.events.select("user_text", "response_text").to_pyarrow().to_pylist()
        store.close()
    assert any(r["response_text"] for r in texts[True])  # the fixture has responses
    assert all(r["response_text"] is None for r in texts[False])
    assert [r["user_text"] for r in texts[False]] == [r["user_text"] for r in texts[True]]
