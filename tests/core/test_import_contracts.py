"""The layers in pyproject.toml's import-linter contracts hold, and a new violation fails.

``lint-imports`` checks that plugins reach sslcore only through ``sslcore.sdk``, that no plugin
imports another, and that data, training and evaluation never write to MLflow. A contract
that no violation can break would prove nothing, so one test adds a forbidden import to a copy
of a shipped plugin and expects the check to fail on it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_contracts_are_kept():
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_a_plugin_importing_a_core_internal_breaks_the_contract(tmp_path):
    copy = tmp_path / "sslcore_fraud_transactions"
    shutil.copytree(PLUGINS / "fraud_transactions" / "sslcore_fraud_transactions", copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    plugin = copy / "plugin.py"
    plugin.write_text(plugin.read_text() + "\nfrom sslcore.train.supervised import embed\n")
    # The copy comes first on the path, so the check reads it instead of the installed plugin.
    env = os.environ | {"PYTHONPATH": str(tmp_path)}
    result = _lint(env)
    assert result.returncode != 0
    assert "sslcore_fraud_transactions.plugin -> sslcore.train.supervised" in result.stdout


def _sslcore_imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if n == "sslcore" or n.startswith("sslcore.")]
    return out


@pytest.mark.parametrize("plugin", sorted(p.name for p in PLUGINS.iterdir() if p.is_dir()))
def test_plugins_name_only_the_sdk(plugin):
    """import-linter cannot forbid the top-level ``sslcore`` package without forbidding
    ``sslcore.sdk`` inside it; this reads the sources for any other sslcore import."""
    bad = [f"{path.relative_to(ROOT)}:{line}: {name}"
           for path in sorted((PLUGINS / plugin).rglob("*.py"))
           for line, name in _sslcore_imports(path) if name != "sslcore.sdk"]
    assert bad == []
