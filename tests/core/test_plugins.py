"""Hooks, plugin discovery through real entry points, broken plugins and env switches."""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from sslcore import hookimpl, hookspecs
from sslcore.errors import ConfigError, DuplicateComponentError
from sslcore.plugins import KINDS, load_registries
from sslcore.sdk import Metric

HOOKS = sorted(n for n in vars(hookspecs) if n.startswith("sslcore_register_"))
ROOT = Path(__file__).resolve().parents[2]


class DemoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


def demo_factory(params, **context):
    return params.size


class DemoPlugin:
    """Implements every hook, as a third-party plugin would."""

    @hookimpl
    def sslcore_register_datasets(self, registry):
        registry.add("demo_datasets", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_augmentations(self, registry):
        registry.add("demo_augmentations", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_pretext_tasks(self, registry):
        registry.add("demo_pretext_tasks", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_heads(self, registry):
        registry.add("demo_heads", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_backbones(self, registry):
        registry.add("demo_backbones", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_baselines(self, registry):
        registry.add("demo_baselines", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_metrics(self, registry):
        registry.add("demo_metrics", demo_factory, params=DemoParams)

    @hookimpl
    def sslcore_register_verticals(self, registry):
        registry.add("demo_verticals", demo_factory, params=DemoParams)


def test_one_kind_per_hook():
    assert sorted(f"sslcore_register_{k}" for k in KINDS) == HOOKS


@pytest.mark.parametrize("kind", KINDS)
def test_every_hook_registers_through_a_plugin(kind):
    regs = load_registries(extra_plugins=[DemoPlugin()])
    entry = regs.by_kind[kind].get(f"demo_{kind}")
    assert entry.module == __name__
    assert entry.build({"size": 4}) == 4


def test_hooks_are_typed_documented_and_tested():
    docs = (ROOT / "docs" / "hooks.md").read_text()
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_hook_docs import render
    finally:
        sys.path.pop(0)
    assert docs == render(), "docs/hooks.md is stale: run python scripts/gen_hook_docs.py"
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        sig = inspect.signature(fn)
        assert "registry" in sig.parameters and sig.return_annotation in ("None", None)
        assert "Example::" in (fn.__doc__ or ""), f"{name} docstring needs an example"
        assert f"## `{name}" in docs
        assert tests.count(f"def {name}") >= 1, f"no test plugin implements {name}"


def test_builtins_register_through_the_same_hooks():
    regs = load_registries()
    assert regs.plugins[0].name == "sslcore"
    builtin = regs.components_of("sslcore.builtins")
    assert builtin.get("backbones") and builtin.get("heads") and builtin.get("baselines")


def test_installed_plugin_is_discovered_by_entry_point():
    regs = load_registries()
    names = {p.name: p for p in regs.plugins}
    assert "fraud_transactions" in names and names["fraud_transactions"].error is None
    assert names["fraud_transactions"].version == "0.1.0"
    assert "fraud_transactions" in regs.verticals


def _install_fake_dist(tmp_path, name, module_body):
    dist = tmp_path / f"{name}-9.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9\n")
    (dist / "entry_points.txt").write_text(f"[sslcore]\n{name} = {name}_mod\n")
    (tmp_path / f"{name}_mod.py").write_text(textwrap.dedent(module_body))


def test_broken_plugin_is_reported_and_others_still_load(tmp_path, monkeypatch):
    _install_fake_dist(tmp_path, "brokenplug", "raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match=r"brokenplug.*9\.9.*libfoo"):
        regs = load_registries()
    info = {p.name: p for p in regs.plugins}["brokenplug"]
    assert info.version == "9.9" and "libfoo" in info.error
    assert "fraud_transactions" in regs.verticals


def test_duplicate_across_plugins_names_both(tmp_path, monkeypatch):
    _install_fake_dist(tmp_path, "dupeplug", """
        from sslcore import hookimpl
        from sslcore.registry import NoParams

        @hookimpl
        def sslcore_register_verticals(registry):
            registry.add("fraud_transactions", lambda p: None)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateComponentError, match=r"sslcore_fraud_transactions.*dupeplug_mod"):
        load_registries()


def test_env_switches(monkeypatch):
    monkeypatch.setenv("SSLCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert [p.name for p in load_registries().plugins] == ["sslcore"]
    monkeypatch.delenv("SSLCORE_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("SSLCORE_DISABLED_PLUGINS", "fraud_transactions")
    assert "fraud_transactions" not in load_registries().verticals
    monkeypatch.delenv("SSLCORE_DISABLED_PLUGINS")
    monkeypatch.setenv("SSLCORE_LOAD_PLUGINS", "nothing_by_that_name")
    assert [p.name for p in load_registries().plugins] == ["sslcore"]


def flagged_share(y, scores):
    """Share of the rows scored >= 0.5: the alarm load (lower is better)."""
    return float((np.asarray(scores) >= 0.5).mean())


def by_class(metric, y, scores, meta):
    return {f"class{c}": metric(y[y == c], scores[y == c], meta) for c in (0, 1)}


class MetricPlugin:
    """A third-party plugin that brings its own metric, with a per-class breakdown."""

    @hookimpl
    def sslcore_register_metrics(self, registry):
        registry.add("flagged_share", lambda params: Metric(
            flagged_share, higher_is_better=False, binary_only=True, by_group=by_class),
            description="share of the test rows scored >= 0.5")


TINY_TABULAR = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 600, "n_features": 6}},
    "pretrain": {"steps": 3}, "finetune": {"steps": 10},
    "evaluation": {"label_fractions": [1.0], "seeds": [0],
                   "metrics": ["auprc", "flagged_share"]},
}


@pytest.mark.slow
def test_a_plugin_metric_is_computed_logged_and_reported(tracking_uri, tmp_path):
    """sslcore.compare loads installed plugins only, so this runs what compare runs, with the
    registries of load_registries(extra_plugins=[...])."""
    import polars as pl
    from mlflow import MlflowClient

    from sslcore.experiment import load_data, resolve_config, run_experiment

    regs = load_registries(extra_plugins=[MetricPlugin()])
    assert regs.metrics.get("flagged_share").module == __name__
    cfg = resolve_config(TINY_TABULAR | {"output_dir": str(tmp_path / "runs")}, regs)
    report = run_experiment(cfg, regs, load_data(cfg, regs), progress=False)

    methods = {r.label for r in cfg.heads + cfg.baselines}
    values = report.results.filter(pl.col("metric") == "flagged_share")
    assert set(values["method"]) == methods
    assert values["value"].is_between(0.0, 1.0).all()
    per_class = set(report.results.filter(pl.col("metric").str.starts_with("flagged_share."))
                    ["metric"])
    assert per_class == {"flagged_share.class0", "flagged_share.class1"}
    assert report.lower_is_better == {"flagged_share"}
    client = MlflowClient(tracking_uri)
    children = client.search_runs([report.experiment_id],
                                  f"tags.mlflow.parentRunId = '{report.run_id}' "
                                  "and tags.`sslcore.kind` = 'downstream'")
    assert len(children) == len(methods)
    for run in children:
        assert {"test_flagged_share", "test_flagged_share.class1"} <= set(run.data.metrics)
    md = (Path(client.download_artifacts(report.run_id, "comparison.md", str(tmp_path)))
          .read_text())
    assert "## flagged_share (lower is better)" in md


def test_a_metric_name_registered_twice_names_both_plugins():
    class Again:
        @hookimpl
        def sslcore_register_metrics(self, registry):
            registry.add("auprc", lambda params: Metric(flagged_share))

    with pytest.raises(DuplicateComponentError,
                       match=r"metrics 'auprc' is registered twice: by ") as caught:
        load_registries(extra_plugins=[Again()])
    assert "sslcore.builtins.plugin" in str(caught.value) and __name__ in str(caught.value)


def test_an_unknown_metric_in_a_config_names_the_field():
    from sslcore.experiment import resolve_config

    regs = load_registries()
    bad = TINY_TABULAR | {"evaluation": {"metrics": ["auprc", "flaged_share", "aurco"]}}
    with pytest.raises(ConfigError, match=r"evaluation.metrics\[1\]: unknown metrics "
                                          r"'flaged_share'\..*Registered: accuracy, auprc"):
        resolve_config(bad, regs)
    with pytest.raises(ConfigError, match=r"evaluation.metrics\[2\]: .*Did you mean 'auroc'"):
        resolve_config(bad | {"evaluation": {"metrics": ["auprc", "auroc", "aurco"]}}, regs)
    regs = load_registries(extra_plugins=[MetricPlugin()])
    assert resolve_config(TINY_TABULAR, regs).evaluation.metrics == ["auprc", "flagged_share"]
