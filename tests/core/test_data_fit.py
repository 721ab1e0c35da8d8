"""sslcore.data_fit: methods and metrics the data cannot feed are dropped before any work, with a
warning and a data-card note; the primary metric, every head or every baseline never silently."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from sslcore.builtins import plugin as builtins
from sslcore.config import validate_config
from sslcore.contracts import Metric
from sslcore.data.ssl_data import SSLData
from sslcore.data_fit import DataFitWarning, fit_config_to_data, method_gaps, metric_gaps
from sslcore.errors import ConfigError, DataError
from sslcore.registry import Registry


class Plain:
    uses_labels = True


class NeedsRul(Plain):
    requires_meta = ("rul",)


class BinaryOnly(Plain):
    binary_only = True


class TwoSensors(Plain):
    min_channels = 2


class Reader:
    """A backbone / pretext task that says how it reads a series, and refuses short ones."""

    @classmethod
    def describe_input(cls, params, input_shape):
        if input_shape[-1] < 8:
            raise DataError(f"reader: {input_shape[-1]} steps, at least 8; lower x.params.y")
        return f"reader: {input_shape[-1]} steps as they are"


def registries():
    regs = SimpleNamespace(heads=Registry("heads"), baselines=Registry("baselines"),
                           backbones=Registry("backbones"), pretext_tasks=Registry("pretext"))
    for reg in (regs.heads, regs.baselines):
        for cls in (Plain, NeedsRul, BinaryOnly, TwoSensors):
            reg.add(cls.__name__.lower(), cls)
    regs.backbones.add("reader", Reader)
    regs.pretext_tasks.add("plain", Plain)  # no describe_input: no note
    regs.metrics = Registry("metrics")
    builtins.sslcore_register_metrics(regs.metrics)
    # as a vertical's plugin would register an event metric: it reads test_meta, binary only
    regs.metrics.add("lead_time", lambda params: Metric(
        lambda y, s, meta: 0.0, needs_meta=("rul", "event_id"), binary_only=True))
    return regs


def config(metrics=("auprc", "recall_at_1pct_fpr", "lead_time"),
           heads=("plain", "needsrul", "binaryonly", "twosensors"), baselines=("plain",)):
    return validate_config({
        "vertical": "v", "dataset": {"name": "d"}, "backbone": {"name": "reader"},
        "pretext": {"name": "plain"}, "heads": [{"name": h} for h in heads],
        "baselines": [{"name": b} for b in baselines],
        "evaluation": {"metrics": list(metrics), "primary_metric": "auprc"}})


def data(channels=1, classes=2, length=12, meta=False):
    rng = np.random.default_rng(0)
    y = np.arange(20) % classes
    rows = {"rul": np.ones(20), "event_id": np.zeros(20)} if meta else {}
    return SSLData(unlabeled=rng.normal(size=(20, channels, length)),
                   labeled_x=rng.normal(size=(20, channels, length)), labeled_y=y,
                   test_x=rng.normal(size=(20, channels, length)), test_y=y,
                   labeled_meta=dict(rows), test_meta=dict(rows), notes={"split": "random"})


def test_plain_univariate_arrays_drop_what_they_cannot_feed_and_say_why():
    cfg, d = config(), data()
    with pytest.warns(DataFitWarning) as caught:
        fitted, fitted_data = fit_config_to_data(cfg, registries(), d)
    assert [r.name for r in fitted.heads] == ["plain", "binaryonly"]
    assert fitted.evaluation.metrics == ["auprc", "recall_at_1pct_fpr"]
    notes = fitted_data.notes
    assert notes["dropped.method.needsrul"] == \
        "needs labeled_meta ['rul'], which these data do not carry"
    assert notes["dropped.method.twosensors"] == \
        "needs at least 2 channels per sample; these data have 1"
    assert "test_meta ['rul', 'event_id']" in notes["dropped.metric.lead_time"]
    assert notes["input.backbone"] == "reader: 12 steps as they are"
    assert "input.pretext" not in notes and notes["split"] == "random"
    assert sorted(str(w.message).split(" dropped")[0] for w in caught) == [
        "method 'needsrul'", "method 'twosensors'", "metric 'lead_time'"]
    # copies: the caller's config and data are untouched, the arrays shared
    assert len(cfg.heads) == 4 and d.notes == {"split": "random"}
    assert fitted_data.labeled_x is d.labeled_x


def test_data_with_everything_keeps_everything_silently():
    cfg = config()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataFitWarning)
        fitted, fitted_data = fit_config_to_data(cfg, registries(), data(channels=2, meta=True))
    assert fitted.heads == cfg.heads and fitted.evaluation.metrics == cfg.evaluation.metrics
    assert not [k for k in fitted_data.notes if k.startswith("dropped.")]


def test_three_classes_drop_binary_only_methods_and_metrics():
    with pytest.warns(DataFitWarning):
        fitted, fitted_data = fit_config_to_data(config(), registries(),
                                                 data(channels=2, classes=3, meta=True))
    assert [r.name for r in fitted.heads] == ["plain", "needsrul", "twosensors"]
    assert fitted.evaluation.metrics == ["auprc"]
    assert "3 classes" in fitted_data.notes["dropped.metric.recall_at_1pct_fpr"]
    assert method_gaps(BinaryOnly, data(classes=3)) == \
        ["scores binary tasks only; these data have 3 classes"]
    metrics = registries().metrics
    assert metric_gaps(metrics.get("auroc").build(), data(classes=3)) == []
    assert metric_gaps(metrics.get("lead_time").build(), data(classes=3)) == [
        "needs test_meta ['rul', 'event_id'], which these data do not carry",
        "is for binary tasks only; these data have 3 classes"]


def test_an_unusable_primary_metric_is_an_error_naming_the_field():
    cfg = config(metrics=("lead_time", "auprc"))
    cfg.evaluation.primary_metric = "lead_time"
    with pytest.raises(ConfigError, match=r"evaluation.primary_metric: "
                                          r"'lead_time' needs test_meta.*"
                                          r"e.g. \['auprc'\]"):
        fit_config_to_data(cfg, registries(), data())


@pytest.mark.parametrize(("heads", "baselines", "field", "fix"), [
    (("needsrul", "twosensors"), ("plain",), "heads", "finetune or linear_probe"),
    (("plain",), ("needsrul",), "baselines", "scratch"),
])
def test_dropping_every_method_of_an_arm_is_an_error(heads, baselines, field, fix):
    with pytest.raises(ConfigError, match=rf"{field}: none can run on these data \(needsrul "
                                          rf"needs labeled_meta \['rul'\].*such as {fix}"):
        fit_config_to_data(config(heads=heads, baselines=baselines), registries(), data())


def test_an_unreadable_input_fails_before_any_work():
    with pytest.raises(DataError, match="reader: 6 steps, at least 8"):
        fit_config_to_data(config(), registries(), data(length=6))
