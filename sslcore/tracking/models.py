"""The logged best model and its Model Registry entry.

Part of :mod:`sslcore.tracking`, the MLflow writer. The model is an MLflow pyfunc
(:class:`sslcore.serving.SSLCoreModel`) with a signature and an input example, so
``mlflow models serve`` checks requests against it. Registration makes it a version of
``sslcore-<vertical>`` (``tracking.registered_model``) with the alias ``candidate``; ``sslcore
promote`` moves the alias ``champion`` to a version, and ``models:/<name>@champion`` loads it.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from typing import Any

from sslcore.errors import ConfigError

CANDIDATE, CHAMPION = "candidate", "champion"


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow warns that python models are cloudpickled and prints each registration; both
    are deliberate here, so keep the run's output clean."""
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()):  # its eprint()s
            warnings.simplefilter("ignore")
            yield
    finally:
        mlflow_logger.setLevel(level)


def _distribution_of(obj: Any) -> list[str]:
    """``name==version`` of the installed distribution that defines ``obj`` (a plugin)."""
    top = (getattr(obj, "__module__", None) or type(obj).__module__).split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    return [f"{n}=={importlib.metadata.version(n)}" for n in names[:1]]


def log_best_model(method: Any, x_example: Any, feature_names: list[str] | None,
                   class_names: list[str] | None, raw_input: Any = None) -> str:
    """Log a fitted Method under the active run as the pyfunc ``model`` (a signature, an input
    example, pinned requirements); return the model URI.

    With ``raw_input`` (a :class:`sslcore.contracts.RawInput`) the model takes the vertical's
    raw records and computes its features itself; its requirements then name the plugin
    that computes them, which must be installed where the model is served.
    """
    import mlflow
    import numpy as np
    import pandas as pd
    import polars
    import sklearn
    import torch
    from mlflow.models import infer_signature

    import sslcore
    from sslcore.serving import SSLCoreModel

    requirements = [f"sslcore=={sslcore.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                    f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}",
                    f"polars=={polars.__version__}", f"pandas=={pd.__version__}"]
    if raw_input is not None:
        wrapper = SSLCoreModel(method, x_example.shape[1:], feature_names, class_names,
                               raw_input.features, list(raw_input.example.columns))
        example: Any = raw_input.example
        requirements += _distribution_of(raw_input.features)
    else:
        wrapper = SSLCoreModel(method, x_example.shape[1:], feature_names, class_names)
        if feature_names and x_example.ndim == 2:
            # double columns: MLflow's schema check passes float32 and float64 frames (float
            # columns would refuse a plain pandas frame); the model computes in float32.
            example = pd.DataFrame(np.asarray(x_example, dtype=np.float64), columns=feature_names)
        else:  # a tensor's dtype must match exactly: the training float32
            example = x_example[:2]  # stored as JSON: keep it small
    with _quiet_mlflow():  # MLflow's hints on integer columns: a null there is refused, right
        signature = infer_signature(example, wrapper.predict(None, example))
        what = ({"input": "raw records", "limits": raw_input.limits} if raw_input is not None
                else {"input": "features"})
        info = mlflow.pyfunc.log_model(name="model", python_model=wrapper, signature=signature,
                                       input_example=example, pip_requirements=requirements,
                                       metadata={"sslcore": what})
    return info.model_uri


def register_best_model(model_uri: str, name: str, tags: Mapping[str, str],
                        description: str = "") -> str:
    """Register ``model_uri`` as a new version of ``name`` with ``tags`` and the alias
    ``candidate``; return the version."""
    import mlflow
    from mlflow import MlflowClient

    with _quiet_mlflow():
        version = mlflow.register_model(model_uri, name,
                                        tags={k: str(v)[:5000] for k, v in tags.items()})
    client = MlflowClient()
    if description:
        client.update_model_version(name, version.version, description=description[:5000])
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return str(version.version)


