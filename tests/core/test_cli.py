"""The CLI: exit code 2 with a clear message for every bad input; plugins listing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sslcore.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sslcore", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_plugins_lists_versions_and_components():
    out = run_cli("plugins")
    assert out.returncode == 0, out.stderr
    assert "sslcore 0.1.0" in out.stdout and "fraud_transactions 0.1.0" in out.stdout
    assert "backbones" in out.stdout and "verticals" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "fraud_transaction"], "unknown verticals 'fraud_transaction'.*Did you mean"),
    (["run", "tabular", "--config", "missing.yaml"], "missing.yaml does not exist"),
])
def test_bad_input_exits_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_unknown_config_key_exits_2_with_dotted_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("vertical: tabular\nfinetune:\n  epochs: 2\n  patiense: 1\n")
    assert main(["run", "tabular", "--config", "c.yaml"]) == 2
    err = capsys.readouterr().err
    assert "finetune.patiense: unknown key" in err and "c.yaml" in err


def test_config_for_another_vertical_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("vertical: fraud_transactions\n")
    assert main(["run", "tabular", "--config", "c.yaml"]) == 2
    assert "is for 'fraud_transactions'" in capsys.readouterr().err


def test_bad_flag_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "tabular", "--seeds", "a,b"])
    assert exc.value.code == 2
