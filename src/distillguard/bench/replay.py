"""Time to first flag: the simulated log replayed in time order through the online detector.

Per campaign, how many of its exchanges the gateway had served before the first of its accounts
reached `throttle` or stricter: the damage done before the online path reacts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from distillguard.online.decide import OnlineDetector
from distillguard.policy import Policy
from distillguard.schema import VERDICTS
from distillguard.score import RiskModel

FLAGGED = frozenset(VERDICTS[VERDICTS.index("throttle") :])


def replay_campaigns(
    events: Sequence[Mapping[str, Any]],
    campaign_of: Mapping[str, str],
    model: RiskModel,
    accounts: Mapping[str, Any],
    signals: Callable[[pa.RecordBatch], pa.RecordBatch],
    policy: Policy | None = None,
) -> dict[str, Any]:
    """Replay `events` (in time order) through `decide()`; `signals` looks up each request's signals."""
    det = OnlineDetector(model, policy=policy or Policy.load(), accounts=dict(accounts), signals=signals)
    seen: dict[str, int] = {}
    flagged_at: dict[str, int] = {}
    t = time.perf_counter()
    for e in events:
        d = det.decide(dict(e))
        camp = campaign_of.get(e["account_id"])
        if camp is None:
            continue
        seen[camp] = seen.get(camp, 0) + 1
        if camp not in flagged_at and d.raw_verdict in FLAGGED:
            flagged_at[camp] = seen[camp]
    per = {
        c: {
            "exchanges": seen[c],
            "seen_before_flag": flagged_at.get(c),
            "share_before_flag": (flagged_at[c] / seen[c]) if c in flagged_at else None,
        }
        for c in sorted(seen)
    }
    shares = [p["share_before_flag"] for p in per.values()]
    # None when some campaign was never flagged: no share bounds it.
    worst = max(x for x in shares if x is not None) if shares and None not in shares else None
    return {
        "campaigns": per,
        "worst_share_before_flag": worst,
        "replay_s": time.perf_counter() - t,
        "events": len(events),
    }


def signal_lookup(rows: Sequence[Mapping[str, Any]]) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A `signals` function for the detector over precomputed request_signals rows."""
    by_id = {r["request_id"]: r for r in rows}

    def lookup(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist([by_id[r] for r in batch.column("request_id").to_pylist()])

    return lookup
