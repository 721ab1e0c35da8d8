"""The medical_imaging vertical end to end through the CLI, on a tiny Kermany-layout folder.

The full run uses ``python -m sslcore`` as a subprocess (the exit code the shell sees) on
synthetic radiographs saved as JPEGs, with one truncated file skipped (``skip_bad_files``);
the bad-input cases call the CLI's ``main()`` in this process.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image

from sslcore.cli import main
from sslcore_medical_imaging.synthetic import generate_radiographs

VERTICAL = "medical_imaging"
EXPERIMENT = f"sslcore-{VERTICAL}"
TEST_METRICS = {"test_auroc", "test_accuracy", "test_sensitivity", "test_specificity"}
METHODS = {("ssl", "linear_probe"), ("ssl", "finetune"), ("baseline", "scratch"),
           ("baseline", "logreg_raw")}
FRACTIONS = [0.5, 1.0]


def kermany_folder(root: Path, n: dict[str, int] | None = None) -> Path:
    """Synthetic radiographs saved in the Kermany layout (32 px JPEGs)."""
    n = n or {"train": 48, "val": 8, "test": 32}
    x, y, _ = generate_radiographs(sum(n.values()), size=32, prevalence=0.4, seed=5)
    i = 0
    for split, count in n.items():
        for _ in range(count):
            cls = "PNEUMONIA" if y[i] else "NORMAL"
            path = root / split / cls / f"img{i:03d}.jpeg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((x[i, 0] * 255).astype(np.uint8)).save(path, quality=95)
            i += 1
    return root


def tiny_config(tmp_path: Path, dataset: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "vertical": VERTICAL,
        "output_dir": str(tmp_path / "runs"),
        "dataset": dataset,
        "pretrain": {"epochs": 1, "max_steps": 3, "batch_size": 16, "warmup_steps": 0,
                     "checkpoint_every": 10, "log_every": 1},
        "finetune": {"epochs": 1, "batch_size": 16, "patience": 1, "min_steps": 10},
        "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}, {"name": "finetune"}],
        "evaluation": {"label_fractions": FRACTIONS, "seeds": [0]},
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


@pytest.mark.slow
def test_run_on_a_kermany_folder_through_the_cli(tmp_path, make_store, sslcore_cli):
    root = kermany_folder(tmp_path / "chest_xray")
    bad = root / "train" / "NORMAL" / "truncated.jpeg"
    bad.write_bytes(next((root / "test" / "NORMAL").iterdir()).read_bytes()[:150])
    dataset = {"name": "kermany", "params": {"root": str(root), "size": 32,
                                             "cache_dir": str(tmp_path / "cache"),
                                             "skip_bad_files": True}}
    write_config(tmp_path, tiny_config(tmp_path, dataset))
    uri = make_store(tmp_path)
    out = sslcore_cli("run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              max_results=1000)
    assert {r.info.status for r in runs} == {"FINISHED"}
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.params["data.skipped_files"] == "1"
    assert "sslcore.artifacts_error" not in parent.data.tags
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"saliency.png", "skipped_files.txt", "comparison.md"} <= artifacts
    listed = Path(client.download_artifacts(parent.info.run_id, "skipped_files.txt",
                                            str(tmp_path))).read_text()
    assert str(bad) in listed

    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    grid = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"],
             float(r.data.tags["sslcore.label_fraction"])) for r in down}
    assert grid == {(a, m, f) for a, m in METHODS for f in FRACTIONS}
    for r in down:
        assert TEST_METRICS <= set(r.data.metrics), r.info.run_name
        assert all(math.isfinite(r.data.metrics[m]) for m in TEST_METRICS), r.info.run_name


@pytest.mark.parametrize("kind, message", [
    ("truncated_jpeg", r"image file {bad}: cannot be decoded .*skip_bad_files: true"),
    ("not_an_image", r"image file {bad}: is not an image PIL can read"),
    ("no_class_folders", r"{root}/test has no class folders"),
], ids=["truncated_jpeg", "not_an_image", "no_class_folders"])
def test_bad_folder_exits_2_and_names_the_file(kind, message, tmp_path, monkeypatch,
                                                make_store, capsys):
    monkeypatch.chdir(tmp_path)
    root = kermany_folder(tmp_path / "cx", {"train": 12, "test": 8})
    bad = root / "train" / "PNEUMONIA" / "bad.jpeg"
    if kind == "truncated_jpeg":
        bad.write_bytes(next((root / "test" / "NORMAL").iterdir()).read_bytes()[:150])
    elif kind == "not_an_image":
        bad.write_text("<html>this was a download error page</html>")
    else:
        for f in (root / "test").rglob("*.jpeg"):
            f.rename(root / "test" / f.name)
        for d in (root / "test").iterdir():
            if d.is_dir():
                d.rmdir()
    dataset = {"name": "kermany", "params": {"root": str(root), "size": 32,
                                             "cache_dir": str(tmp_path / "cache")}}
    write_config(tmp_path, tiny_config(tmp_path, dataset))
    uri = make_store(tmp_path)
    assert main(["run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    expected = message.format(bad=re.escape(str(bad)), root=re.escape(str(root)))
    assert re.search(expected, err), err
    assert "Traceback" not in err
    assert all(r.info.status != "RUNNING" for r in all_runs(uri))


def test_quick_recipe_is_a_valid_config():
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    cfg = resolve_config(VERTICAL, load_registries(), quick=True)
    assert cfg.dataset.name == "medical_synthetic" and cfg.backbone.name == "resnet18"
    assert cfg.evaluation.primary_metric == "auroc"
    assert {0.01, 0.05, 0.1} <= set(cfg.evaluation.label_fractions)
