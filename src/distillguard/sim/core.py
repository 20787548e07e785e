"""The simulator's vocabulary: accounts, exchanges, ground truth and the shared generation context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

# Simulated logs start on a fixed Monday, so the same seed gives the same bytes on any day.
EPOCH = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
DAY = 86_400.0


@dataclass
class Account:
    account_id: str
    created_at: float
    email_domain: str
    payment_fingerprint: str
    country: str
    account_type: str
    verified: bool
    key_hash: str
    org_id: str | None = None
    team_id: str | None = None
    # ground truth
    label: str = "benign"
    population: str = ""
    campaign_id: str = ""
    actor: str = ""
    capability: str = "general"


@dataclass
class Exchange:
    """One request and its answer, before it is rendered as a log line."""

    t: float
    account: Account
    ip: str
    user_agent: str
    model: str
    user: str
    response: str
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    end_user: str | None = None
    headers: dict[str, str] | None = None
    # multiplier on the visible answer's tokens spent on hidden reasoning (reasoning models only)
    reasoning: float = 0.0
    # chance the request fails (429 for clients riding the rate limit, else rare 5xx)
    fail_rate: float = 0.003
    # set on the distilling end users of a reseller, whose account is otherwise genuine
    distilling: bool = False


@dataclass
class Ctx:
    """What every population and campaign generator shares: the random stream, the window, the scale."""

    rng: np.random.Generator
    scale: float
    days: float = 7.0
    start: float = EPOCH
    counter: dict[str, int] = field(default_factory=dict)
    # Which benign accounts signed up days before the window: a stream of its own, spawned from
    # `rng`'s seed without drawing from it, so that adding it left every other draw of a seed as it was.
    signups: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        seeds = self.rng.bit_generator.seed_seq
        assert isinstance(seeds, np.random.SeedSequence)
        self.signups = np.random.default_rng(seeds.spawn(1)[0])

    @property
    def end(self) -> float:
        return self.start + self.days * DAY

    def n(self, base: float) -> int:
        """`base` scaled, at least one."""
        return max(1, round(base * self.scale))

    def new_id(self, prefix: str) -> str:
        """Sequential ids per prefix: readable, and stable for a seed."""
        i = self.counter.get(prefix, 0) + 1
        self.counter[prefix] = i
        return f"{prefix}_{i:06d}"

    def hex(self, nbytes: int = 16) -> str:
        return self.rng.bytes(nbytes).hex()

    def pick(self, seq: Any) -> Any:
        return seq[int(self.rng.integers(len(seq)))]
