"""The best downstream model as an MLflow pyfunc model, and the command that serves it.

``sslcore.tracking.log_best_model`` logs :class:`SSLCoreModel`; this module says what it does
when loaded (check the request, compute features from raw records where the vertical says how,
score) and how ``sslcore serve`` starts MLflow's scoring server.

A bad request is refused with HTTP 400 and a message naming the column (and row): MLflow's
schema check names a missing column or a value of the wrong type; this wrapper names a NaN or
infinite value, and the vertical's raw-record transform names what it refuses.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from mlflow.pyfunc import PythonModel


def bad_request(message: str) -> Exception:
    """An MlflowException that the scoring server answers with HTTP 400 and ``message``."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _check_finite_columns(frame: Any) -> None:
    """Refuse NaN and infinite numbers in a request's numeric columns, naming column and row."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            row = int(np.argmax(bad))
            raise bad_request(f"column {column!r} has {int(bad.sum())} NaN or infinite "
                              f"value(s), first at row {row} (0-based) = {values.iloc[row]}; "
                              "send finite numbers")


class SSLCoreModel(PythonModel):
    """Wraps a fitted sslcore Method; ``predict`` returns positive-class scores or class probs.

    Input is a DataFrame with the training feature columns (tables), the vertical's raw
    records when it provides a raw transform (``raw_features``: a
    :class:`sslcore.contracts.RawInput`'s ``features``), or an array in the vertical's sample
    shape (images, time series).
    """

    # Inputs are frames or arrays by design; MLflow's type-hint validation (and its warning
    # at class creation) does not apply.
    _skip_type_hint_validation = True

    def __init__(self, method: Any, input_shape: tuple[int, ...], feature_names: list[str] | None,
                 class_names: list[str] | None, raw_features: Any = None,
                 raw_columns: list[str] | None = None) -> None:
        self.method = method
        self.input_shape = tuple(input_shape)
        self.feature_names = feature_names
        self.class_names = class_names
        self.raw_features = raw_features
        self.raw_columns = raw_columns

    def _as_array(self, model_input: Any) -> np.ndarray:
        from sslcore.errors import SSLCoreError

        frame = hasattr(model_input, "columns")
        expected = self.raw_columns if self.raw_features is not None else self.feature_names
        if frame and expected:
            missing = [c for c in expected if c not in model_input.columns]
            if missing:
                raise bad_request(f"input is missing columns {missing} (expected {expected})")
            model_input = model_input[expected]
        if frame:
            _check_finite_columns(model_input)
        if self.raw_features is not None:
            if not frame:
                raise bad_request(f"input must be a table with the columns {expected}")
            try:
                model_input = self.raw_features(model_input.reset_index(drop=True))
            except SSLCoreError as exc:
                raise bad_request(str(exc)) from None
        x = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input,
                       dtype=np.float32)
        if not frame and not np.isfinite(x).all():
            sample = int(np.argmax(~np.isfinite(x.reshape(len(x), -1)).any(axis=1)))
            raise bad_request(f"input has NaN or infinite values, first in sample {sample}")
        try:
            return x.reshape((-1, *self.input_shape))
        except ValueError:
            raise bad_request(f"input of shape {x.shape} does not hold samples of shape "
                              f"{self.input_shape}") from None

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads hints
        return self.method.predict_scores(self._as_array(model_input))


def raw_input_for(cfg: Any, registries: Any, data: Any) -> Any:
    """The vertical's :class:`~sslcore.contracts.RawInput` for this run's dataset, or None.

    None when the recipe has no raw transform, the dataset has no raw form, or the run's
    features are not the ones the transform computes (the user's own arrays): the model then
    takes feature columns. A transform that fails to build is reported, not fatal: the sweep
    is already logged.
    """
    import logging

    recipe = registries.verticals.get(cfg.vertical).build()
    if recipe.raw_input is None:
        return None
    try:
        raw = recipe.raw_input(cfg.dataset.name, dict(cfg.dataset.params))
    except Exception as exc:  # noqa: BLE001 - fall back to the feature model
        logging.getLogger(__name__).warning(
            "vertical %s: no raw-record model (%s); the logged model takes feature columns",
            cfg.vertical, exc)
        return None
    if raw is None or list(raw.feature_names) != list(data.feature_names or []):
        return None
    return raw


def serve_command(model_uri: str, host: str, port: int,
                  tracking_uri: str) -> tuple[list[str], dict[str, str]]:
    """``mlflow models serve`` with this interpreter's MLflow, and the child's environment.

    MLflow starts its scoring server as ``uvicorn`` found on PATH: the directory of this
    interpreter (the venv's bin) goes first, so a shell without the venv activated works.
    """
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
           "--env-manager", "local", "--host", host, "--port", str(port)]
    env = dict(os.environ)
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep)
                                              if p and p != bin_dir]])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return cmd, env
