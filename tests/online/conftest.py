"""Shared online fixtures: a small simulated log with its batch features, a risk model trained on
them, and real servers (redis-server, a LiteLLM proxy) started on free loopback ports."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from online_helpers import RedisServer, Replay, free_port

from distillguard.io import ReadOptions, RejectSink, read_events
from distillguard.io.accounts import read_accounts
from distillguard.online.decide import OnlineDetector
from distillguard.pipeline import REQUEST_SIGNALS, prepare
from distillguard.score import RiskModel, feature_matrix
from distillguard.sim import simulate
from distillguard.store import Store


@pytest.fixture(scope="session")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    out = tmp_path_factory.mktemp("sim")
    simulate("mixed", seed=3, scale=0.05, out=out)
    store = Store(out / "dg.duckdb")
    _, features = prepare(store, [out / "logs.jsonl.gz"], RejectSink(), ReadOptions(), out / "accounts.csv")
    signals = {r["request_id"]: r for r in store.con.table(REQUEST_SIGNALS).to_pyarrow().to_pylist()}
    store.close()
    events = [
        r for b in read_events(out / "logs.jsonl.gz", RejectSink(), ReadOptions()) for r in b.to_pylist()
    ]
    events.sort(key=lambda e: e["start_time"])
    accounts = {r["account_id"]: r for r in read_accounts(out / "accounts.csv", RejectSink()).to_pylist()}
    with (out / "truth.csv").open() as fh:
        labels = {r["account_id"]: int(r["label"] == "distiller") for r in csv.DictReader(fh)}
    X = feature_matrix(features)
    y = np.array([labels[a] for a in features.column("account_id").to_pylist()])
    model = RiskModel(max_iter=25).fit(X, y)
    return Replay(events, signals, features, accounts, labels, model)


@pytest.fixture(scope="session")
def replayed(replay: Replay) -> OnlineDetector:
    """A detector fed the whole log in time order (read it; do not feed it more)."""
    detector = OnlineDetector(replay.model, accounts=replay.accounts, signals=replay.signal_lookup)
    for event in replay.events:
        detector.decide(event)
    return detector


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()
