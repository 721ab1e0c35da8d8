"""The satellite vertical end to end through the CLI on tiny settings, read back from MLflow;
bad input (a corrupt GeoTIFF, a config typo) exits 2 with the file or field named."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
from mlflow import MlflowClient

from sslcore.cli import main
from sslcore_satellite.recipe import DEFAULT_CONFIG

VERTICAL = "satellite"
FRACTIONS, SEEDS = [0.5, 1.0], [0]
CHEAP: dict[str, dict[str, Any]] = {
    "linear_probe": {"Cs": [0.1, 1.0]},
    "band_stats_gbm": {"max_iter": 20, "max_iter_no_val": 20, "n_iter_no_change": 5},
    "band_stats_logreg": {"Cs": [1.0]},
}
HEADS = [{"name": r["name"], "params": CHEAP.get(r["name"], {})} for r in DEFAULT_CONFIG["heads"]]
BASELINES = [{"name": r["name"], "params": CHEAP.get(r["name"], {})}
             for r in DEFAULT_CONFIG["baselines"]]
METHODS = {("ssl", r["name"]) for r in HEADS} | {("baseline", r["name"]) for r in BASELINES}


def tiny_config(tmp_path: Path, dataset: dict[str, Any] | None = None, **overrides: Any) -> dict:
    cfg: dict[str, Any] = {
        "vertical": VERTICAL,
        "output_dir": str(tmp_path / "runs"),
        "dataset": dataset or {"name": "satellite_synthetic",
                               "params": {"n_unlabeled": 32, "n_labeled": 40, "n_test": 30,
                                          "size": 32}},
        "pretext": {"name": "dino", "params": {"n_local_crops": 2, "out_dim": 64,
                                               "hidden_dim": 32, "bottleneck_dim": 16,
                                               "total_steps": 2}},
        "heads": HEADS,
        "baselines": BASELINES,
        "pretrain": {"epochs": 1, "max_steps": 2, "batch_size": 16, "warmup_steps": 0,
                     "checkpoint_every": 1, "log_every": 1},
        "finetune": {"epochs": 1, "patience": 1, "batch_size": 16, "min_steps": 10},
        "evaluation": {"label_fractions": FRACTIONS, "seeds": SEEDS},
    }
    return cfg | overrides


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.slow
def test_satellite_run_through_the_cli(tmp_path, make_store, sslcore_cli):
    uri = make_store(tmp_path)
    write_config(tmp_path, tiny_config(tmp_path))
    out = sslcore_cli("run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"sslcore-{VERTICAL}")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["sslcore.vertical"] == VERTICAL
    assert parent.data.params["pretext.name"] == "dino"
    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    grid = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"],
             float(r.data.tags["sslcore.label_fraction"])) for r in down}
    assert grid == {(a, m, f) for a, m in METHODS for f in FRACTIONS}
    for r in down:
        for metric in ("test_accuracy", "test_macro_f1"):
            assert math.isfinite(r.data.metrics[metric]), (r.info.run_name, metric)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.md", "comparison.csv", "label_efficiency.png"} <= artifacts
    assert "confusion_matrix.png" in artifacts
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_corrupt_geotiff_exits_2_and_names_the_file(tmp_path, monkeypatch, make_store, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for name in ("Forest", "SeaLake"):
        (tmp_path / "ms" / name).mkdir(parents=True)
        for i in range(4):
            tile = rng.integers(0, 3000, size=(16, 16, 13)).astype(np.uint16)
            tifffile.imwrite(tmp_path / "ms" / name / f"{name}_{i}.tif", tile)
    bad = tmp_path / "ms" / "SeaLake" / "SeaLake_2.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 20)  # a TIFF signature and nothing else
    dataset = {"name": "eurosat_ms", "params": {"root": str(tmp_path / "ms"), "size": 16,
                                                "cache": False}}
    write_config(tmp_path, tiny_config(tmp_path, dataset))
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "skip_bad_files" in err and "Traceback" not in err, err


def test_config_typo_exits_2_and_names_the_field(tmp_path, monkeypatch, make_store, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tmp_path, pretext={"name": "dino", "params": {"n_local_crop": 2}})
    write_config(tmp_path, cfg)
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pretext.params.n_local_crop: unknown key" in err, err


def test_crops_that_do_not_split_into_patches_exit_2_and_name_the_field(tmp_path, monkeypatch,
                                                                          make_store, capsys):
    # 32 px tiles get 8 px patches (patch_size auto); a local crop of 12 px set in pixels
    # does not split into them.
    monkeypatch.chdir(tmp_path)
    pretext = {"name": "dino", "params": {"n_local_crops": 2, "out_dim": 64, "hidden_dim": 32,
                                          "bottleneck_dim": 16, "local_crop_size": 12}}
    write_config(tmp_path, tiny_config(tmp_path, pretext=pretext))
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pretext.params.local_crop_size: 12 px crops" in err and "8 px patches" in err, err
