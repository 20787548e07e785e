"""A `RiskModel` flattened into numpy arrays, so scoring one account costs microseconds, not milliseconds.

scikit-learn's predict path is built for matrices: on one row its per-tree and per-fold overhead
(and OpenMP start-up on a busy machine) costs 5-20 ms. Here every tree of every calibration fold
sits in one node table, all trees descend together one level per numpy step, and each fold's
isotonic calibrator is a `np.interp` over its thresholds (clipped, as scikit-learn's). The result
equals `RiskModel.predict_proba` to float precision (tests/online/test_compiled.py).
"""

from __future__ import annotations

import numpy as np

from distillguard.score import RiskModel


class CompiledRiskModel:
    """`predict_one(x)` == `model.predict_proba(x[None])[0]` for a fitted `RiskModel`."""

    def __init__(self, model: RiskModel) -> None:
        feature, threshold, missing_left, left, right, leaf, value, roots, fold_of_tree = (
            [] for _ in range(9)
        )
        self.baselines: list[float] = []
        self.calibrators: list[tuple[np.ndarray, np.ndarray]] = []
        offset = 0
        for k, fold in enumerate(model.model_.calibrated_classifiers_):
            est = fold.estimator
            if est.n_trees_per_iteration_ != 1 or len(fold.calibrators) != 1:
                raise ValueError("only binary gradient-boosted models can be compiled")
            self.baselines.append(float(np.ravel(est._baseline_prediction)[0]))
            iso = fold.calibrators[0]
            self.calibrators.append((np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)))
            for (predictor,) in est._predictors:
                nodes = predictor.nodes
                if nodes["is_categorical"].any():
                    raise ValueError("categorical splits are not supported")
                feature.append(nodes["feature_idx"].astype(np.intp))
                threshold.append(nodes["num_threshold"])
                missing_left.append(nodes["missing_go_to_left"].astype(bool))
                left.append(nodes["left"].astype(np.intp) + offset)
                right.append(nodes["right"].astype(np.intp) + offset)
                leaf.append(nodes["is_leaf"].astype(bool))
                value.append(nodes["value"])
                roots.append(offset)
                fold_of_tree.append(k)
                offset += len(nodes)
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)
        self.missing_left = np.concatenate(missing_left)
        self.left = np.concatenate(left)
        self.right = np.concatenate(right)
        self.leaf = np.concatenate(leaf)
        self.value = np.concatenate(value)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.fold_of_tree = np.asarray(fold_of_tree, dtype=np.intp)
        self.n_folds = len(self.baselines)

    def predict_one(self, x: np.ndarray) -> float:
        """Calibrated distiller probability of one feature row (FEATURES order, NaN for null)."""
        idx = self.roots
        while True:
            at_leaf = self.leaf[idx]
            if at_leaf.all():
                break
            v = x[self.feature[idx]]
            go_left = np.where(np.isnan(v), self.missing_left[idx], v <= self.threshold[idx])
            idx = np.where(at_leaf, idx, np.where(go_left, self.left[idx], self.right[idx]))
        raw = np.bincount(self.fold_of_tree, weights=self.value[idx], minlength=self.n_folds)
        probs = [np.interp(raw[k] + self.baselines[k], xs, ys) for k, (xs, ys) in enumerate(self.calibrators)]
        return float(np.mean(probs))
