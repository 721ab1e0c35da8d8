"""A small generic tabular dataset (scikit-learn's make_classification) for smoke tests.

Real verticals ship realistic generators; this one only exercises the machinery.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.data.ssl_data import SSLData


class SyntheticTabularParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_rows: int = Field(6_000, ge=50)
    n_features: int = Field(16, ge=2)
    positive_rate: float = Field(0.1, gt=0, lt=0.5)
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)


def synthetic_tabular(params: SyntheticTabularParams, *, seed: int) -> SSLData:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=params.n_rows, n_features=params.n_features,
        n_informative=max(2, params.n_features // 2), n_redundant=params.n_features // 4,
        weights=[1 - params.positive_rate], flip_y=0.01, class_sep=0.8, random_state=seed)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    a = int(params.split[0] * len(x))
    b = a + int(params.split[1] * len(x))
    return SSLData(unlabeled=x[:a], labeled_x=x[a:b], labeled_y=y[a:b], test_x=x[b:],
                   test_y=y[b:], sources=[f"make_classification(seed={seed})"],
                   feature_names=[f"f{i}" for i in range(params.n_features)],
                   class_names=["negative", "positive"]).validate()
