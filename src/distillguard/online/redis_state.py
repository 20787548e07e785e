"""Account state in Redis, shared by every gateway worker.

An account's state is one JSON value updated under WATCH/MULTI (optimistic locking: a worker
that lost a race re-reads and re-applies its update). Accounts per template or prefix are native
Redis HyperLogLogs (PFADD/PFCOUNT); first-seen times are kept as minima by a small Lua script.

Every call has a socket timeout. A failure raises `StateUnavailable` and opens a short circuit:
for `retry_after_s` the store answers `StateUnavailable` at once instead of paying the timeout on
every request, then tries Redis again (redis-py reconnects by itself after a restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
import redis

from distillguard.online.state import AccountState, StateUnavailable

_MIN_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if (not v) or tonumber(ARGV[1]) < tonumber(v) then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return v
"""
# `state.bucket_take` in Lua, atomic per key: KEYS[1] holds "tokens last"; returns the wait as a string.
_BUCKET_SCRIPT = """
local per_s, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[1])
local tokens, last = burst, now
if v then
  local sp = string.find(v, ' ')
  tokens, last = tonumber(string.sub(v, 1, sp - 1)), tonumber(string.sub(v, sp + 1))
end
tokens = math.min(burst, tokens + math.max(0, now - last) * per_s)
last = math.max(now, last)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / per_s
end
redis.call('SET', KEYS[1], string.format('%.17g %.17g', tokens, last), 'EX', tonumber(ARGV[4]))
return string.format('%.17g', wait)
"""
_RETRIES = 5


class RedisState:
    """`State` over a Redis server; keys start with `prefix` so several deployments can share one."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "dg:",
        timeout_s: float = 0.05,
        retry_after_s: float = 1.0,
        ttl_s: int | None = 30 * 86400,
        client: redis.Redis | None = None,
    ) -> None:
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self.ttl_s = ttl_s
        self.client = client or redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._min = self.client.register_script(_MIN_SCRIPT)
        self._bucket = self.client.register_script(_BUCKET_SCRIPT)
        self._down_until = 0.0

    def _call(self, fn: Callable[[], Any]) -> Any:
        if time.monotonic() < self._down_until:
            raise StateUnavailable("redis circuit open")
        try:
            return fn()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + self.retry_after_s
            raise StateUnavailable(f"redis: {exc}") from exc

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def get(self, account_id: str) -> AccountState | None:
        raw = self._call(lambda: self.client.get(self._key("acct", account_id)))
        return AccountState.from_obj(orjson.loads(raw)) if raw else None

    def update(self, account_id: str, fn: Callable[[AccountState], None]) -> AccountState:
        key = self._key("acct", account_id)
        out: list[AccountState] = []

        def attempt() -> None:
            with self.client.pipeline() as pipe:
                for _ in range(_RETRIES):
                    try:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        st = AccountState.from_obj(orjson.loads(raw)) if raw else AccountState()
                        fn(st)
                        pipe.multi()
                        pipe.set(key, orjson.dumps(st.to_obj()), ex=self.ttl_s)
                        pipe.execute()
                        out.append(st)
                        return
                    except redis.WatchError:
                        continue
            raise StateUnavailable(f"account {account_id}: too many concurrent updates")

        self._call(attempt)
        return out[0]

    def link(self, kind: str, key: str, account_id: str) -> None:
        self._call(lambda: self.client.pfadd(self._key(kind, key), account_id))

    def accounts_on(self, kind: str, account_id: str, keys: Mapping[str, int]) -> np.ndarray:
        def counts() -> list[int]:
            with self.client.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.pfcount(self._key(kind, k))
                # PFCOUNT of a key never added is 0; the protocol reads it as one account.
                return [max(1, int(c)) for c in pipe.execute()]

        return np.array(self._call(counts), dtype=np.int64)

    def first_seen(self, name: str, ts: float) -> float:
        return float(self._call(lambda: self._min(keys=[self._key("first", name)], args=[repr(ts)])))

    def take_token(self, key: str, per_s: float, burst: float, now: float) -> float:
        # The bucket expires once it would have refilled anyway, so idle accounts leave no keys.
        ttl = max(1, int(burst / per_s) + 60)
        args: list[str | int] = [repr(per_s), repr(burst), repr(now), ttl]
        return float(self._call(lambda: self._bucket(keys=[self._key("bucket", key)], args=args)))
