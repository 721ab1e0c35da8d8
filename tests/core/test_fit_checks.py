"""Fit checks: a vertical warns (or fails with a named error) when the data do not fit its
recipe's assumptions; a config's mistakes come in one error; every CLI option has help."""

from __future__ import annotations

import argparse
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from sslcore.config import validate_config
from sslcore.contracts import VerticalRecipe
from sslcore.data.ssl_data import SSLData
from sslcore.data_fit import DataFitWarning, fit_check_markdown, fit_config_to_data, recipe_checks
from sslcore.errors import ConfigError, DataError
from sslcore.registry import Registry


def _data(shape: tuple[int, ...] = (6,), names: list[str] | None = None,
          groups: bool = False) -> SSLData:
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    return SSLData(unlabeled=rng.normal(size=(40, *shape)),
                   labeled_x=rng.normal(size=(40, *shape)), labeled_y=y,
                   test_x=rng.normal(size=(40, *shape)), test_y=y, feature_names=names,
                   labeled_groups=np.arange(40) // 4 if groups else None)


# ----------------------------------------------------------------------------- the core hook

def _registries(check) -> SimpleNamespace:
    verticals = Registry("verticals")
    verticals.add("v", lambda params: VerticalRecipe("a vertical", {}, data_checks=check))
    return SimpleNamespace(verticals=verticals)


def _cfg(vertical: str = "v"):
    return validate_config({"vertical": vertical, "dataset": {"name": "d"},
                            "backbone": {"name": "b"}, "pretext": {"name": "p"},
                            "heads": [{"name": "h"}], "baselines": [{"name": "s"}]})


def test_a_recipe_check_warns_and_its_warnings_are_recorded():
    regs = _registries(lambda cfg, data: [f"{len(data.labeled_y)} rows lack a user column"])
    with pytest.warns(DataFitWarning, match="v: 40 rows lack a user column"):
        assert recipe_checks(_cfg(), regs, _data()) == ["40 rows lack a user column"]
    md = fit_check_markdown({"fit_check.1": "first", "split": "time", "fit_check.2": "second"})
    assert md == "\n## Where these data do not fit the recipe\n\n- first\n- second\n"
    assert fit_check_markdown({"split": "time"}) == ""


def test_a_recipe_check_that_fails_names_the_vertical():
    def refuse(cfg, data):
        raise DataError("the labeled series hold no failure: nothing to learn")

    with pytest.raises(DataError, match="the v vertical cannot work on these data: the "
                                        "labeled series hold no failure"):
        recipe_checks(_cfg(), _registries(refuse), _data())


def test_without_a_check_or_a_known_vertical_nothing_is_said():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataFitWarning)
        assert recipe_checks(_cfg(), _registries(None), _data()) == []
        assert recipe_checks(_cfg("other"), _registries(lambda c, d: ["x"]), _data()) == []
        assert recipe_checks(_cfg(), SimpleNamespace(), _data()) == []


# ----------------------------------------------------------------------------- the verticals

def test_fraud_warns_on_a_generic_numeric_table_and_says_what_is_lost():
    from sslcore_fraud_transactions.fit_checks import fraud_data_checks

    names = [f"V{i}" for i in range(1, 7)]
    (warning,) = fraud_data_checks(None, _data(names=names))
    assert warning.startswith("these data (6 columns: V1, V2, V3, V4, ...) carry none of the "
                              "behavioural features")
    assert "account takeover" in warning and "dataset fraud_table" in warning
    assert "6 unnamed columns" in fraud_data_checks(None, _data())[0]
    behavioural = ["f_amount_vs_user_median", "f_seconds_since_previous"] + names[:4]
    assert fraud_data_checks(None, _data(names=behavioural)) == []


@pytest.mark.parametrize("module", ["sslcore_medical_imaging", "sslcore_satellite"])
def test_imaging_warns_with_the_sizes_when_far_from_the_recipes(module):
    import importlib

    checks = importlib.import_module(f"{module}.fit_checks")
    check = next(getattr(checks, n) for n in dir(checks) if n.endswith("_data_checks"))
    (small,) = check(None, _data((1, 8, 8)))
    assert "are 8x8 px, the recipe is tuned for 64x64 px (4x or more smaller)" in small
    (large,) = check(None, _data((1, 300, 256)))
    assert "are 300x256 px, the recipe is tuned for 64x64 px (4x or more larger)" in large
    assert check(None, _data((1, 64, 64))) == check(None, _data((1, 32, 128))) == []
    assert check(None, _data((6,))) == []  # not images: the backbone refuses those itself


def test_sensor_warns_when_series_carry_no_failure_histories():
    from sslcore_sensor_maintenance.fit_checks import sensor_data_checks

    (warning,) = sensor_data_checks(None, _data((2, 16)))
    assert "no failure histories" in warning and "flatters the validation scores" in warning
    assert sensor_data_checks(None, _data((2, 16), groups=True)) == []


def test_a_sensor_labeled_pool_without_failure_is_refused_when_loaded():
    # The "nothing to learn" case never reaches the vertical's check: loading refuses it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2, 16))
    with pytest.raises(DataError, match="labeled labels have a single class"):
        SSLData(unlabeled=x, labeled_x=x, labeled_y=np.zeros(20, int), test_x=x,
                test_y=np.arange(20) % 2).validate()


def test_the_fraud_recipe_check_runs_before_any_work_and_is_recorded():
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    registries = load_registries()
    cfg = resolve_config("fraud_transactions", registries, quick=True)
    data = _data(names=[f"V{i}" for i in range(1, 7)])
    with pytest.warns(DataFitWarning) as caught:
        _, fitted = fit_config_to_data(cfg, registries, data)
    assert any(str(w.message).startswith("fraud_transactions: these data (6 columns")
               for w in caught)
    assert fitted.notes["fit_check.1"].startswith("these data (6 columns")
    assert "## Where these data do not fit the recipe" in fit_check_markdown(fitted.notes)


# ----------------------------------------------------------------------------- config mistakes

def test_a_config_with_three_mistakes_reports_all_of_them_in_one_error():
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    mistakes = {"vertical": "tabular",
                "heads": [{"name": "linear_prob"}],  # unknown head
                "baselines": [{"name": "hist_gbm", "params": {"max_iters": 3}}],  # bad param
                "evaluation": {"metrics": ["auprc", "aurocc"], "primary_metric": "auprc"}}
    with pytest.raises(ConfigError) as err:
        resolve_config(mistakes, load_registries())
    text = str(err.value)
    assert text.startswith("3 mistakes in the config:\n")
    assert "heads[0].name: unknown heads 'linear_prob'" in text
    assert "baselines[0].params.max_iters: unknown key (check the spelling)" in text
    assert "evaluation.metrics[1]: unknown metrics 'aurocc'" in text
    # One mistake reads as before: the path first.
    with pytest.raises(ConfigError, match=r"^heads\[0\]\.name: unknown heads"):
        resolve_config(mistakes | {"baselines": [{"name": "hist_gbm"}],
                                   "evaluation": {"primary_metric": "auprc"}},
                       load_registries())


# ----------------------------------------------------------------------------- CLI help

def test_every_cli_option_has_help():
    from sslcore.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions
                       if isinstance(a, argparse._SubParsersAction)).choices
    missing = [f"{name} {action.option_strings or action.dest}"
               for name, sub in subcommands.items() for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []
    assert {"run", "pretrain", "export", "ui"} <= set(subcommands)
