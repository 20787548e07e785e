"""Throttling keeps a rate instead of cutting an account off: a token bucket per account, the same
in process and in Redis (shared by workers), and the decisions it gives."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from online_helpers import RedisServer, Replay

from distillguard.online.decide import OnlineDetector
from distillguard.online.redis_state import RedisState
from distillguard.online.state import MemoryState
from distillguard.policy import Policy


def _bucket_trace(state: MemoryState | RedisState) -> list[float]:
    # One token every 2 s, bursts of 3: six tries at 0 s, then one at 1 s and one at 3 s.
    times = [0.0] * 6 + [1.0, 3.0]
    return [round(state.take_token("acct", 0.5, 3.0, 1000.0 + t), 6) for t in times]


EXPECTED = [0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 1.0, 0.0]


def test_memory_bucket() -> None:
    assert _bucket_trace(MemoryState()) == EXPECTED


def test_redis_bucket_is_the_same_and_shared(redis_server: RedisServer) -> None:
    a, b = (
        RedisState(redis_server.url, prefix="t1:", timeout_s=1.0),
        RedisState(redis_server.url, prefix="t1:"),
    )
    assert _bucket_trace(a) == EXPECTED
    # A second worker sees the first one's bucket: at 3 s half a token is left, so 1 s to wait.
    assert b.take_token("acct", 0.5, 3.0, 1003.0) == pytest.approx(1.0)


def test_throttled_account_keeps_its_rate(replay: Replay) -> None:
    policy = Policy(
        thresholds={"throttle": 0.0},
        actions={"throttle": ["throttle"]},
        throttle_per_minute=6,
        throttle_burst=2,
    )
    det = OnlineDetector(replay.model, policy=policy, signals=replay.signal_lookup)
    event = dict(replay.events[0])
    t0: datetime = event["start_time"]
    got = []
    for seconds in (0, 1, 2, 12, 13):  # two in a burst, then one token every 10 s
        e = {**event, "start_time": t0 + timedelta(seconds=seconds)}  # same request id: same signals
        d = det.decide(e)
        assert d.verdict == "throttle"
        got.append(("throttle" in d.actions, d.retry_after_s))
    assert got == [(False, 0.0), (False, 0.0), (True, 8.0), (False, 0.0), (True, 7.0)]


def test_throttle_rate_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("thresholds: {throttle: 0.5}\nthrottle_rate: {per_minute: 30, burst: 5}\n")
    policy = Policy.load(path)
    assert (policy.throttle_per_minute, policy.throttle_burst) == (30.0, 5.0)
    path.write_text("thresholds: {throttle: 0.5}\nthrottle_rate: {per_minute: 0}\n")
    with pytest.raises(ValueError, match="throttle_rate"):
        Policy.load(path)
