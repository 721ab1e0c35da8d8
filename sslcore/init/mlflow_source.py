"""MLflow URIs as ``backbone.init`` sources: another run's (or team's) sslcore encoder.

- ``runs:/<run id>/<path>`` or ``models:/<name>/<version>``: the artifact is downloaded and
  must hold an sslcore export (``sslcore export``'s directory, logged with
  ``mlflow.log_artifacts(dir, "encoder")`` or registered as a model);
- ``runs:/<run id>``: a pretraining run (``sslcore.kind=pretrain``) or an experiment's parent
  run: its encoder is exported from the logged checkpoint first (:func:`sslcore.export.export`;
  a run that did not record its input shape is rebuilt at the new backbone's).

The tracking store is the one in use (``mlflow.set_tracking_uri``, ``MLFLOW_TRACKING_URI``),
else sslcore's default ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sslcore.errors import CheckpointError, ConfigError
from sslcore.init.errors import InitSourceError
from sslcore.init.sources import Source, resolve_local


def current_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a run exports its store there while it lasts), else a
    store set in this process, else sslcore's default. The environment comes first because
    ``mlflow.set_tracking_uri`` outlives the run that called it."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    from sslcore.tracking import resolve_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return mlflow.get_tracking_uri() if is_tracking_uri_set() else resolve_uri(None)


def resolve_mlflow(text: str, input_shape: tuple[int, ...] | None = None) -> Source:
    """Download ``text`` into a temporary directory (kept alive by the Source) and resolve
    the sslcore export in it.

    Raises:
        InitSourceError: the run, model or artifact does not exist in the tracking store, or
            holds no sslcore export.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from sslcore.init.export_format import find_export

    uri = current_tracking_uri()
    tmp = tempfile.TemporaryDirectory(prefix="sslcore-init-")
    whole_run = text.startswith("runs:/") and "/" not in text.removeprefix("runs:/").strip("/")
    try:
        if whole_run:
            from sslcore.export import export

            local = export(text, Path(tmp.name) / "export", tracking_uri=uri,
                           fallback_input_shape=input_shape)
        else:
            local = Path(download_artifacts(artifact_uri=text, dst_path=tmp.name,
                                            tracking_uri=uri))
    except (ConfigError, CheckpointError) as exc:  # a run whose encoder cannot be exported
        tmp.cleanup()
        raise InitSourceError(f"backbone.init: {text}: {exc}") from None
    except MlflowException as exc:
        tmp.cleanup()
        raise InitSourceError(f"backbone.init: {text} could not be read from the MLflow "
                              f"store {uri} ({exc.message if hasattr(exc, 'message') else exc})"
                              "; check the run id or model name and MLFLOW_TRACKING_URI / "
                              "--tracking-uri") from None
    except BaseException:
        tmp.cleanup()
        raise
    found = find_export(local)
    if found is None:
        tmp.cleanup()
        raise InitSourceError(
            f"backbone.init: {text} holds no sslcore export (a config.json with an sslcore "
            "block); export the encoder with `sslcore export runs:/<pretrain run id> DIR` and "
            "log DIR (mlflow.log_artifacts(DIR, 'encoder')), or use runs:/<pretrain run id> "
            "directly")
    src = resolve_local(text, found)
    src.keep = tmp
    return src
