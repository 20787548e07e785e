"""Time to first flag: the simulated log replayed in time order through the online detector.

Per campaign, how many of its exchanges the gateway had served before the first of its accounts
reached `throttle` or stricter: the damage done before the online path reacts. A reseller's campaign
is its distilling end users: its genuine customers' requests are the reseller's, not the campaign's,
so they do not count as campaign exchanges (the account's verdict still counts as the flag).
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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
    end_users: Mapping[tuple[str, str], str] | None = None,
    benign: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Replay `events` (in time order) through `decide()`; `signals` looks up each request's signals.

    `end_users` maps (account, end user) of shared accounts to the end user's campaign ("" when the
    end user is genuine): there only the campaign's end users' exchanges count as the campaign's.
    `benign` (account -> population) adds what the same replay costs them: the benign accounts
    that reached `throttle` or stricter at any request, per population."""
    end_users = end_users or {}
    shared = {a for a, _ in end_users}
    det = OnlineDetector(model, policy=policy or Policy.load(), accounts=dict(accounts), signals=signals)
    seen: dict[str, int] = {}
    flagged_at: dict[str, int] = {}
    benign = benign or {}
    benign_seen: set[str] = set()
    benign_flagged: set[str] = set()
    t = time.perf_counter()
    for e in events:
        d = det.decide(dict(e))
        account = e["account_id"]
        camp = campaign_of.get(account)
        if camp is None:
            if account in benign:
                benign_seen.add(account)
                if d.raw_verdict in FLAGGED:
                    benign_flagged.add(account)
            continue
        own = account not in shared or bool(end_users.get((account, e.get("end_user_id") or "")))
        seen[camp] = seen.get(camp, 0) + own
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
        "benign": {
            "accounts": len(benign_seen),
            "flagged": len(benign_flagged),
            "flagged_by_population": dict(sorted(Counter(benign[a] for a in benign_flagged).items())),
        },
        "replay_s": time.perf_counter() - t,
        "events": len(events),
    }


def read_end_user_campaigns(path: Path) -> dict[tuple[str, str], str]:
    """The simulator's end_user_truth.csv as {(account, end user): campaign id or ""}."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {(r["account_id"], r["end_user_id"]): r["campaign_id"] for r in csv.DictReader(fh)}


def signal_lookup(rows: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """A `signals` function for the detector over precomputed request_signals rows."""
    by_id = {r["request_id"]: r for r in rows}
    return lambda event: by_id[event["request_id"]]
