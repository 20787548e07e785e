"""A `RiskModel` flattened into arrays and walked by one compiled loop: scoring one account costs
microseconds, not milliseconds.

scikit-learn's predict path is built for matrices: on one row its per-tree and per-fold overhead
(and OpenMP start-up on a busy machine) costs 5-20 ms. Here the nodes of every tree of every
calibration fold sit in flat arrays, and a numba loop descends each tree as scikit-learn does (a
value at or below the threshold goes left, a missing value where the node says), adding each exit
leaf to its fold's raw score. Each fold's isotonic calibrator is the linear interpolation between
its thresholds, clipped at the ends, as scikit-learn's. The result equals
`RiskModel.predict_proba` to float precision (tests/online/test_decide.py).
"""

from __future__ import annotations

import numba
import numpy as np

from distillguard.score import RiskModel


@numba.njit(cache=True, nogil=True)
def _probability(
    x: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    nan_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    fold_of_tree: np.ndarray,
    baselines: np.ndarray,
    calib_x: np.ndarray,
    calib_y: np.ndarray,
    calib_start: np.ndarray,
) -> float:  # pragma: no cover - compiled
    n_folds = len(baselines)
    raw = baselines.copy()
    for t in range(len(roots)):
        i = roots[t]
        while left[i] >= 0:  # a leaf has no children
            v = x[feature[i]]
            if np.isnan(v):
                i = left[i] if nan_left[i] else right[i]
            elif v <= threshold[i]:
                i = left[i]
            else:
                i = right[i]
        raw[fold_of_tree[t]] += value[i]
    total = 0.0
    for k in range(n_folds):
        lo, hi = calib_start[k], calib_start[k + 1]
        total += np.interp(raw[k], calib_x[lo:hi], calib_y[lo:hi])
    return total / n_folds


class CompiledRiskModel:
    """`predict_one(x)` == `model.predict_proba(x[None])[0]` for a fitted `RiskModel`."""

    def __init__(self, model: RiskModel) -> None:
        feature, threshold, nan_left, left, right, value = [], [], [], [], [], []
        roots: list[int] = []
        fold_of_tree: list[int] = []
        baselines: list[float] = []
        calib_x: list[np.ndarray] = []
        calib_y: list[np.ndarray] = []
        offset = 0
        for k, fold in enumerate(model.model_.calibrated_classifiers_):
            est = fold.estimator
            if est.n_trees_per_iteration_ != 1 or len(fold.calibrators) != 1:
                raise ValueError("only binary gradient-boosted models can be compiled")
            baselines.append(float(np.ravel(est._baseline_prediction)[0]))
            iso = fold.calibrators[0]
            calib_x.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
            calib_y.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
            for (predictor,) in est._predictors:
                nodes = predictor.nodes
                if nodes["is_categorical"].any():
                    raise ValueError("categorical splits are not supported")
                leaf = nodes["is_leaf"].astype(bool)
                roots.append(offset)
                fold_of_tree.append(k)
                feature.append(nodes["feature_idx"].astype(np.intp))
                threshold.append(nodes["num_threshold"].astype(np.float64))
                nan_left.append(nodes["missing_go_to_left"].astype(bool))
                left.append(np.where(leaf, -1, nodes["left"].astype(np.intp) + offset))
                right.append(np.where(leaf, -1, nodes["right"].astype(np.intp) + offset))
                value.append(nodes["value"].astype(np.float64))
                offset += len(nodes)
        self._arrays = (
            np.concatenate(feature),
            np.concatenate(threshold),
            np.concatenate(nan_left),
            np.concatenate(left),
            np.concatenate(right),
            np.concatenate(value),
            np.asarray(roots, dtype=np.intp),
            np.asarray(fold_of_tree, dtype=np.intp),
            np.asarray(baselines, dtype=np.float64),
            np.concatenate(calib_x),
            np.concatenate(calib_y),
            np.concatenate(([0], np.cumsum([len(c) for c in calib_x]))).astype(np.intp),
        )

    def predict_one(self, x: np.ndarray) -> float:
        """Calibrated distiller probability of one feature row (FEATURES order, NaN for null)."""
        return float(_probability(np.asarray(x, dtype=np.float64), *self._arrays))
