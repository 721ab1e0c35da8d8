import numpy as np
import pytest

from sslcore.builtins import plugin as builtins
from sslcore.contracts import Metric
from sslcore.evaluate import metrics as m
from sslcore.registry import Registry

CORE = ["auprc", "auroc", "accuracy", "macro_f1", "recall_at_1pct_fpr", "fp_at_80pct_recall",
        "sensitivity", "specificity"]


def core_metrics() -> Registry[Metric]:
    """The metric registry as the built-in plugin fills it (no third-party plugin)."""
    registry: Registry[Metric] = Registry("metrics")
    builtins.sslcore_register_metrics(registry)
    return registry


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


def test_the_core_registers_its_metrics_with_what_they_need():
    registry = core_metrics()
    assert registry.names() == sorted(CORE)
    metric = {name: registry.get(name).build() for name in CORE}
    assert {n for n, x in metric.items() if x.needs_threshold} == {"sensitivity", "specificity"}
    assert {n for n, x in metric.items() if x.binary_only} == {
        "recall_at_1pct_fpr", "fp_at_80pct_recall", "sensitivity", "specificity"}
    assert m.lower_is_better(registry) == {"fp_at_80pct_recall"}
    assert m.lower_is_better(registry, ["auprc", "unregistered"]) == set()
    assert not any(x.needs_meta or x.by_group for x in metric.values())
    assert all(registry.get(n).description for n in CORE)


def test_compute_names_every_metric():
    y = np.array([0, 1, 0, 1])
    out = m.compute(CORE, y, np.array([0.2, 0.7, 0.4, 0.9]), metrics=core_metrics(),
                    threshold=0.5)
    assert list(out) == CORE


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
    from sslcore.errors import ConfigError, UnknownComponentError
    from sslcore.evaluate.metrics import compute

    y, s = np.array([0, 1]), np.array([0.2, 0.8])
    metrics = core_metrics()
    with pytest.raises(ConfigError, match="needs a decision threshold"):
        compute(["sensitivity"], y, s, metrics=metrics)
    assert compute(["specificity", "auroc"], y, s, metrics=metrics, threshold=0.5) == {
        "specificity": 1.0, "auroc": 1.0}
    with pytest.raises(UnknownComponentError, match=r"unknown metrics 'aurco'.*'auroc'"):
        compute(["aurco"], y, s, metrics=metrics)


def test_a_metric_gets_threshold_and_meta_in_that_order_and_its_groups():
    """fn(y, scores[, threshold][, meta]); by_group's values are logged as <name>.<group>."""
    seen = []

    def fn(y, s, threshold, meta):
        seen.append((threshold, sorted(meta)))
        return float((s[meta["site"] != ""] >= threshold).mean())

    def by_site(metric, y, s, meta):
        return {site: metric(y[meta["site"] == site], s[meta["site"] == site],
                             {k: v[meta["site"] == site] for k, v in meta.items()})
                for site in ("a", "b")}

    metric = Metric(fn, needs_threshold=True, needs_meta=("site",), by_group=by_site)
    y, s = np.array([0, 1, 0, 1]), np.array([0.2, 0.9, 0.7, 0.4])
    meta = {"site": np.array(["a", "a", "b", "b"])}
    out = m.compute_one("hits", metric, y, s, threshold=0.5, meta=meta)
    assert out == {"hits": 0.5, "hits.a": 0.5, "hits.b": 0.5}
    assert seen == [(0.5, ["site"])] * 3
    from sslcore.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'hits' needs per-row test metadata \['site'\]"):
        m.compute_one("hits", metric, y, s, threshold=0.5, meta={})


def test_a_malformed_metric_fails_when_built():
    with pytest.raises(TypeError, match="needs_meta must be a tuple"):
        Metric(m.auprc, needs_meta="rul")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn must be callable"):
        Metric("auprc")  # type: ignore[arg-type]
