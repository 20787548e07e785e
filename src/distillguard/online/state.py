"""Streaming per-account state: what `features.account_features` needs, kept one request at a time.

An `AccountState` holds counters, sums, Welford moments, a log-spaced gap histogram, 24 hour
counts, per-template and per-prefix counts and distinct-count sketches. It serialises to JSON so
a Redis store can share it between gateway workers. The cross-account context (how many accounts
use a template or an IP prefix, when a model was first seen) lives in the `State` store itself.

Approximations against the batch features (measured in tests/online/test_parity.py):
- distinct counts use `DistinctCounter`: exact up to 128 values, then a HyperLogLog (about 3 %);
- `gap_median_s` comes from a log-spaced histogram (bins 2 % apart, interpolated), where batch
  takes the exact median;
- per-template and per-prefix counts keep the first `MAX_KEYS` keys; later keys still count in
  totals and distinct counts, but not in `template_top_share` or the shared-template features.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import mmh3
import numpy as np

MAX_KEYS = 512
_SPARSE_MAX = 128
_P = 10  # 1024 registers: about 3 % standard error past the sparse range
_M = 1 << _P
_MASK64 = (1 << 64) - 1
_RANK_MAX = 64 - _P + 1  # the largest register value
_SEED = 20260401


class StateUnavailable(RuntimeError):
    """The shared store did not answer in time; the detector applies its fail-open/closed policy."""


class DistinctCounter:
    """Distinct count: an exact set of 64-bit hashes while small, a HyperLogLog (p=10) beyond."""

    __slots__ = ("_hashes", "_inverse_sum", "_registers", "_zeros")

    def __init__(self) -> None:
        self._hashes: set[int] | None = set()
        self._registers: bytearray | None = None
        # The estimator's sum of 2**-register (in units of 2**-_RANK_MAX, so exact in any order) and
        # its count of empty registers, kept as registers change: `count` is O(1), and the detector
        # reads every counter whenever it rescores.
        self._inverse_sum = _M << _RANK_MAX
        self._zeros = _M

    def add(self, value: str) -> None:
        h = mmh3.hash64(value, _SEED, signed=False)[0]
        if self._hashes is not None:
            self._hashes.add(h)
            if len(self._hashes) > _SPARSE_MAX:
                self._densify()
            return
        self._set_register(h)

    def _densify(self) -> None:
        hashes, self._hashes = self._hashes or set(), None
        self._registers = bytearray(_M)
        self._inverse_sum, self._zeros = _M << _RANK_MAX, _M
        for h in hashes:
            self._set_register(h)

    def _set_register(self, h: int) -> None:
        assert self._registers is not None
        idx = h >> (64 - _P)
        rest = (h << _P) & _MASK64
        rank = _RANK_MAX if rest == 0 else 65 - rest.bit_length()
        old = self._registers[idx]
        if rank > old:
            self._registers[idx] = rank
            self._inverse_sum += (1 << (_RANK_MAX - rank)) - (1 << (_RANK_MAX - old))
            self._zeros -= old == 0

    def count(self) -> int:
        if self._hashes is not None:
            return len(self._hashes)
        estimate = 0.7213 / (1 + 1.079 / _M) * _M * _M / (self._inverse_sum / (1 << _RANK_MAX))
        if estimate <= 2.5 * _M and self._zeros:
            estimate = _M * math.log(_M / self._zeros)  # linear counting for the small range
        return round(estimate)

    def to_obj(self) -> list[int] | str:
        return sorted(self._hashes) if self._hashes is not None else bytes(self._registers or b"").hex()

    @classmethod
    def from_obj(cls, obj: list[int] | str) -> DistinctCounter:
        out = cls()
        if isinstance(obj, str):
            out._hashes, out._registers = None, bytearray.fromhex(obj)
            out._inverse_sum = sum(1 << (_RANK_MAX - r) for r in out._registers)
            out._zeros = out._registers.count(0)
        else:
            out._hashes = set(obj)
        return out


@dataclass
class Welford:
    """Running count, mean and squared deviations (numerically stable sample variance)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def std(self) -> float:
        """Sample standard deviation, as ibis `std()`; NaN below two values."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else math.nan


# Log-spaced gap bins: 0 for gaps under 1 ms, then 2 % wide bins up to about 30 days.
_GAP_MIN = 1e-3
_GAP_RATIO = 1.02
_GAP_BINS = 1 + math.ceil(math.log(3e6 / _GAP_MIN, _GAP_RATIO))


def _gap_bin(gap: float) -> int:
    if gap < _GAP_MIN:
        return 0
    return min(1 + int(math.log(gap / _GAP_MIN, _GAP_RATIO)), _GAP_BINS - 1)


def histogram_median(bins: dict[int, int]) -> float:
    """Median of a log-spaced gap histogram; the mean of the two middle gaps for an even count, as
    SQL. Each middle gap is placed geometrically inside its bin."""
    total = sum(bins.values())
    if not total:
        return math.nan
    ranks = [(total - 1) // 2, total // 2]  # 0-based, in order
    found: list[float] = []
    seen = 0
    for b in sorted(bins):
        c = bins[b]
        while ranks and ranks[0] < seen + c:
            rank = ranks.pop(0)
            found.append(0.0 if b == 0 else float(_GAP_MIN * _GAP_RATIO ** (b - 1 + (rank - seen + 0.5) / c)))
        if not ranks:
            break
        seen += c
    return (found[0] + found[1]) / 2


DISTINCT_KEYS = ("day", "ip", "asn", "ua", "end_user", "language", "template", "prefix")


@dataclass
class AccountState:
    """Everything the online features of one account derive from."""

    n: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    gaps: Welford = field(default_factory=Welford)
    gap_bins: dict[int, int] = field(default_factory=dict)
    temperature: Welford = field(default_factory=Welford)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    distinct: dict[str, DistinctCounter] = field(
        default_factory=lambda: {k: DistinctCounter() for k in DISTINCT_KEYS}
    )
    templates: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)
    # The cached score: risk, its reasons, and the request count it was computed at.
    risk: float | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    scored_n: int = 0

    def count(self, key: str, by: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + by

    def add_value(self, key: str, value: float | None) -> None:
        """Add to a mean over non-null values (sum in `sums[key]`, count in `counts[key + '#']`)."""
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.count(key + "#")

    def add_gap(self, ts: float) -> None:
        if self.last_ts is not None:
            gap = ts - self.last_ts
            self.gaps.add(gap)
            b = _gap_bin(gap)
            self.gap_bins[b] = self.gap_bins.get(b, 0) + 1
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def add_key(self, table: dict[str, int], key: str) -> None:
        if key in table or len(table) < MAX_KEYS:
            table[key] = table.get(key, 0) + 1

    def to_obj(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "gaps": [self.gaps.n, self.gaps.mean, self.gaps.m2],
            "gap_bins": {str(k): v for k, v in self.gap_bins.items()},
            "temperature": [self.temperature.n, self.temperature.mean, self.temperature.m2],
            "hours": self.hours,
            "counts": self.counts,
            "sums": self.sums,
            "distinct": {k: v.to_obj() for k, v in self.distinct.items()},
            "templates": self.templates,
            "prefixes": self.prefixes,
            "risk": self.risk,
            "reasons": self.reasons,
            "scored_n": self.scored_n,
        }

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> AccountState:
        return cls(
            n=o["n"],
            first_ts=o["first_ts"],
            last_ts=o["last_ts"],
            gaps=Welford(*o["gaps"]),
            gap_bins={int(k): v for k, v in o["gap_bins"].items()},
            temperature=Welford(*o["temperature"]),
            hours=list(o["hours"]),
            counts=dict(o["counts"]),
            sums=dict(o["sums"]),
            distinct={k: DistinctCounter.from_obj(v) for k, v in o["distinct"].items()},
            templates=dict(o["templates"]),
            prefixes=dict(o["prefixes"]),
            risk=o["risk"],
            reasons=list(o["reasons"]),
            scored_n=o["scored_n"],
        )


class State(Protocol):
    """Where per-account state and the cross-account context live (in process or in Redis)."""

    def get(self, account_id: str) -> AccountState | None: ...

    def update(self, account_id: str, fn: Callable[[AccountState], None]) -> AccountState:
        """Apply `fn` to the account's state atomically (other workers may update it too)."""
        ...

    def link(self, kind: str, key: str, account_id: str) -> None:
        """Record that `account_id` used `key` (a template id or an IP prefix)."""
        ...

    def accounts_on(self, kind: str, account_id: str, keys: Mapping[str, int]) -> np.ndarray:
        """Distinct accounts seen on each of an account's keys (its `templates` or `prefixes`), in
        the order of `keys`; 1 for a key never linked."""
        ...

    def first_seen(self, name: str, ts: float) -> float:
        """The earliest time recorded under `name`, recording `ts` if it is earlier."""
        ...

    def take_token(self, key: str, per_s: float, burst: float, now: float) -> float:
        """Take one token from the bucket `key` (refilled at `per_s`, holding at most `burst`):
        0.0 when taken, else the seconds until one is due."""
        ...


