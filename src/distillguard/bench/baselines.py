"""Baselines a provider might already run, scored on the same accounts as distillguard.

- volume: the busiest day's request count per account, what a gateway rate limit looks at.
- prada: PRADA (Juuti et al., 2019) adapted to text. PRADA flags a client when the minimum
  distances between each new query and its earlier queries stop looking normally distributed
  (Shapiro-Wilk W below a threshold), because synthetic query sets are built, not asked.
  Adaptation: queries are prompts embedded as L2-normalised hashed character 3-5-gram TF vectors,
  distance is cosine distance, the statistic is computed over each account's prompts in time order
  (up to the last 300), and the score is 1 - W so that higher means more suspicious. Accounts with
  fewer than 20 prompts, or with no text at all, score 0, as PRADA cannot test them.
- cot_keywords: the share of an account's prompts that match a keyword list for chain-of-thought
  elicitation ("step by step", "reasoning", ...), the filter a provider writes first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import shapiro
from sklearn.feature_extraction.text import HashingVectorizer

_COT = re.compile(
    r"step[- ]by[- ]step|chain[- ]of[- ]thought|reasoning|think (it )?through|show your work|"
    r"explain (your|the) (thinking|logic)|internal (monologue|thoughts)|rationale",
    re.IGNORECASE,
)
_PRADA_MIN, _PRADA_WINDOW = 20, 300


def _by_account(events: pa.Table) -> dict[str, np.ndarray]:
    """Row indices of each account, in time order."""
    order = pc.sort_indices(events, [("account_id", "ascending"), ("start_time", "ascending")])
    accounts = events.column("account_id").take(order).to_numpy(zero_copy_only=False)
    idx = order.to_numpy()
    cuts = np.flatnonzero(accounts[1:] != accounts[:-1]) + 1
    return {str(accounts[s]): idx[s:e] for s, e in zip([0, *cuts], [*cuts, len(idx)], strict=True)}


def volume(events: pa.Table) -> dict[str, float]:
    days = pc.floor(
        pc.divide(pc.cast(pc.cast(events.column("start_time"), pa.int64()), pa.float64()), 86400e6)
    )
    t = pa.table({"a": events.column("account_id"), "d": days})
    per_day = t.group_by(["a", "d"]).aggregate([("a", "count")])
    peak = per_day.group_by("a").aggregate([("a_count", "max")])
    return dict(
        zip(peak.column("a").to_pylist(), map(float, peak.column("a_count_max").to_pylist()), strict=True)
    )


def prada(events: pa.Table) -> dict[str, float]:
    texts = events.column("user_text").to_pylist()
    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18, alternate_sign=False)
    out: dict[str, float] = {}
    for account, rows in _by_account(events).items():
        prompts = [texts[i] for i in rows if texts[i]][-_PRADA_WINDOW:]
        if len(prompts) < _PRADA_MIN:
            out[account] = 0.0
            continue
        X = vec.transform(prompts)
        sims = (X @ X.T).toarray()
        norms = np.sqrt(np.clip(np.diag(sims), 1e-12, None))
        cos = sims / norms[:, None] / norms[None, :]
        # Distance of each query to its nearest earlier query (PRADA's growing set).
        d = np.array([1.0 - cos[i, :i].max() for i in range(1, len(prompts))])
        w = shapiro(d).statistic if np.ptp(d) > 0 else 0.0
        out[account] = float(1.0 - w)
    return out


def cot_keywords(events: pa.Table) -> dict[str, float]:
    texts = events.column("user_text").to_pylist()
    out: dict[str, float] = {}
    for account, rows in _by_account(events).items():
        prompts = [texts[i] for i in rows if texts[i]]
        out[account] = float(np.mean([bool(_COT.search(p)) for p in prompts])) if prompts else 0.0
    return out


BASELINES: dict[str, Callable[[pa.Table], dict[str, float]]] = {
    "volume": volume,
    "prada": prada,
    "cot_keywords": cot_keywords,
}