def _logged_fit_scores(cfg: Any, best: tuple[str, str], results: Any,
                       val_results: Any) -> dict[str, float]:
    """``test_<primary>`` and ``val_<primary>`` of the fit that was logged: the best (arm,
    method) at the largest label fraction with the first seed."""
    import polars as pl

    ev = cfg.evaluation
    out = {}
    for prefix, frame in (("test", results), ("val", val_results)):
        row = frame.filter((pl.col("arm") == best[0]) & (pl.col("method") == best[1])
                           & (pl.col("label_fraction") == max(ev.label_fractions))
                           & (pl.col("seed") == ev.seeds[0])
                           & (pl.col("metric") == ev.primary_metric))
        if len(row):
            out[f"{prefix}_{ev.primary_metric}"] = float(row["value"][0])
    return out


def record_best_model(run_id: str, model_uri: str, cfg: Any, best: tuple[str, str],
                      results: Any, val_results: Any, limits: str | None = None) -> str | None:
    """After :func:`log_best_model`: the parent run's tag ``sslcore.model_uri`` and metrics
    ``test_<primary>`` / ``val_<primary>`` (the logged fit's scores, so the runs table shows
    them on the parent's row) and, unless ``tracking.register`` is false, a Model Registry
    version (alias ``candidate``); returns ``models:/<name>/<version>`` or None. ``limits``:
    the raw input's limits (``RawInput.limits``), repeated in the version's description."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    scores = _logged_fit_scores(cfg, best, results, val_results)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in scores.items()])
    client.set_tag(run_id, "sslcore.model_uri", model_uri)
    if not cfg.tracking.register_:
        return None
    ev = cfg.evaluation
    name = cfg.tracking.registered_model or f"sslcore-{cfg.vertical}"
    fraction = f"{max(ev.label_fractions):g}"
    tags = {"arm": best[0], "method": best[1], "label_fraction": fraction,
            "seed": str(ev.seeds[0]), "metric": ev.primary_metric,
            "score": f"{scores.get(f'test_{ev.primary_metric}', float('nan')):.6g}",
            "val_score": f"{scores.get(f'val_{ev.primary_metric}', float('nan')):.6g}",
            "vertical": cfg.vertical, "source_run": run_id}
    what = (f"{best[1]} ({best[0]} arm) at label fraction {fraction}, seed {ev.seeds[0]}, "
            f"chosen on validation {ev.primary_metric}; test {ev.primary_metric} "
            f"{tags['score']}. Source run {run_id}.")
    version = register_best_model(model_uri, name, tags,
                                  f"{what} Input limits: {limits}" if limits else what)
    client.set_tag(run_id, "sslcore.registered_model", f"models:/{name}/{version}")
    return f"models:/{name}/{version}"


def registered_name(client, name_or_vertical: str) -> str:
    """A registered model's name from itself or from a vertical (``sslcore-<vertical>``)."""
    from mlflow.exceptions import MlflowException

    for name in dict.fromkeys([name_or_vertical, f"sslcore-{name_or_vertical}"]):
        try:
            client.get_registered_model(name)
            return name
        except MlflowException:
            continue
    known = [m.name for m in client.search_registered_models(max_results=100)]
    raise ConfigError(f"no registered model {name_or_vertical!r} or 'sslcore-{name_or_vertical}'"
                      f" in this store; registered: {known or 'none'} (`sslcore run` registers "
                      "its best model unless --no-register)")


def promote(tracking_uri: str, name_or_vertical: str, version: str,
            alias: str = CHAMPION) -> tuple[str, Any]:
    """Move ``alias`` of a registered model to ``version``; return (name, the ModelVersion)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name = registered_name(client, name_or_vertical)
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException:
        versions = sorted(int(v.version) for v in
                          client.search_model_versions(f"name = '{name}'", max_results=1000))
        raise ConfigError(f"version: {name} has no version {version!r}; versions: "
                          f"{versions or 'none'}") from None
    client.set_registered_model_alias(name, alias, found.version)
    return name, found
