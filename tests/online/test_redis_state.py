"""Redis state against a real redis-server: same decisions as in process, and outages fail open or closed."""

from __future__ import annotations

import time

from online_helpers import RedisServer, Replay

from distillguard.online.decide import OnlineDetector
from distillguard.online.redis_state import RedisState
from distillguard.online.state import MemoryState


def test_redis_matches_memory_and_is_shared(replay: Replay, redis_server: RedisServer) -> None:
    events = replay.events[:400]
    memory = OnlineDetector(replay.model, accounts=replay.accounts, signals=replay.signal_lookup)
    # Two workers sharing one Redis, taking requests in turn.
    workers = [
        OnlineDetector(
            replay.model,
            state=RedisState(redis_server.url, timeout_s=1.0),
            accounts=replay.accounts,
            signals=replay.signal_lookup,
        )
        for _ in range(2)
    ]
    for i, e in enumerate(events):
        memory.decide(e)
        workers[i % 2].decide(e)
    for acct in {e["account_id"] for e in events}:
        assert memory.feature_vector(acct).tobytes() == workers[0].feature_vector(acct).tobytes()
        assert (
            workers[1].decide({"account_id": acct}, update=False).risk
            == memory.decide({"account_id": acct}, update=False).risk
        )


def test_outage_fails_open_or_closed_and_recovers(replay: Replay, redis_server: RedisServer) -> None:
    e = replay.events[0]
    fail_open = OnlineDetector(
        replay.model, state=RedisState(redis_server.url, retry_after_s=0.2), signals=replay.signal_lookup
    )
    fail_closed = OnlineDetector(
        replay.model,
        state=RedisState(redis_server.url, retry_after_s=0.2),
        signals=replay.signal_lookup,
        on_state_error="block",
    )
    assert not fail_open.decide(e).state_error
    redis_server.stop()  # killed mid-test
    t = time.perf_counter()
    opened, closed = fail_open.decide(e), fail_closed.decide(e)
    assert time.perf_counter() - t < 0.5  # bounded by the socket timeout, not a hang
    assert (opened.verdict, opened.state_error) == ("allow", True)
    assert (closed.verdict, closed.actions, closed.state_error) == ("block", ["block"], True)
    fail_open.observe(e)  # the logging hook swallows the outage
    redis_server.start()  # restarted empty on the same port
    time.sleep(0.3)  # past the circuit breaker
    d = fail_open.decide(e)
    assert not d.state_error


def test_accounts_on_keys_in_table_order(redis_server: RedisServer) -> None:
    # Each account's keys in the order its table holds them, with the number of distinct accounts
    # on each; a key never linked reads as one account. More keys than the in-process store's first
    # array, and an account's table read, grown and read again.
    redis = RedisState(redis_server.url, timeout_s=5.0)
    memory = MemoryState()
    want: dict[str, set[str]] = {}
    for i in range(1500):
        key = f"k{i % 1100}"
        for account in (f"a{i % 3}", f"b{i % 5}")[: 1 + i % 2]:
            memory.link("tpl", key, account)
            redis.link("tpl", key, account)
            want.setdefault(key, set()).add(account)
    table = {f"k{j}": 1 for j in range(0, 1100, 7)} | {"never": 4}
    for state in (memory, redis):
        assert state.accounts_on("tpl", "a1", table).tolist() == [len(want.get(k, "x")) for k in table]
    table |= {f"k{j}": 2 for j in range(3, 1100, 11)}
    for state in (memory, redis):
        assert state.accounts_on("tpl", "a1", table).tolist() == [len(want.get(k, "x")) for k in table]
        assert state.accounts_on("pfx", "a1", {}).tolist() == []
