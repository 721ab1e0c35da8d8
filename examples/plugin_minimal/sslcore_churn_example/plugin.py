"""The churn example's hooks: one dataset, one metric, one recipe; everything else is core.

A plugin imports sslcore only through ``sslcore.sdk`` (checked by the import-linter contract in
sslcore's pyproject.toml) and keeps its hooks thin: heavy work happens inside the factories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import Metric, NoParams, SSLData, VerticalRecipe, hookimpl


class ChurnParams(BaseModel):
    """Params of the built-in customer table (a real loader would take a path)."""

    model_config = ConfigDict(extra="forbid")

    n_customers: int = Field(3000, ge=100, description="customers in the table")
    churn_rate: float = Field(0.08, gt=0, lt=0.5, description="share who leave")


def churn_table(params: ChurnParams, *, seed: int) -> SSLData:
    """Twelve months of activity per customer; churners' activity fades over the last months.

    Each customer has their own level of use (habits differ far more than churn does), so
    the signal is the trend against the customer's own level, not the level itself.
    """
    rng = np.random.default_rng(seed)
    n = params.n_customers
    y = (rng.random(n) < params.churn_rate).astype(np.int64)
    level = rng.lognormal(mean=2.0, sigma=0.8, size=(n, 1))
    fade = np.where(y[:, None] == 1, np.linspace(1.0, 0.4, 12), 1.0)
    x = (level * fade * rng.lognormal(0.0, 0.3, size=(n, 12))).astype(np.float32)
    a, b = int(0.6 * n), int(0.8 * n)  # unlabeled / labeled / test
    return SSLData(unlabeled=x[:a], labeled_x=x[a:b], labeled_y=y[a:b], test_x=x[b:],
                   test_y=y[b:], sources=[f"churn_table(seed={seed})"],
                   feature_names=[f"month_{m + 1}" for m in range(12)],
                   class_names=["stays", "churns"])


def precision_at_top_decile(y: np.ndarray, scores: np.ndarray) -> float:
    """Share of churners among the 10% of customers scored highest: whom a retention team
    would call."""
    s = scores[:, 1] if scores.ndim == 2 else scores
    top = np.argsort(-s, kind="stable")[:max(1, len(s) // 10)]
    return float(y[top].mean())


RECIPE: dict[str, Any] = {
    "dataset": {"name": "churn_table"},
    "backbone": {"name": "mlp", "params": {"hidden_dims": [64, 64], "embed_dim": 32}},
    "pretext": {"name": "scarf"},
    "heads": [{"name": "linear_probe"}, {"name": "finetune"}],
    "baselines": [{"name": "scratch"}, {"name": "logreg_raw"}],
    "pretrain": {"epochs": 10, "batch_size": 256, "min_steps": 200, "max_steps": 2000},
    "finetune": {"epochs": 20, "min_steps": 200, "max_steps": 2000},
    "evaluation": {"metrics": ["auprc", "precision_at_top_decile"],
                   "primary_metric": "auprc", "label_fractions": [0.05, 0.25, 1.0]},
}


@hookimpl
def sslcore_register_datasets(registry):
    registry.add("churn_table", churn_table, params=ChurnParams,
                 description="customers' monthly activity, churners fading")


@hookimpl
def sslcore_register_metrics(registry):
    registry.add("precision_at_top_decile", lambda params: Metric(precision_at_top_decile,
                                                                  binary_only=True),
                 description="churners among the top 10% of scores")


@hookimpl
def sslcore_register_verticals(registry):
    registry.add("churn_example", lambda params: VerticalRecipe(
        description="customer churn from monthly activity (example plugin)",
        default_config=RECIPE,
        quick_overrides={"budget": "quick", "dataset": {"name": "churn_table",
                                                        "params": {"n_customers": 1500}},
                         "evaluation": {"seeds": [0]}},
        modality="table"), params=NoParams)
