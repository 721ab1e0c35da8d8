"""The generic ``tabular`` vertical: any numeric table, passed through the Python API.

``sslcore.compare("tabular", data={...})`` runs the comparison on the user's arrays with an MLP
encoder and SCARF; without ``data`` it uses a small make_classification set (a smoke test).
"""

from __future__ import annotations

from typing import Any

from sslcore.contracts import VerticalRecipe

TABULAR: dict[str, Any] = {
    "dataset": {"name": "synthetic_tabular"},
    "backbone": {"name": "mlp", "params": {"hidden_dims": [128, 128], "embed_dim": 64}},
    "pretext": {"name": "scarf"},
    "heads": [{"name": "linear_probe"}, {"name": "finetune"}, {"name": "gbm_on_embeddings"}],
    "baselines": [{"name": "scratch"}, {"name": "hist_gbm"}],
    "pretrain": {"epochs": 10, "batch_size": 256},
    "finetune": {"epochs": 20, "patience": 4},
    "evaluation": {"metrics": ["auprc", "auroc", "accuracy", "macro_f1"],
                   "primary_metric": "auprc"},
}


def tabular_recipe(params: Any) -> VerticalRecipe:
    return VerticalRecipe(
        description="any numeric table: MLP encoder, SCARF pretraining",
        default_config=TABULAR,
        quick_overrides={"pretrain": {"epochs": 2}, "finetune": {"epochs": 5, "patience": 2},
                         "evaluation": {"seeds": [0, 1]}},
    )
