"""The HTTP decision service: auth, size limits, request ids, metrics, Portkey shape, JSON logs."""

from __future__ import annotations

import logging

import orjson
import pytest
from fastapi.testclient import TestClient
from online_helpers import Replay

from distillguard.online.decide import OnlineDetector
from distillguard.online.service import KEY_HEADER, create_app
from distillguard.policy import Policy

SECRET = "s3cret-value"


@pytest.fixture
def client(replay: Replay) -> TestClient:
    policy = Policy(thresholds={"block": 0.0}, actions={"block": ["block"]})
    det = OnlineDetector(replay.model, policy=policy)
    return TestClient(create_app(det, SECRET, max_body_bytes=8192))


def _event(replay: Replay) -> dict:
    e = dict(replay.events[0])
    e["start_time"] = e["start_time"].isoformat()
    for k in ("end_time", "first_token_time"):
        e[k] = e[k].isoformat() if e[k] else None
    e["user_text"] = (e["user_text"] or "")[:2000]
    return e


def test_auth_size_and_request_id(client: TestClient, replay: Replay) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.post("/v1/decide", json=_event(replay)).status_code == 401
    assert client.post("/v1/decide", json=_event(replay), headers={KEY_HEADER: "wrong"}).status_code == 401
    big = {**_event(replay), "user_text": "x" * 10_000}
    assert client.post("/v1/decide", json=big, headers={KEY_HEADER: SECRET}).status_code == 413
    bad = {**_event(replay), "start_time": "yesterday"}
    assert client.post("/v1/decide", json=bad, headers={KEY_HEADER: SECRET}).status_code == 422
    r = client.post("/v1/decide", json=_event(replay), headers={KEY_HEADER: SECRET, "X-Request-ID": "abc"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "abc"
    assert r.json()["verdict"] == "block" and r.json()["actions"] == ["block"]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/decide", "/v1/portkey"}


def test_metrics_and_portkey(client: TestClient, replay: Replay, caplog: pytest.LogCaptureFixture) -> None:
    hook = {
        "eventType": "beforeRequestHook",
        "request": {"json": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}},
        "metadata": {"user": replay.events[0]["account_id"]},
    }
    with caplog.at_level(logging.INFO, logger="distillguard.online"):
        r = client.post("/v1/portkey", json=hook, headers={KEY_HEADER: SECRET, "X-Forwarded-For": "6.6.6.6"})
    assert r.status_code == 200 and r.json()["verdict"] is False
    fields = caplog.records[-1].fields  # type: ignore[attr-defined]
    assert fields["caller"] == "testclient" and "prompt" not in fields  # XFF untrusted, no prompt
    assert orjson.dumps(fields)
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers={KEY_HEADER: SECRET}).text
    assert 'distillguard_decisions_total{verdict="block"} 1.0' in text
