"""Verdicts from scores: thresholds, an allowlist and a monitor-only switch, read from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillguard.schema import VERDICTS

DEFAULT_POLICY = Path(__file__).parent / "policy.yaml"


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float]
    monitor_only: bool = False
    allowlist: frozenset[str] = frozenset()
    actions: dict[str, list[str]] = field(default_factory=dict)
    # A throttled account keeps this many requests a minute, in bursts of at most `throttle_burst`.
    throttle_per_minute: float = 6.0
    throttle_burst: float = 3.0

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        path = path or DEFAULT_POLICY
        try:
            raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read policy: {exc}") from exc
        thresholds = {str(k): float(v) for k, v in (raw.get("thresholds") or {}).items()}
        unknown = set(thresholds) - set(VERDICTS)
        if unknown:
            raise ValueError(f"{path}: thresholds: unknown verdicts {sorted(unknown)}; use {VERDICTS[1:]}")
        rate = raw.get("throttle_rate") or {}
        try:
            per_minute, burst = float(rate.get("per_minute", 6.0)), float(rate.get("burst", 3.0))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: throttle_rate: per_minute and burst must be numbers") from exc
        if per_minute <= 0 or burst < 1:
            raise ValueError(f"{path}: throttle_rate: per_minute must be > 0 and burst >= 1")
        return cls(
            thresholds=thresholds,
            throttle_per_minute=per_minute,
            throttle_burst=burst,
            monitor_only=bool(raw.get("monitor_only", False)),
            allowlist=frozenset(str(a) for a in raw.get("allowlist") or ()),
            actions={str(k): list(v or []) for k, v in (raw.get("actions") or {}).items()},
        )

    def verdict(self, account_id: str, score: float) -> str:
        """The strictest verdict whose threshold the score reaches; allow for partners and in monitor mode."""
        if self.monitor_only or account_id in self.allowlist:
            return "allow"
        return self.raw_verdict(score)

    def raw_verdict(self, score: float) -> str:
        """The verdict the score alone earns, ignoring the allowlist and monitor mode."""
        for name in reversed(VERDICTS[1:]):
            if name in self.thresholds and score >= self.thresholds[name]:
                return name
        return "allow"
