"""Train the shipped risk model on simulated labelled traffic: `distillguard train`.

Training seeds are disjoint from the benchmark's (1-3), and each seed is used twice, with and
without prompt text, so one model serves full-content and metadata-only logs alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
from rich.console import Console
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold

from distillguard.bench.run import read_truth
from distillguard.features import account_features
from distillguard.io import ReadOptions, RejectSink
from distillguard.pipeline import enriched_accounts, prepare
from distillguard.score import DEFAULT_MODEL, RiskModel, feature_matrix
from distillguard.store import REQUEST_SIGNALS, Store

TRAIN_SEEDS = tuple(range(101, 111))


# Besides each whole week, the account histories of its first day and first three days: the online
# path scores accounts after a handful of requests, and a mid-week scan sees partial weeks.
PREFIX_DAYS = (1.0, 3.0)
# And each account's own first requests: what the gateway knows of an account at its first and
# third request, wherever in the week that falls (a campaign's accounts start on different days).
FIRST_REQUESTS = (1, 3)


def training_set(
    seeds: Sequence[int],
    scale: str | float,
    scenario: str,
    work: Path,
    prefix_days: Sequence[float] = PREFIX_DAYS,
    first_requests: Sequence[int] = FIRST_REQUESTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and labels over every seed, full content and metadata-only, whole weeks, their
    `prefix_days` prefixes and each account's `first_requests` first requests."""
    from distillguard.sim import simulate

    xs, ys = [], []
    for seed in seeds:
        for meta in (False, True):
            run = work / f"{scenario}-{seed}-{'meta' if meta else 'full'}"
            simulate(scenario=scenario, seed=seed, scale=scale, out=run / "sim", metadata_only=meta)
            truth = read_truth(run / "sim" / "truth.csv")
            store = Store(run / "train.duckdb")
            _, feats = prepare(
                store,
                sorted((run / "sim").glob("logs*.jsonl*")),
                RejectSink(),
                ReadOptions(),
                accounts=run / "sim" / "accounts.csv",
            )
            windows = [feats] + [_prefix_features(store, days) for days in prefix_days]
            windows += [_first_requests_features(store, k) for k in first_requests]
            store.close()
            for f in windows:
                ids = f.column("account_id").to_pylist()
                xs.append(feature_matrix(f))
                ys.append(np.array([truth[a].label for a in ids]))
    return np.vstack(xs), np.concatenate(ys)


def _prefix_features(store: Store, days: float) -> pa.Table:
    """Account features over the events of the store's first `days` days only."""
    events = store.events
    first = events.start_time.min().execute()
    return _window_features(store, events.filter(events.start_time < first + timedelta(days=days)))


def _first_requests_features(store: Store, k: int) -> pa.Table:
    """Account features over each account's first `k` requests only."""
    events = store.events
    order = ibis.row_number().over(
        group_by=events.account_id, order_by=[events.start_time, events.request_id]
    )
    return _window_features(store, events.mutate(_order=order).filter(lambda t: t._order < k).drop("_order"))


def _window_features(store: Store, events: ibis.Table) -> pa.Table:
    return account_features(events, store.table(REQUEST_SIGNALS), enriched_accounts(store)).to_pyarrow()


def train(
    seeds: Sequence[int] = TRAIN_SEEDS,
    scale: str | float = "small",
    scenario: str = "mixed",
    out: Path = DEFAULT_MODEL,
    work: Path | None = None,
    benign_seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """Fit the risk model on `scenario` worlds, plus `benign_seeds` worlds without campaigns: each
    adds a world's worth of hard negatives (evaluation runners, NATs, enterprise apps, a router),
    which one mixed world holds only a handful of."""
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        X, y = training_set(seeds, scale, scenario, work or Path(tmp))
        if benign_seeds:
            Xb, yb = training_set(benign_seeds, scale, "benign", work or Path(tmp))
            X, y = np.vstack([X, Xb]), np.concatenate([y, yb])
    console.log(f"training on {len(y)} account windows, {int(y.sum())} distillers")
    # Out-of-fold AP, so the recorded figure is not the model grading its own homework.
    oof = np.zeros(len(y))
    for fit_idx, held_idx in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        oof[held_idx] = RiskModel().fit(X[fit_idx], y[fit_idx]).predict_proba(X[held_idx])
    model = RiskModel().fit(X, y)
    meta = {
        "trained": datetime.now(UTC).isoformat(),
        "seeds": list(seeds),
        "benign_seeds": list(benign_seeds),
        "prefix_days": list(PREFIX_DAYS),
        "first_requests": list(FIRST_REQUESTS),
        "scale": scale,
        "scenario": scenario,
        "rows": len(y),
        "distillers": int(y.sum()),
        "oof_average_precision": float(average_precision_score(y, oof)),
    }
    model.save(out, meta)
    console.log(f"saved {out}: out-of-fold AP {meta['oof_average_precision']:.4f}")
    return meta
