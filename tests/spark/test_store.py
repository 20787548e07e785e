from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from distillguard.engines.spark import SparkStore
from distillguard.link.edges import edge_table
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA, rows_to_batch
from distillguard.store import most_frequent

pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")


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


def _accounts(domain: str) -> pa.Table:
    return pa.table(
        {
            "account_id": ["u1", "u2", "u1"],
            "created_at": pa.array([None] * 3, pa.timestamp("us", tz="UTC")),
            "email_domain": ["stale.com", "b.org", domain],
            "payment_fingerprint": ["p1", None, "p1"],
            "country": ["US", "DE", "US"],
            "account_type": ["free", "paid", "free"],
            "verified": [True, False, True],
        },
        schema=ACCOUNT_SCHEMA,
    )


def test_append_is_idempotent_on_request_id(spark: SparkSession, tmp_path: Path) -> None:
    store = SparkStore(tmp_path, spark)
    assert store.append_events([_events(["a", "b"]), _events(["c"])]) == 3
    assert store.append_events([_events(["a", "b", "c"])]) == 0
    # A duplicate inside one append is kept once, its first row winning; a new id is added.
    assert store.append_events([_events(["c", "d"]), _events(["x", "d"])]) == 2
    reopened = SparkStore(tmp_path, spark)
    assert reopened.count_events() == 5
    rows = {r["request_id"]: r for r in reopened.events.to_pyarrow().to_pylist()}
    assert sorted(rows) == ["a", "b", "c", "d", "x"]
    assert rows["d"]["account_id"] == "acct-1"


def test_upsert_accounts_newest_row_wins(spark: SparkSession, tmp_path: Path) -> None:
    store = SparkStore(tmp_path, spark)
    store.upsert_accounts(_accounts("old.com"))
    store.upsert_accounts(_accounts("new.com").slice(2))
    rows = {r["account_id"]: r for r in store.accounts.to_pyarrow().to_pylist()}
    assert {a: r["email_domain"] for a, r in rows.items()} == {"u1": "new.com", "u2": "b.org"}


def test_stores_on_one_session_stay_apart(spark: SparkSession, tmp_path: Path) -> None:
    first, second = SparkStore(tmp_path / "a", spark), SparkStore(tmp_path / "b", spark)
    first.append_events([_events(["a", "b"])])
    second.append_events([_events(["c"])])
    assert sorted(first.events.request_id.to_pyarrow().to_pylist()) == ["a", "b"]
    assert second.count_events() == 1


def test_most_frequent_agrees_on_both_engines(spark: SparkSession, tmp_path: Path) -> None:
    # Group a: b twice beats a once; group t: a tie, won by the value seen first (d at ts=0),
    # not the smallest; group n: only nulls, so no row.
    rows = pa.table(
        {
            "k": ["a", "a", "a", "t", "t", "n"],
            "v": ["a", "b", "b", "c", "d", None],
            "ts": [0, 1, 2, 1, 0, 0],
        }
    )
    expected = {"a": "b", "t": "d"}
    top = most_frequent(ibis.memtable(rows), ["k"], "v", first_by="ts")
    for con in (ibis.duckdb.connect(), SparkStore(tmp_path, spark).con):
        found = con.to_pyarrow(top)
        assert dict(zip(found["k"].to_pylist(), found["v"].to_pylist(), strict=True)) == expected


def test_edge_times_keep_their_fractions_on_both_engines(spark: SparkSession, tmp_path: Path) -> None:
    # Two accounts take turns on one template, 120.04-120.8 s apart: just over the turn gap (120 s),
    # so no turn-taking edge. Spark's `unix_timestamp` truncates to whole seconds, which made every
    # gap exactly 120 and the edge appear there only.
    seconds = [1_764_000_000.1, 1_764_000_120.9, 1_764_000_240.95, 1_764_000_360.99]
    n = len(seconds)
    events = pa.table(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "account_id": ["a", "b"] * (n // 2),
            "end_user_id": pa.nulls(n, pa.string()),
            "start_time": pa.array([round(s * 1e6) for s in seconds], pa.timestamp("us", tz="UTC")),
        }
    )
    signals = pa.table(
        {
            "request_id": events["request_id"],
            "ip_prefix": [f"10.0.{i}.0/24" for i in range(n)],
            "asn": pa.nulls(n, pa.int64()),
            "ua_family": pa.nulls(n, pa.string()),
            "template_id": ["t1"] * n,
        }
    )
    accounts = ibis.memtable(ACCOUNT_SCHEMA.empty_table())
    expr = edge_table(ibis.memtable(events), ibis.memtable(signals), accounts)
    kinds = [
        sorted(con.to_pyarrow(expr)["kind"].to_pylist())
        for con in (ibis.duckdb.connect(), SparkStore(tmp_path, spark).con)
    ]
    assert kinds[0] == kinds[1] == ["sync", "template"]
