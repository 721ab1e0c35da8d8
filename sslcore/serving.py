"""The best downstream model as an MLflow pyfunc model: features in, scores out."""

from __future__ import annotations

import logging
import warnings
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


def log_best_model(method: Any, x_example: np.ndarray, feature_names: list[str] | None,
                   class_names: list[str] | None) -> str:
    """Log under the active run as ``model`` with a signature; return the model URI."""
    import mlflow
    import pandas as pd
    import sklearn
    import torch
    from mlflow.models import infer_signature

    import sslcore

    wrapper = SSLCoreModel(method, x_example.shape[1:], feature_names, class_names)
    if feature_names and x_example.ndim == 2:
        example: Any = pd.DataFrame(x_example, columns=feature_names)
    else:
        example = x_example
    signature = infer_signature(example, wrapper.predict(None, example))
    requirements = [f"sslcore=={sslcore.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                    f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"]
    # MLflow warns that python models are cloudpickled; that is deliberate here (the model
    # object holds torch and scikit-learn parts), so keep the demo output clean.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(name="model", python_model=wrapper,
                                           signature=signature, pip_requirements=requirements)
    finally:
        mlflow_logger.setLevel(level)
    return info.model_uri
