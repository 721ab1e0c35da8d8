"""The real-data suite (benchmarks/real_data.py) at a tiny budget, and its splits.

Every entry runs end to end through ``sslcore.compare`` on its public dataset (shipped in a
pip package of the ``test`` extra, never downloaded) with a few optimizer steps, one label
fraction and one seed; the split tests check what every full run relies on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


real_data = _load("real_data")
SUITE = real_data.SUITE
NAMES = sorted(SUITE)


def _row_keys(x: np.ndarray) -> set[bytes]:
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return {row.tobytes() for row in flat}


def _leaked(data: dict) -> int:
    """How many test rows are also in the unlabeled pool (by content)."""
    pool = _row_keys(data["unlabeled"])
    return sum(k in pool for k in _row_keys(data["test"][0]))


@pytest.mark.parametrize("name", NAMES)
def test_split_holds_test_rows_out_and_is_stratified(name):
    entry = SUITE[name]
    x, y = entry.rows()
    data = entry.load()
    xu = data["unlabeled"]
    (xl, yl), (xt, yt) = data["labeled"], data["test"]

    assert len(xl) + len(xt) == len(x) and len(xu) == len(xl)
    np.testing.assert_array_equal(xu, xl)  # the pool without its labels
    assert _leaked(data) == 0, "a test row is in the unlabeled pool"
    assert xu.shape[1:] == xt.shape[1:] == x.shape[1:]
    ndim = {"tabular": 2, "fraud_transactions": 2, "sensor_maintenance": 3}.get(entry.vertical, 4)
    assert xu.ndim == ndim and xu.dtype == np.float32, (xu.shape, xu.dtype)
    assert yl.dtype == yt.dtype == np.int64
    classes = np.unique(y)
    np.testing.assert_array_equal(classes, np.arange(len(classes)))
    # stratified: each class's share of the test set is its share of the data, to one row
    expected = np.bincount(y) * len(yt) / len(y)
    assert np.all(np.abs(np.bincount(yt, minlength=len(classes)) - expected) <= 1)
    # deterministic
    again = entry.load()
    np.testing.assert_array_equal(again["test"][1], yt)
    np.testing.assert_array_equal(again["unlabeled"], xu)


def test_suite_entries_are_complete():
    from sslcore.plugins import load_registries

    registries = load_registries()
    verticals, metrics = set(registries.verticals.names()), set(registries.metrics.names())
    for entry in SUITE.values():
        assert entry.vertical in verticals, entry.name
        assert entry.metrics and set(entry.metrics) <= metrics, entry.name
        assert entry.package and entry.description, entry.name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.* dropped. it ")  # each drop is checked below instead
@pytest.mark.parametrize("name", NAMES)
def test_entry_runs_end_to_end_at_a_tiny_budget(name, tracking_uri, tmp_path):
    from mlflow import MlflowClient

    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    entry = SUITE[name]
    fractions, seeds = real_data.SMOKE_FRACTIONS, real_data.SMOKE_SEEDS
    assert _leaked(entry.load()) == 0
    result = real_data.run_entry(entry, tracking_uri=tracking_uri, fractions=fractions,
                                 seeds=seeds, smoke=True, output_dir=str(tmp_path / "runs"))
    report = result.report

    assert result.pretrain_steps is not None and 1 <= result.pretrain_steps <= 10
    children = MlflowClient(tracking_uri).search_runs(
        [report.experiment_id],
        f"tags.mlflow.parentRunId = '{report.run_id}' and tags.`sslcore.kind` = 'downstream'")
    logged = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"],
               float(r.data.tags["sslcore.label_fraction"]), int(r.data.tags["sslcore.seed"]))
              for r in children}
    cfg = report.config  # what ran: the requested config less what the data cannot feed
    expected = {(arm, ref.label, f, s) for arm, refs in (("ssl", cfg.heads),
                                                        ("baseline", cfg.baselines))
                for ref in refs for f in fractions for s in seeds}
    assert logged == expected
    # every method asked for either ran or was dropped with a reason on the parent run
    asked = resolve_config(real_data.entry_config(entry, smoke=True), load_registries(),
                           quick=True)
    ran = {ref.label for ref in [*cfg.heads, *cfg.baselines]}
    for ref in [*asked.heads, *asked.baselines]:
        assert ref.label in ran or f"method.{ref.label}" in result.dropped, ref.label
    # the markdown row renders
    assert all(row.startswith(f"| {name} |") for row in real_data.table_rows(result))
