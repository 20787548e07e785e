import numpy as np
import pyarrow as pa

from distillguard.features import FEATURES
from distillguard.score import DEFAULT_MODEL, Reason, RiskModel, feature_matrix


def _reasons_with_numpy(model: RiskModel, x: np.ndarray, top: int = 5) -> list[Reason]:
    # The definition, array-wise: features outside the benign range, weighted by importance.
    lo, hi = model.benign_low_, model.benign_high_
    outside = ((x > hi) | (x < lo)) & ~np.isnan(lo) & ~np.isnan(hi)
    span = np.maximum(hi - lo, 1e-9)
    with np.errstate(invalid="ignore"):
        excess = np.where(x > hi, (x - hi) / span, (lo - x) / span)
    weight = model.importance_ * np.minimum(1.0 + excess, 5.0)
    out = [
        Reason(FEATURES[i], float(x[i]), float(lo[i]), float(hi[i]), float(weight[i]))
        for i in np.flatnonzero(outside & (weight > 0))
    ]
    if not out:
        out = [
            Reason(FEATURES[i], float(x[i]), float(lo[i]), float(hi[i]), float(model.importance_[i]))
            for i in np.argsort(-model.importance_)[:3]
            if not np.isnan(x[i])
        ]
    return sorted(out, key=lambda r: -r.weight)[:top]


def test_reasons_follow_their_definition() -> None:
    model = RiskModel.load()
    lo, hi = model.benign_low_, model.benign_high_
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(400):
        # Values around and beyond each benign range, some exactly on a bound, some missing.
        x = lo + (hi - lo) * rng.uniform(-2, 3, len(FEATURES))
        x[rng.random(len(FEATURES)) < 0.1] = np.nan
        on = rng.random(len(FEATURES)) < 0.05
        x[on] = hi[on]
        rows.append(x)
    for x in rows:
        assert model.reasons(x) == _reasons_with_numpy(model, x)
    # Inside every benign range: the model's most important features, with this account's values.
    inside = np.where(np.isnan(lo) | np.isnan(hi), np.nan, (lo + hi) / 2)
    fallback = model.reasons(inside)
    assert fallback and fallback == _reasons_with_numpy(model, inside)
    assert all(r.benign_low <= r.value <= r.benign_high for r in fallback)


def test_feature_matrix_ignores_summation_noise() -> None:
    """Two scans' parallel sums differ in their last bits; the matrix (and so the score) must not."""

    def table(value: float) -> pa.Table:
        return pa.table({f: [value if i == 0 else 1.0] for i, f in enumerate(FEATURES)})

    a, b = feature_matrix(table(0.700000000000001)), feature_matrix(table(0.6999999999999997))
    assert np.array_equal(a, b)
    assert a[0, 0] == 0.7
    model = RiskModel.load(DEFAULT_MODEL)
    assert np.array_equal(model.predict_proba(a), model.predict_proba(b))
