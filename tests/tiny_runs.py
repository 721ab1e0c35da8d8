"""A tiny tabular run for tests of what happens around a finished run (UI, registry, serving).

2 pretraining steps, one SSL head and one baseline, one seed, two fractions: seconds on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sslcore

TINY: dict[str, Any] = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 600, "n_features": 8}},
    "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
    "baselines": [{"name": "logreg_raw"}],
    "pretrain": {"epochs": 1, "max_steps": 2, "min_steps": 0, "batch_size": 128},
    "evaluation": {"label_fractions": [0.5, 1.0], "seeds": [0]},
}


def compare_from(cwd: Path, config: dict[str, Any], tracking_uri: str, runs: Path) -> Any:
    """``sslcore.compare(config)`` run from ``cwd``, its checkpoints in ``runs``, with no
    MLFLOW_TRACKING_URI from the environment: only ``tracking_uri`` decides the store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return sslcore.compare(config | {"output_dir": str(runs)}, tracking_uri=tracking_uri,
                               progress=False)
