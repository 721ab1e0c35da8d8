"""The best downstream model as an MLflow pyfunc model: features in, scores out.

``sslcore.tracking.log_best_model`` logs it; this module only defines what it does when loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlflow.pyfunc import PythonModel


class SSLCoreModel(PythonModel):
    """Wraps a fitted sslcore Method; ``predict`` returns positive-class scores or class probs.

    Input is a DataFrame with the training feature columns (tables) or an array in the
    vertical's sample shape (images, time series).
    """

    # Inputs are frames or arrays by design; MLflow's type-hint validation (and its warning
    # at class creation) does not apply.
    _skip_type_hint_validation = True

    def __init__(self, method: Any, input_shape: tuple[int, ...], feature_names: list[str] | None,
                 class_names: list[str] | None) -> None:
        self.method = method
        self.input_shape = tuple(input_shape)
        self.feature_names = feature_names
        self.class_names = class_names

    def _as_array(self, model_input: Any) -> np.ndarray:
        if hasattr(model_input, "columns") and self.feature_names:
            missing = [c for c in self.feature_names if c not in model_input.columns]
            if missing:
                raise ValueError(f"input is missing feature columns {missing}")
            model_input = model_input[self.feature_names]
        x = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input,
                       dtype=np.float32)
        return x.reshape((-1, *self.input_shape))

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads hints
        return self.method.predict_scores(self._as_array(model_input))

