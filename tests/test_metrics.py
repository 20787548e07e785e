import numpy as np

from distillguard.bench.metrics import campaign_agreement, recall_at_fpr


def test_recall_at_fpr_respects_the_budget() -> None:
    y = np.array([0] * 1000 + [1] * 10)
    score = np.concatenate([np.linspace(0, 1, 1000), np.full(10, 0.995)])
    # 1% of 1000 negatives = 10 may be flagged: negatives above 0.990 are 10 (0.991..1.0).
    assert recall_at_fpr(y, score, 0.01) == 1.0
    # 0.1% = 1 negative: positives at 0.995 sit below several negatives, so none is recalled.
    assert recall_at_fpr(y, score, 0.001) == 0.0


def test_campaign_agreement_perfect_and_split() -> None:
    truth = ["c1", "c1", "c2", "c2"]
    assert campaign_agreement(truth, ["x", "x", "y", "y"]) == {"ari": 1.0, "purity": 1.0}
    merged = campaign_agreement(truth, ["x", "x", "x", "x"])
    assert merged["purity"] == 0.5 and merged["ari"] < 0.5