def bucket_take(
    tokens: float, last: float, per_s: float, burst: float, now: float
) -> tuple[float, float, float]:
    """One token-bucket step: (tokens left, new last time, wait); a full bucket for a new key.

    The one definition of the bucket: `MemoryState` calls it, `RedisState` runs the same steps in
    Lua so that workers sharing an account never both take its last token."""
    tokens = min(burst, tokens + max(0.0, now - last) * per_s)
    if tokens >= 1.0:
        return tokens - 1.0, max(now, last), 0.0
    return tokens, max(now, last), (1.0 - tokens) / per_s


class MemoryState:
    """In-process state for one gateway worker: plain dictionaries behind one lock (the service runs
    `decide` in a thread pool, and an update is many steps, not one atomic dictionary operation)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, AccountState] = {}
        self._links: dict[tuple[str, str], DistinctCounter] = {}
        # Each key's current distinct-account count by kind, in an array by the key's number, and
        # each account's keys as numbers in the order of its table: a rescoring reads up to MAX_KEYS
        # counts with one gather instead of a dictionary lookup per key (out of cache, a 512-key
        # account's lookups took 0.3-0.5 ms).
        self._key_numbers: dict[str, dict[str, int]] = {}
        self._key_accounts: dict[str, np.ndarray] = {}
        self._account_keys: dict[tuple[str, str], array[int]] = {}
        self._first: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def get(self, account_id: str) -> AccountState | None:
        return self._accounts.get(account_id)

    def update(self, account_id: str, fn: Callable[[AccountState], None]) -> AccountState:
        with self._lock:
            st = self._accounts.get(account_id)
            if st is None:
                st = self._accounts[account_id] = AccountState()
            fn(st)
            return st

    def link(self, kind: str, key: str, account_id: str) -> None:
        with self._lock:
            counter = self._links.get((kind, key))
            if counter is None:
                counter = self._links[(kind, key)] = DistinctCounter()
            counter.add(account_id)
            number = self._number(kind, key)  # first: it may grow the array
            self._key_accounts[kind][number] = counter.count()

    def _number(self, kind: str, key: str) -> int:
        """The key's number, given on first sight; its count reads as one account until linked."""
        numbers = self._key_numbers.setdefault(kind, {})
        number = numbers.get(key)
        if number is None:
            number = numbers[key] = len(numbers)
            counts = self._key_accounts.get(kind, np.ones(0, dtype=np.int64))
            if number >= len(counts):
                grown = np.ones(max(1024, 2 * len(counts)), dtype=np.int64)
                grown[: len(counts)] = counts
                self._key_accounts[kind] = grown
        return number

    def accounts_on(self, kind: str, account_id: str, keys: Mapping[str, int]) -> np.ndarray:
        if not keys:  # nothing kept for an account without keys (an unseen one, asked about)
            return np.zeros(0, dtype=np.int64)
        with self._lock:
            # An account's table only ever gains keys, at its end: number the ones not yet numbered.
            mine = self._account_keys.get((kind, account_id))
            if mine is None or len(mine) > len(keys):
                mine = self._account_keys[(kind, account_id)] = array("q")
            if len(mine) < len(keys):
                mine.extend(self._number(kind, k) for k in islice(keys, len(mine), None))
            return self._key_accounts[kind][np.frombuffer(mine, dtype=np.int64)]

    def first_seen(self, name: str, ts: float) -> float:
        with self._lock:
            cur = self._first.get(name)
            if cur is None or ts < cur:
                self._first[name] = cur = ts
            return cur

    def take_token(self, key: str, per_s: float, burst: float, now: float) -> float:
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens, last, wait = bucket_take(tokens, last, per_s, burst, now)
            self._buckets[key] = (tokens, last)
            return wait
