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
    "pretrain": {"epochs": 1, "batch_size": 64},
    "finetune": {"epochs": 2, "patience": 1},
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
