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

# One 16-byte record per node, so that descending a tree touches one place per node rather than one
# per array (out of cache, each was a miss). A node's left child is the next node (scikit-learn
# numbers the nodes depth first, left before right); a leaf keeps its value in `threshold`.
NODE = np.dtype([("threshold", "f8"), ("right", "i4"), ("feature", "i2"), ("nan_left", "u1"), ("leaf", "u1")])


@numba.njit(cache=True, nogil=True)
def _probability(
    x: np.ndarray,
    nodes: np.ndarray,
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
        while not nodes[i].leaf:
            node = nodes[i]
            v = x[node.feature]
            if np.isnan(v):
                i = i + 1 if node.nan_left else node.right
            elif v <= node.threshold:
                i = i + 1
            else:
                i = node.right
        raw[fold_of_tree[t]] += nodes[i].threshold
    total = 0.0
    for k in range(n_folds):
        lo, hi = calib_start[k], calib_start[k + 1]
        total += np.interp(raw[k], calib_x[lo:hi], calib_y[lo:hi])
    return total / n_folds


class CompiledRiskModel:
    """`predict_one(x)` == `model.predict_proba(x[None])[0]` for a fitted `RiskModel`."""

    def __init__(self, model: RiskModel) -> None:
        trees: list[np.ndarray] = []
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
                trees.append(_tree(predictor.nodes, offset))
                roots.append(offset)
                fold_of_tree.append(k)
                offset += len(predictor.nodes)
        self._arrays = (
            np.concatenate(trees),
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


def _tree(nodes: np.ndarray, offset: int) -> np.ndarray:
    """One scikit-learn predictor's nodes as NODE records, child indices shifted by `offset`."""
    if nodes["is_categorical"].any():
        raise ValueError("categorical splits are not supported")
    leaf = nodes["is_leaf"].astype(bool)
    inner = np.flatnonzero(~leaf)
    if (nodes["left"][inner] != inner + 1).any():
        raise ValueError("a tree whose left children do not follow their parents")
    out = np.zeros(len(nodes), dtype=NODE)
    out["threshold"] = np.where(leaf, nodes["value"], nodes["num_threshold"])
    out["right"] = np.where(leaf, -1, nodes["right"].astype(np.int64) + offset)
    out["feature"] = nodes["feature_idx"]
    out["nan_left"] = nodes["missing_go_to_left"]
    out["leaf"] = leaf
    return out
