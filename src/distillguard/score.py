"""Per-account risk: a calibrated model over `features.FEATURES`, and reasons an analyst can check.

`RiskModel` follows scikit-learn conventions (parameters in the constructor, `fit` returns self,
learned state ends in `_`). It is a gradient-boosted tree ensemble with isotonic calibration, so
0.9 means about nine in ten such accounts were distillers in the labelled traffic it saw.
Reasons are the features on which an account sits outside the benign range seen in training,
ordered by the model's reliance on them.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from distillguard.features import FEATURES

MODEL_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODEL_DIR / "risk_model.skops"

# What each feature means to an analyst, written as the sentence a reason uses.
FEATURE_TEXT: dict[str, str] = {
    "n_requests": "request volume",
    "active_days": "days active",
    "requests_per_active_day": "requests per active day",
    "gap_cv": "regularity of request timing (low = machine-like)",
    "gap_median_s": "median gap between requests",
    "hour_entropy": "spread of activity over the day (high = around the clock)",
    "cap_cot_elicitation_share": "share of chain-of-thought elicitation prompts",
    "cap_rubric_grading_share": "share of rubric/reward grading prompts",
    "cap_censorship_rewrite_share": "share of censorship-safe rewrite prompts",
    "cap_agentic_coding_share": "share of agentic coding prompts",
    "cap_benchmark_item_share": "share of benchmark-style items",
    "cap_general_share": "share of general prompts",
    "cap_unknown_share": "share of requests without text",
    "distill_cap_share": "share of prompts extracting a distillable capability",
    "capability_score_mean": "classifier confidence on the capability",
    "template_distinct_ratio": "distinct templates per request (low = templated traffic)",
    "template_top_share": "share of traffic on the top template",
    "template_shared_share": "share of prompts on templates used by 3+ accounts",
    "template_shared_accounts_mean": "accounts sharing this account's templates (log10)",
    "language_distinct": "number of prompt languages",
    "non_english_share": "share of non-English prompts",
    "prompt_chars_mean": "mean prompt length",
    "prompt_tokens_mean": "mean prompt tokens",
    "completion_tokens_mean": "mean completion tokens",
    "completion_prompt_ratio": "completion/prompt token ratio",
    "reasoning_tokens_share": "share of requests with reasoning tokens",
    "max_tokens_mean": "mean max_tokens requested",
    "temperature_mean": "mean temperature",
    "temperature_std": "variation of temperature",
    "n_gt1_share": "share of requests asking for several choices (n > 1)",
    "logprobs_share": "share of requests asking for logprobs",
    "stream_share": "share of streaming requests",
    "tools_share": "share of requests with tools",
    "system_prompt_share": "share of requests with a system prompt",
    "error_share": "error rate",
    "rate_limited_share": "share of requests rejected by rate limits (429)",
    "hosting_share": "share of requests from hosting/datacenter IPs",
    "vpn_tor_proxy_share": "share of requests from VPN, Tor or proxy IPs",
    "residential_share": "share of requests from residential IPs",
    "ip_distinct_ratio": "distinct IPs per request (IP churn)",
    "prefix_distinct": "distinct IP prefixes",
    "asn_distinct": "distinct autonomous systems",
    "ua_distinct": "distinct user agents",
    "prefix_accounts_mean": "accounts seen on the same IP prefixes (log10)",
    "end_user_distinct": "distinct end users",
    "has_referer_share": "share of requests with app attribution headers",
    "new_model_early_share": "share of traffic on a model within 24 h of its release",
    "account_age_days": "account age at first request (days)",
    "email_disposable": "disposable e-mail domain",
    "verified": "identity verified",
    "is_free": "free-tier account",
    "is_enterprise": "enterprise or partner account",
}


@dataclass(frozen=True)
class Reason:
    """One reason an account scored high: the feature, its value and the benign range it left."""

    feature: str
    value: float
    benign_low: float
    benign_high: float
    weight: float

    @property
    def text(self) -> str:
        name = FEATURE_TEXT.get(self.feature, self.feature)
        if self.benign_low <= self.value <= self.benign_high:
            return f"{name} {self.value:.3g} (within benign {self.benign_low:.3g}-{self.benign_high:.3g})"
        side = "above" if self.value > self.benign_high else "below"
        bound = self.benign_high if side == "above" else self.benign_low
        return f"{name} {self.value:.3g} ({side} benign {bound:.3g})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.feature,
            "weight": round(self.weight, 4),
            "detail": self.text,
            "evidence": {"value": self.value, "benign_range": [self.benign_low, self.benign_high]},
        }


# Per model: its benign bounds, spans and importances as Python floats, and the three most important
# features. A reason is read per flagged account, online at every rescoring: plain floats over sixty
# features cost less than numpy's set-up per call, which dominates once its code is out of cache.
_REASON_TABLES: weakref.WeakKeyDictionary[RiskModel, tuple[list[list[float]], list[int]]] = (
    weakref.WeakKeyDictionary()
)


def _reason_table(model: RiskModel) -> tuple[list[list[float]], list[int]]:
    table = _REASON_TABLES.get(model)
    if table is None:
        lo, hi = model.benign_low_, model.benign_high_
        span = np.maximum(hi - lo, 1e-9)
        bounds = [lo.tolist(), hi.tolist(), span.tolist(), model.importance_.tolist()]
        table = _REASON_TABLES[model] = (bounds, np.argsort(-model.importance_)[:3].tolist())
    return table


def feature_matrix(table: pa.Table) -> np.ndarray:
    """The features of `table` as a float matrix in FEATURES order (nulls become NaN), rounded
    (`rounded_features`)."""
    cols = [np.asarray(table.column(f).cast(pa.float64()).to_numpy(zero_copy_only=False)) for f in FEATURES]
    return rounded_features(np.column_stack(cols).astype(np.float64))


def rounded_features(x: np.ndarray) -> np.ndarray:
    """Features as the model sees them, batch and online: rounded to 9 decimals. The engine's parallel
    sums differ in their last bits from run to run, and a value on a tree's split (a mean temperature
    of 0.7 read as 0.700000000000001 or 0.6999999999999997) moved an account's score between two
    scans of one store."""
    return np.round(x, 9)


class RiskModel:
    """Calibrated distiller probability per account from its feature row."""

    def __init__(self, max_iter: int = 150, learning_rate: float = 0.1, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    # One OpenMP thread: the data are small (one row per account), and OpenMP's spinning threads
    # slow tree ensembles tenfold on a busy 2-core machine.
    @threadpool_limits.wrap(limits=1, user_api="openmp")
    def fit(self, X: np.ndarray, y: np.ndarray) -> RiskModel:
        # A feature never observed in training (e.g. text features on metadata-only data) cannot be
        # binned; zero it for fitting, so at prediction its NaNs take the learned missing-value path.
        X = np.where(np.isnan(X).all(axis=0), 0.0, X)
        base = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            l2_regularization=1.0,
            random_state=self.random_state,
        )
        self.model_ = CalibratedClassifierCV(base, method="isotonic", cv=3).fit(X, y)
        benign = X[y == 0]
        # The benign range: 1st-99th percentile of benign accounts, NaNs ignored.
        with np.errstate(all="ignore"):
            self.benign_low_ = np.nanpercentile(benign, 1, axis=0)
            self.benign_high_ = np.nanpercentile(benign, 99, axis=0)
        sample = np.random.default_rng(self.random_state).choice(len(X), min(len(X), 1500), replace=False)
        imp = permutation_importance(
            self.model_,
            X[sample],
            y[sample],
            scoring="average_precision",
            n_repeats=2,
            random_state=self.random_state,
        )
        self.importance_ = np.clip(imp.importances_mean, 0, None)
        return self

    @threadpool_limits.wrap(limits=1, user_api="openmp")
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of being a distiller, per row."""
        return np.asarray(self.model_.predict_proba(X)[:, 1])

    def reasons(self, x: np.ndarray, top: int = 5) -> list[Reason]:
        """The features of one account outside the benign range, weighted by importance."""
        bounds, fallback = _reason_table(self)
        out = []
        for name, v, lo, hi, span, importance in zip(FEATURES, x.tolist(), *bounds, strict=True):
            # A NaN compares false: a NaN value or a feature without a benign range gives no reason.
            if v > hi:
                weight = importance * min(1.0 + (v - hi) / span, 5.0)
            elif v < lo:
                weight = importance * min(1.0 + (lo - v) / span, 5.0)
            else:
                continue
            if weight > 0 and lo == lo and hi == hi:
                out.append(Reason(name, v, lo, hi, weight))
        if not out:
            # Inside every benign range yet scored high: the combination decided, so name the
            # features the model leans on most, with this account's values.
            for i in fallback:
                if not np.isnan(x[i]):
                    out.append(Reason(FEATURES[i], float(x[i]), bounds[0][i], bounds[1][i], bounds[3][i]))
        return sorted(out, key=lambda r: -r.weight)[:top]

    def save(self, path: Path = DEFAULT_MODEL, meta: dict[str, Any] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(self, path)
        (path.with_suffix(".json")).write_text(
            json.dumps({"features": list(FEATURES), **(meta or {})}, indent=2, default=str)
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> RiskModel:
        trusted = [
            t for t in sio.get_untrusted_types(file=path) if t.startswith(("distillguard.", "sklearn."))
        ]
        model = sio.load(path, trusted=trusted)
        if not isinstance(model, cls):
            raise TypeError(f"{path} does not hold a RiskModel")
        meta = json.loads(path.with_suffix(".json").read_text())
        if tuple(meta["features"]) != FEATURES:
            raise ValueError(f"{path} was trained on other features; retrain with `distillguard train`")
        return model
