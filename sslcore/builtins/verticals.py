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
    "baselines": [{"name": "scratch"}, {"name": "hist_gbm"}, {"name": "logreg_raw"}],
    # The generic vertical for users' own tables: at least 500 SCARF steps (10 epochs of the
    # built-in 3,600 rows are 140), at most 5000.
    "pretrain": {"epochs": 10, "batch_size": 256, "min_steps": 500, "max_steps": 5000},
    # At least 300 steps for a few dozen labels, at most 3000.
    "finetune": {"epochs": 20, "patience": 4, "min_steps": 300, "max_steps": 3000},
    "evaluation": {"metrics": ["auprc", "auroc", "accuracy", "macro_f1"],
                   "primary_metric": "auprc"},
}


def tabular_recipe(params: Any) -> VerticalRecipe:
    return VerticalRecipe(
        description="any numeric table: MLP encoder, SCARF pretraining",
        default_config=TABULAR,
        # quick: 0.25x floors and caps (pretraining 125-1250 steps, fine-tuning 75-750).
        quick_overrides={"budget": "quick", "pretrain": {"epochs": 2},
                         "finetune": {"epochs": 5, "patience": 2},
                         "evaluation": {"seeds": [0, 1]}},
    )
