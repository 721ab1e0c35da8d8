"""The example plugin a plugin author starts from: it installs, passes the contract tests and
runs ``sslcore run churn_example --quick`` like any shipped vertical.

It is installed into a temporary directory (``pip install --target``) and found through its
``sslcore`` entry point on ``PYTHONPATH``, the same discovery an installed plugin gets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import CLI_TIMEOUT, cli_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_minimal"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("example_plugin")
    source = tmp / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                   "__pycache__"))
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                    "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target",
                    str(target), str(source)], check=True, timeout=300)
    return target


def _env(site: Path) -> dict[str, str]:
    return cli_env() | {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def _python(site: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(site),
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)


def test_example_plugin_passes_the_contract_tests(site, tmp_path):
    result = _python(site, (
        "from sslcore.plugins import load_registries\n"
        "from sslcore.testing import run_contract_tests\n"
        "print(run_contract_tests(load_registries(), 'sslcore_churn_example'))\n"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for case in ("datasets:churn_table", "metrics:precision_at_top_decile",
                 "verticals:churn_example"):
        assert case in result.stdout


def test_example_plugin_runs_its_quick_recipe(site, tmp_path, make_store):
    uri = make_store(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "sslcore", "run", "churn_example", "--quick", "--tracking-uri",
         uri, "--no-progress"], cwd=tmp_path, env=_env(site), capture_output=True, text=True,
        timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    assert {r.data.tags["sslcore.arm"] for r in down} == {"ssl", "baseline"}
    assert all("test_precision_at_top_decile" in r.data.metrics for r in down)
    assert all(r.info.status == "FINISHED" for r in runs)
