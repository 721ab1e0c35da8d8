"""What a plugin author sees when a plugin is broken: each mistake is a named error.

The contract tests in ``sslcore.testing`` and the plugin loader must reject a broken plugin,
not only pass good ones: a hook with a misspelled argument or name, a component returning the
wrong shape, a name registered twice.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from sslcore import hookimpl
from sslcore.errors import DuplicateComponentError, PluginLoadError
from sslcore.plugins import load_registries
from sslcore.testing import contract_cases, run_case, run_contract_tests


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WrongShapeBackbone(nn.Module):
    """Claims a 4-d embedding but returns 3 columns."""

    embed_dim = 4

    def __init__(self, params: _Params, *, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.lin = nn.Linear(int(np.prod(input_shape)), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


class _OneScorePerBatch:
    """A method whose scores have the wrong length (one per call, not per row)."""

    uses_labels = True

    def __init__(self, params: _Params) -> None:
        pass

    def fit(self, ctx) -> None:
        pass

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(1)


class _BrokenBackbonePlugin:
    __name__ = "sslcore_broken_plugin"

    @hookimpl
    def sslcore_register_backbones(self, registry):
        registry.add("wrong_shape", _WrongShapeBackbone, params=_Params,
                     module="sslcore_broken_plugin.backbones")


class _BrokenMethodPlugin:
    __name__ = "sslcore_broken_plugin"

    @hookimpl
    def sslcore_register_baselines(self, registry):
        registry.add("one_score", _OneScorePerBatch, params=_Params,
                     module="sslcore_broken_plugin.baselines")


class _MisspelledArgument:
    __name__ = "sslcore_misspelled_argument"

    @hookimpl
    def sslcore_register_backbones(self, registy):  # noqa: ARG002 - the mistake under test
        pass


class _MisspelledHook:
    __name__ = "sslcore_misspelled_hook"

    @hookimpl
    def sslcore_register_backbone(self, registry):  # not a hook: the spec is ..._backbones
        pass


class _BrokenMetricPlugin:
    """One metric factory that returns a bare function, one metric that returns a string."""

    __name__ = "sslcore_broken_plugin"

    @hookimpl
    def sslcore_register_metrics(self, registry):
        from sslcore.sdk import Metric

        registry.add("bare_function", lambda params: (lambda y, s: 0.0),
                     module="sslcore_broken_plugin.metrics")
        registry.add("says_high", lambda params: Metric(lambda y, s: "high"),
                     module="sslcore_broken_plugin.metrics")


def _plugin_registering(name: str, module: str) -> object:
    class Plugin:
        __name__ = module

        @hookimpl
        def sslcore_register_baselines(self, registry):
            registry.add(name, _OneScorePerBatch, params=_Params, module=module)

    return Plugin()


def test_wrong_embedding_shape_fails_the_contract_naming_the_component():
    registries = load_registries(extra_plugins=[_BrokenBackbonePlugin()])
    cases = contract_cases("sslcore_broken_plugin", registries)
    assert [str(c) for c in cases] == ["backbones:wrong_shape"]
    with pytest.raises(AssertionError, match=r"wrong_shape: output \(4, 3\), expected \(4, 4\)"):
        run_case(cases[0])


def test_wrong_score_shape_fails_the_contract_naming_the_method():
    registries = load_registries(extra_plugins=[_BrokenMethodPlugin()])
    with pytest.raises(AssertionError, match="contract check baselines:one_score-2cls failed"):
        run_contract_tests(registries, "sslcore_broken_plugin")


def test_a_broken_metric_fails_the_contract_naming_it():
    registries = load_registries(extra_plugins=[_BrokenMetricPlugin()])
    cases = {str(c): c for c in contract_cases("sslcore_broken_plugin", registries)}
    assert sorted(cases) == ["metrics:bare_function", "metrics:says_high"]
    with pytest.raises(AssertionError, match="bare_function: the factory must return a Metric"):
        run_case(cases["metrics:bare_function"])
    with pytest.raises(AssertionError, match="says_high: a metric returns a float, got str"):
        run_case(cases["metrics:says_high"])


def test_misspelled_hook_argument_is_a_plugin_load_error():
    with pytest.raises(PluginLoadError, match=r"sslcore_misspelled_argument.*registy"):
        load_registries(extra_plugins=[_MisspelledArgument()])


def test_unknown_hook_is_a_plugin_load_error():
    with pytest.raises(PluginLoadError, match=r"sslcore_misspelled_hook.*sslcore_register_backbone"):
        load_registries(extra_plugins=[_MisspelledHook()])


def test_duplicate_name_names_both_modules():
    first = _plugin_registering("twin", "sslcore_first_plugin")
    second = _plugin_registering("twin", "sslcore_second_plugin")
    with pytest.raises(DuplicateComponentError) as info:
        load_registries(extra_plugins=[first, second])
    assert "sslcore_first_plugin" in str(info.value)
    assert "sslcore_second_plugin" in str(info.value)
