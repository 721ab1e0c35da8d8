import numpy as np
import pytest

from sslcore.evaluate import metrics as m


def test_recall_at_fpr_and_false_positives_at_recall_hand_computed():
    y = np.array([0] * 100 + [1] * 4)
    s = np.concatenate([np.linspace(0, 0.5, 100), [0.9, 0.8, 0.45, 0.1]])
    # scores above every negative: 2 positives; 0.45 beats 90 negatives -> needs FPR 10%
    assert m.recall_at_fpr(y, s, 0.01) == pytest.approx(0.5)
    assert m.false_positives_at_recall(y, s, 0.75) == 10  # negatives scoring >= 0.45


def test_binary_and_multiclass_shapes():
    y = np.array([0, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.8, 0.3])
    assert m.auprc(y, s) == pytest.approx(1.0)
    assert m.auroc(y, np.stack([1 - s, s], 1)) == pytest.approx(1.0)
    y3 = np.array([0, 1, 2, 2])
    p = np.eye(3)[y3] * 0.8 + 0.2 / 3
    assert m.accuracy(y3, p) == 1.0 and m.macro_f1(y3, p) == 1.0
    assert m.auroc(y3, p) == pytest.approx(1.0)


def test_compute_names_every_metric():
    y = np.array([0, 1, 0, 1])
    out = m.compute(list(m.METRICS), y, np.array([0.2, 0.7, 0.4, 0.9]))
    assert set(out) == set(m.METRICS)


def test_youden_threshold_and_rates():
    from sslcore.evaluate.metrics import sensitivity, specificity, youden_threshold

    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    t = youden_threshold(y, s)
    assert t == pytest.approx(0.7)
    assert sensitivity(y, s, t) == 1.0 and specificity(y, s, t) == 1.0
    assert sensitivity(y, s, 0.8) == 0.5 and specificity(y, s, 0.5) == pytest.approx(2 / 3)
    assert youden_threshold(np.zeros(3, dtype=int), s[:3]) == 0.5


def test_compute_asks_for_what_a_metric_needs():
    from sslcore.errors import ConfigError
    from sslcore.evaluate.metrics import compute

    y, s = np.array([0, 1]), np.array([0.2, 0.8])
    with pytest.raises(ConfigError, match="needs a decision threshold"):
        compute(["sensitivity"], y, s)
    assert compute(["specificity", "auroc"], y, s, threshold=0.5) == {"specificity": 1.0,
                                                                       "auroc": 1.0}
