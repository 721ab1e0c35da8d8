"""What a ``backbone.init`` source string names, resolved to local files before any loading.

- a local file (``.safetensors``, ``.pt``): a state dict;
- a local directory: an sslcore export (``config.json`` with an ``sslcore`` block, written by
  ``sslcore export``), a Hugging Face model directory (``config.json`` with ``model_type``), a
  timm directory (``config.json`` with ``architecture``, timm's ``push_to_hf_hub`` layout), or a
  folder with one weights file (an sslcore checkpoint directory holds ``last.pt``);
- ``timm:<name>.<tag>``: timm's pretrained weights, from ``init.file`` or the Hugging Face
  cache (:mod:`sslcore.init.timm_weights`);
- ``hf:<org>/<model>``: a Hugging Face model, through transformers (:mod:`sslcore.init.hf`);
- ``runs:/...``, ``models:/...``: an MLflow run or model (:mod:`sslcore.init.mlflow_source`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslcore.init.errors import InitFileError, InitSourceError
from sslcore.init.files import WEIGHT_SUFFIXES, weight_files

EXPORT_EXTRA = "sslcore_extra.safetensors"
MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass
class Source:
    """A resolved ``backbone.init`` source.

    Attributes:
        text: the source as configured.
        kind: ``state_dict``, ``timm``, ``transformers`` or ``sslcore``.
        path: the local file (state dict, timm weights) or directory (Hugging Face, export).
        hub_id: the Hugging Face repository of an ``hf:`` source that is not a directory.
        files: the files whose SHA-256 the report records.
        meta: timm's ``pretrained_cfg`` (timm), the ``config.json`` (transformers), the export's
            ``sslcore`` block (sslcore).
        library: the library of the weights' naming: ``timm``, ``transformers`` or None.
    """

    text: str
    kind: str
    path: Path | None = None
    hub_id: str | None = None
    files: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    library: str | None = None
    keep: Any = None  # a TemporaryDirectory holding downloaded files, alive with the source

    @property
    def architecture(self) -> str | None:
        """The architecture the source declares: a timm model name, a Hugging Face
        ``model_type``, or an export's; None for a bare state dict."""
        if self.kind == "timm":
            return self.meta.get("architecture")
        if self.kind == "transformers":
            return self.meta.get("model_type")
        if self.kind == "sslcore":
            return self.meta.get("architecture")
        return None


    def transformers_config(self) -> Any:
        """The transformers config (``PretrainedConfig``) this source's weights were saved
        with: a Hugging Face model's, or an sslcore export's of a transformers backbone; None
        for other sources. A backbone builds its model from it, then calls ``load_init``."""
        from sslcore.init.hf import source_config

        return source_config(self)


def offline() -> bool:
    """True when hubs must not be contacted (``HF_HUB_OFFLINE``; sslcore sets it by default)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def hf_cache_dir() -> str:
    """The Hugging Face hub cache, read now (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return os.path.join(home, "hub")


def read_config(directory: Path) -> dict[str, Any] | None:
    """``directory/config.json`` as a mapping, None when absent."""
    path = directory / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InitFileError(f"backbone.init: {path} is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise InitFileError(f"backbone.init: {path} holds no JSON object")
    return cfg


def resolve_local(text: str, path: Path | None = None) -> Source:
    """A local file or directory (see the module docstring).

    Raises:
        InitSourceError: it does not exist, or a directory holds nothing loadable.
    """
    path = Path(text).expanduser() if path is None else path
    if not path.exists():
        raise InitSourceError(
            f"backbone.init: {text!r} is not an existing file or directory, nor "
            "timm:<name>.<tag>, hf:<org>/<model> or an MLflow URI (runs:/<run id>/<path>, "
            "models:/<name>/<version>)")
    if path.is_file():
        return Source(text, "state_dict", path=path, files=[path])
    cfg = read_config(path)
    if cfg is not None and isinstance(cfg.get("sslcore"), dict):
        meta = cfg["sslcore"]
        files = weight_files(path) + ([path / EXPORT_EXTRA] if (path / EXPORT_EXTRA).is_file()
                                      else [])
        return Source(text, "sslcore", path=path, files=[path / "config.json", *files],
                      meta=meta, library=meta.get("library"))
    if cfg is not None and "model_type" in cfg:
        return Source(text, "transformers", path=path,
                      files=[path / "config.json", *weight_files(path)], meta=cfg,
                      library="transformers")
    weights = weight_files(path)
    if cfg is not None and "architecture" in cfg and weights:  # timm's hub layout
        meta = dict(cfg.get("pretrained_cfg", {})) | {"architecture": cfg["architecture"]}
        return Source(text, "timm", path=weights[0], files=weights, meta=meta, library="timm")
    if (path / "last.pt").is_file():  # an sslcore checkpoint directory
        return Source(text, "state_dict", path=path / "last.pt", files=[path / "last.pt"])
    if len(weights) == 1:
        return Source(text, "state_dict", path=weights[0], files=weights)
    raise InitSourceError(
        f"backbone.init: directory {path} holds no config.json and "
        f"{'several' if weights else 'no'} weights files ({', '.join(WEIGHT_SUFFIXES)}); "
        "point init at the file itself, at a Hugging Face model directory, or at an "
        "`sslcore export` directory")


def resolve(source: str, file: str | None = None,
            input_shape: tuple[int, ...] | None = None) -> Source:
    """Resolve a ``backbone.init`` source to local files (downloading only when allowed).

    ``input_shape`` (the backbone's) rebuilds the encoder of an MLflow run that did not record
    its own (:func:`sslcore.export.export`).

    Raises:
        InitSourceError: unknown names, missing paths, offline without a cache.
        InitFileError: a ``config.json`` that is not JSON.
    """
    text = source.strip()
    if text.startswith("timm:"):
        from sslcore.init.timm_weights import resolve_timm

        return resolve_timm(text, file)
    if text.startswith("hf:"):
        from sslcore.init.hf import resolve_hf

        return resolve_hf(text, file)
    if text.startswith(MLFLOW_SCHEMES):
        from sslcore.init.mlflow_source import resolve_mlflow

        return resolve_mlflow(text, input_shape)
    if file is not None:
        raise InitSourceError("backbone.init.file is for timm: and hf: sources; put the path "
                              "in backbone.init.source")
    return resolve_local(text)
