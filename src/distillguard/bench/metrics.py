"""Detection metrics on labelled accounts: ranking quality, operating points, campaigns, attribution."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score, average_precision_score, roc_auc_score


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """Recall of positives when the threshold lets through at most `fpr` of negatives.

    Ties at the threshold count against us: an account scored exactly at the cut is flagged only
    if every negative with that score fits in the budget.
    """
    neg = np.sort(score[y == 0])[::-1]
    pos = score[y == 1]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    budget = int(np.floor(fpr * len(neg)))
    # Smallest threshold t with #(neg >= t) <= budget: just above the (budget+1)-th highest negative.
    cut = neg[budget] if budget < len(neg) else -np.inf
    return float(np.mean(pos > cut))


def ranking(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        "auroc": float(roc_auc_score(y, score)),
        "ap": float(average_precision_score(y, score)),
        "recall_at_1pct_fpr": recall_at_fpr(y, score, 0.01),
        "recall_at_0.1pct_fpr": recall_at_fpr(y, score, 0.001),
    }


def flagged_rate_by_group(flagged: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Share of each group's accounts flagged (FPR for benign groups, recall for attacker groups)."""
    total: Counter[str] = Counter(groups)
    hits: Counter[str] = Counter(g for g, f in zip(groups, flagged, strict=True) if f)
    return {g: hits[g] / n for g, n in sorted(total.items())}


def campaign_agreement(true_ids: Sequence[str], found_ids: Sequence[str | None]) -> dict[str, float]:
    """Adjusted Rand index and purity of found campaigns over true distiller accounts.

    An unlinked account (no found campaign) is its own singleton cluster, so missing a link costs ARI.
    """
    found = [f if f else f"_single_{i}" for i, f in enumerate(found_ids)]
    ari = float(adjusted_rand_score(true_ids, found)) if len(true_ids) > 1 else float("nan")
    members: defaultdict[str, list[str]] = defaultdict(list)
    for t, f in zip(true_ids, found_ids, strict=True):
        if f:
            members[f].append(t)
    clustered = sum(len(v) for v in members.values())
    majority = sum(Counter(v).most_common(1)[0][1] for v in members.values())
    return {"ari": ari, "purity": majority / clustered if clustered else float("nan")}
