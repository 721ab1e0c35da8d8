"""The fraud vertical end to end through the CLI, on tiny data, read back with MlflowClient.

The full run and the corrupt-checkpoint case run ``python -m sslcore`` as a subprocess (the
exit code the shell sees); the other bad inputs call the CLI's ``main()`` in this process, as
tests/core/test_cli.py does, which saves the 5-10 s of imports a subprocess costs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from mlflow import MlflowClient

from sslcore.cli import main
from sslcore_fraud_transactions.recipe import DEFAULT_CONFIG
from sslcore_fraud_transactions.synthetic import generate_transactions

VERTICAL = "fraud_transactions"
EXPERIMENT = f"sslcore-{VERTICAL}"
TEST_METRICS = {"test_auprc", "test_auroc", "test_recall_at_1pct_fpr", "test_fp_at_80pct_recall"}
FRACTIONS, SEEDS = [0.25, 1.0], [0, 1]

# Small budgets for the recipe's methods; every method of the recipe is kept.
_GBM = {"max_iter": 30, "max_iter_no_val": 30, "n_iter_no_change": 5}
CHEAP: dict[str, dict[str, Any]] = {
    "embedding_anomaly": {"max_fit_samples": 1000},
    "linear_probe": {"Cs": [0.1, 1.0]},
    "gbm_on_embeddings": _GBM | {"max_fit_samples": 1000},
    "hist_gbm": _GBM,
    "iforest": {"n_estimators": 20, "max_fit_samples": 2000},
    "ecod": {"max_fit_samples": 1000},
}


def _cheap(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": r["name"], "params": dict(r.get("params", {})) | CHEAP.get(r["name"], {})}
            for r in refs]


HEADS, BASELINES = _cheap(DEFAULT_CONFIG["heads"]), _cheap(DEFAULT_CONFIG["baselines"])
METHODS = {("ssl", r["name"]) for r in HEADS} | {("baseline", r["name"]) for r in BASELINES}
SMALL_DATA = {"n_rows": 5000, "n_users": 50, "fraud_rate": 0.02}  # 27 labeled frauds


def tiny_config(tmp_path: Path, data: dict[str, Any] | None = None, **overrides: Any) -> dict:
    """The run's config: ``data`` replaces the dataset block, ``overrides`` top-level keys."""
    cfg: dict[str, Any] = {
        "vertical": VERTICAL,
        "output_dir": str(tmp_path / "runs"),
        "dataset": data or {"name": "fraud_synthetic",
                            "params": {"n_rows": 20_000, "n_users": 300, "fraud_rate": 0.01}},
        "heads": HEADS,
        "baselines": BASELINES,
        "pretrain": {"epochs": 1, "max_steps": 8, "batch_size": 256, "warmup_steps": 0,
                     "checkpoint_every": 4, "log_every": 4},
        "finetune": {"epochs": 2, "patience": 1, "batch_size": 256, "min_steps": 20},
        "evaluation": {"label_fractions": FRACTIONS, "seeds": SEEDS},
    }
    return cfg | overrides


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def all_runs(uri: str) -> list[Any]:
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=1000) if ids else []


def printed_table(stdout: str) -> list[list[str]]:
    """Cells of the console table (rows drawn with the ┆ separator), header first."""
    return [[c.strip() for c in line.strip().strip("│").split("┆")]
            for line in stdout.splitlines() if "┆" in line]


# ---------------------------------------------------------------------------- full run

@pytest.mark.slow
def test_fraud_run_through_the_cli(tmp_path, make_store, sslcore_cli):
    uri = make_store(tmp_path)
    write_config(tmp_path, tiny_config(tmp_path))
    out = sslcore_cli("run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    table = printed_table(out.stdout)
    assert table[0][:2] == ["group", "method"] and [float(c) for c in table[0][2:]] == FRACTIONS
    # The printed group is the arm, except label_free for the methods that use no labels.
    label_free = {"iforest", "ecod", "embedding_anomaly"}
    assert {(row[0], row[1].split(" (")[0]) for row in table[1:]} == \
        {("label_free" if m in label_free else a, m) for a, m in METHODS}
    assert all("±" in cell for row in table[1:] for cell in row[2:])

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["sslcore.vertical"] == VERTICAL
    assert parent.data.tags["sslcore.kind"] == "experiment"
    assert f"MLflow parent run {parent.info.run_id}" in out.stdout
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    assert [r.data.tags.get("sslcore.kind") for r in children].count("pretrain") == 1

    down = [r for r in children if r.data.tags.get("sslcore.kind") == "downstream"]
    grid = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"],
             float(r.data.tags["sslcore.label_fraction"]), int(r.data.tags["sslcore.seed"]))
            for r in down}
    assert len(down) == len(grid) == len(METHODS) * len(FRACTIONS) * len(SEEDS)
    assert grid == {(a, m, f, s) for a, m in METHODS for f in FRACTIONS for s in SEEDS}
    for r in down:
        name = r.info.run_name
        assert TEST_METRICS <= set(r.data.metrics), name
        assert all(math.isfinite(r.data.metrics[m]) for m in TEST_METRICS), name
        assert int(r.data.params["n_labeled.fraud"]) > 0, name
        assert int(r.data.params["n_labeled.legit"]) > 0, name
    assert {r.info.status for r in runs} == {"FINISHED"}


