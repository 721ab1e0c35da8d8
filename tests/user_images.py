"""Users' own images for the image verticals' tests: made-up textures, splits, and the check
that a run on them logged every method of every arm."""

from __future__ import annotations

import math

import numpy as np
from mlflow import MlflowClient


def texture_images(n: int, side: int, classes: int, seed: int = 0,
                   channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Stripes whose orientation and frequency depend on the class, with random phase."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    rows, cols = np.mgrid[:side, :side] / side
    angle = (np.pi * y / classes)[:, None, None]
    freq = (1.5 + (y % 3))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    wave = np.sin(2 * np.pi * freq * (np.cos(angle) * cols + np.sin(angle) * rows) + phase)
    x = 0.5 + 0.2 * wave[:, None] + rng.normal(0, 0.05, (n, channels, side, side))
    return x.astype(np.float32), y.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, n_unlabeled: int, n_labeled: int) -> dict:
    a, b = n_unlabeled, n_unlabeled + n_labeled
    return {"unlabeled": x[:a], "labeled": (x[a:b], y[a:b]), "test": (x[b:], y[b:])}


def check_runs(report, artifacts: set[str] = frozenset({"geometry.json"})) -> dict[str, str]:
    """Every arm's methods logged a child run with finite test metrics, the parent has
    ``artifacts``; returns the parent's tags and params (the data card)."""
    client = MlflowClient(report.tracking_uri)
    runs = client.search_runs([report.experiment_id], max_results=1000)
    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    logged = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"]) for r in down}
    expected = ({("ssl", r.label) for r in report.config.heads}
                | {("baseline", r.label) for r in report.config.baselines})
    assert logged == expected
    for r in down:
        tests = [v for k, v in r.data.metrics.items() if k.startswith("test_")]
        assert tests and all(math.isfinite(v) for v in tests), r.info.run_name
    assert any(r.data.tags.get("sslcore.kind") == "pretrain" for r in runs)
    parent = client.get_run(report.run_id)
    assert "sslcore.artifacts_error" not in parent.data.tags, parent.data.tags
    logged_artifacts = {a.path for a in client.list_artifacts(report.run_id)}
    assert set(artifacts) <= logged_artifacts, logged_artifacts
    return parent.data.tags | parent.data.params
