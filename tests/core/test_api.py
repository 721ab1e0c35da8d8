"""pretrain() then finetune() through the Python API, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

import sslcore
from sslcore.errors import CheckpointError, ConfigError

CFG = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 800, "n_features": 6}},
    "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}, {"name": "finetune"}],
    "baselines": [],
    "pretrain": {"epochs": 1, "batch_size": 64, "min_steps": 0},  # floors pinned low
    "finetune": {"epochs": 2, "patience": 1, "min_steps": 20},
}


def test_pretrain_then_finetune(tracking_uri, tmp_path):
    cfg = CFG | {"output_dir": str(tmp_path / "runs")}
    with pytest.raises(CheckpointError, match="no pretrained encoder"):
        sslcore.finetune(cfg)
    ckpt_dir = sslcore.pretrain(cfg, progress=False)
    assert (ckpt_dir / "last.pt").is_file()
    head = sslcore.finetune(cfg, method="linear_probe", label_fraction=0.5)
    scores = head.predict_scores(np.zeros((4, 6), dtype=np.float32))
    assert scores.shape == (4,) and np.isfinite(scores).all()
    with pytest.raises(ConfigError, match="method: 'knn' is not a head"):
        sslcore.finetune(cfg, method="knn")


def test_finetune_labels_whole_groups_like_the_sweep(tracking_uri, tmp_path, monkeypatch):
    """With labeled_groups (e.g. failure histories), finetune's label fraction counts groups,
    as the sweep's does, never rows cut out of a group."""
    import sslcore.sweep
    from sslcore.data.ssl_data import SSLData

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)
    y = np.repeat(np.arange(40) % 4 == 0, 10).astype(np.int64)
    x = (rng.normal(size=(400, 6)) + y[:, None]).astype(np.float32)
    data = SSLData(unlabeled=rng.normal(size=(600, 6)).astype(np.float32), labeled_x=x,
                   labeled_y=y, test_x=x[:50], test_y=y[:50], labeled_groups=groups)
    cfg = CFG | {"output_dir": str(tmp_path / "runs")}
    sslcore.pretrain(cfg, data, progress=False)
    seen = []
    real = sslcore.sweep.fit_context
    monkeypatch.setattr(sslcore.sweep, "fit_context",
                        lambda d, subset, *a, **k: seen.append(subset) or real(d, subset, *a, **k))
    sslcore.finetune(cfg, data, method="linear_probe", label_fraction=0.25)
    rows = seen[0].all
    picked = np.unique(groups[rows])
    assert len(rows) == 10 * len(picked)  # every row of each picked group, no partial group
    assert len(picked) == 3 + 8  # a quarter (rounded up) of 10 failing and 30 healthy groups