# ------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def transactions() -> pl.DataFrame:
    return generate_transactions(3000, n_users=40, fraud_rate=0.03, seed=1)


COLUMNS = {"user": "user_id", "timestamp": "timestamp", "amount": "amount",
           "categorical": ["merchant_id", "merchant_category", "device_id"], "label": "is_fraud"}
NAN_ROW = 7


def _table_case(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    if kind == "missing_amount":
        return df.drop("amount")
    if kind == "nan_amount":
        return df.with_columns(pl.when(pl.int_range(pl.len()) == NAN_ROW).then(float("nan"))
                               .otherwise(pl.col("amount")).alias("amount"))
    assert kind == "one_class"
    return df.with_columns(pl.lit(0, dtype=pl.Int8).alias("is_fraud"))


@pytest.mark.parametrize("kind, message", [
    ("missing_amount", r"tx\.csv: .*amount column 'amount' not found"),
    ("nan_amount", rf"tx\.csv: .*column 'amount' has 1 null/NaN/inf value.*row {NAN_ROW}\b"),
    ("one_class", r"tx\.csv: .*label column 'is_fraud' has a single class"),
], ids=["missing_amount", "nan_amount", "one_class"])
def test_bad_table_exits_2_and_names_it(kind, message, transactions, tmp_path, monkeypatch,
                                         make_store, capsys):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "tx.csv"
    _table_case(kind, transactions).write_csv(csv)
    dataset = {"name": "fraud_table", "params": {"path": str(csv), "columns": COLUMNS}}
    write_config(tmp_path, tiny_config(tmp_path, dataset))
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert str(csv) in err and "Traceback" not in err
    assert all_runs(uri) == []  # refused before any run started


@pytest.mark.parametrize("overrides, message", [
    ({"evaluation": {"label_fractions": [0.0001], "seeds": [0], "min_labeled_per_class": 50}},
     r"only \d+ row\(s\) of class 1.*at least 50 \(evaluation\.min_labeled_per_class\)"),
    ({"heads": [{"name": "linear_prob"}]},
     r"heads\[0\]\.name: unknown heads 'linear_prob'.*Did you mean 'linear_probe'"),
    ({"finetune": {"epochs": 2, "patiense": 1}}, r"finetune\.patiense: unknown key"),
    ({"dataset": {"name": "fraud_synthetic", "params": SMALL_DATA | {"n_rowz": 10}}},
     r"dataset\.params\.n_rowz: unknown key"),
], ids=["too_few_positives", "unknown_head", "unknown_key", "unknown_dataset_param"])
def test_bad_config_exits_2_and_names_it(overrides, message, tmp_path, monkeypatch, make_store,
                                          capsys):
    monkeypatch.chdir(tmp_path)
    small = {"name": "fraud_synthetic", "params": SMALL_DATA}
    write_config(tmp_path, tiny_config(tmp_path, small, **overrides))
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err, re.DOTALL), err
    assert "c.yaml" in err and "Traceback" not in err
    assert all_runs(uri) == []  # refused before any run started


@pytest.mark.slow
def test_corrupt_checkpoint_on_resume_exits_2_and_names_the_file(tmp_path, make_store,
                                                                  sslcore_cli):
    uri = make_store(tmp_path)
    cfg = tiny_config(tmp_path, {"name": "fraud_synthetic", "params": SMALL_DATA})
    write_config(tmp_path, cfg)
    pre = sslcore_cli("pretrain", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-5000:]
    found = list(Path(cfg["output_dir"]).rglob("last.pt"))
    assert len(found) == 1 and found[0].parent.name == "checkpoints", found
    ckpt = found[0]
    assert f"checkpoint: {ckpt.parent}" in pre.stdout

    ckpt.write_bytes(b"this is not a torch checkpoint \x00\xff" * 8)
    out = sslcore_cli("run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", "--resume", cwd=tmp_path)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-5000:]
    assert str(ckpt) in out.stderr and "corrupt" in out.stderr, out.stderr[-5000:]
    assert "Traceback" not in out.stderr

    runs = all_runs(uri)
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    by_kind = {(r.data.tags.get("sslcore.kind"), "mlflow.parentRunId" in r.data.tags):
               r.info.status for r in runs}
    assert by_kind[("experiment", False)] == "FAILED"  # the run that hit the corrupt file
    assert by_kind[("pretrain", False)] == "FINISHED"  # `sslcore pretrain` before it
