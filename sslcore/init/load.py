"""``load_init``: apply a ``backbone.init`` source to a freshly built backbone, with a report.

The one helper every backbone factory calls (built-ins and plugins, through
``sslcore.sdk.load_init``)::

    def __init__(self, params, *, input_shape, init=None):
        ...build the modules...
        if init is not None:
            load_init(self, init)      # sets self.init_report; raises before any training

Steps: resolve the source to local files (:mod:`sslcore.init.sources`), refuse a declared
architecture other than the backbone's, read the tensors, let the backbone's library adapt
them (timm: :mod:`~sslcore.init.timm_weights`; transformers: :mod:`~sslcore.init.hf`), load
what matches by name and shape, and fail unless ``min_loaded`` of the parameters came from the
source.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from sslcore.init.errors import InitIncompleteError, InitMismatchError
from sslcore.init.export_format import class_name, native_part, read_export_tensors
from sslcore.init.files import file_record, read_state_dict
from sslcore.init.report import InitReport, apply_state_dict
from sslcore.init.sources import Source, resolve

logger = logging.getLogger("sslcore.init")

_BACKBONES = {"timm": "timm, resnet18 or vit_tiny", "transformers": "hf_vision (images) or "
              "patchtst (sensor_maintenance)"}


def as_init_config(init: Any) -> Any:
    """A ``backbone.init`` value (a string, a mapping or an InitConfig) as an InitConfig."""
    from sslcore.config import InitConfig

    if isinstance(init, InitConfig):
        return init
    if isinstance(init, str):
        return InitConfig(source=init)
    if isinstance(init, Mapping):
        return InitConfig.model_validate(dict(init))
    return InitConfig.model_validate(init, from_attributes=True)


def resolve_init(init: Any, input_shape: tuple[int, ...] | None = None) -> Source:
    """Resolve ``init`` to local files once, e.g. to read a Hugging Face config before
    building the model; pass the result to :func:`load_init` as ``source``.
    ``input_shape``: the backbone's per-sample shape (see :func:`sslcore.init.sources.resolve`)."""
    cfg = as_init_config(init)
    return resolve(cfg.source, cfg.file, input_shape)


def _check_architecture(src: Source, backbone: nn.Module, model: nn.Module | None,
                        library: str | None) -> None:
    """Refuse a source that declares another architecture than the backbone's."""
    kind = type(backbone).__name__
    if src.kind in ("timm", "transformers") and library != src.kind:
        what = f" ({src.architecture})" if src.architecture else ""
        raise InitMismatchError(
            f"backbone.init: {src.text} holds {src.kind} weights{what} but the backbone is "
            f"{'a ' + library if library else 'an sslcore'} {kind}; use a {src.kind} backbone "
            f"({_BACKBONES[src.kind]})")
    if src.kind == "sslcore":
        if src.meta.get("class") not in (None, class_name(backbone)):
            raise InitMismatchError(
                f"backbone.init: {src.text} is an export of backbone "
                f"{src.meta.get('backbone')!r} ({src.meta.get('class')}), not of a {kind}; set "
                f"backbone.name: {src.meta.get('backbone')} with its params "
                f"{src.meta.get('params')}")
    declared = src.architecture
    if declared is None or model is None or src.kind == "sslcore" and library is None:
        return
    mine = (model.pretrained_cfg.get("architecture") if library == "timm"
            else getattr(getattr(model, "config", None), "model_type", None))
    if declared != mine:
        raise InitMismatchError(
            f"backbone.init: {src.text} is a {declared!r} model but the backbone is "
            f"{mine!r}; use the same architecture (e.g. backbone.params.model_name: "
            f"{declared}) or another init")


def _input_shape(backbone: nn.Module) -> tuple[int, ...] | None:
    shape = getattr(backbone, "input_shape", None)
    if shape is None and hasattr(backbone, "n_channels") and hasattr(backbone, "length"):
        shape = (backbone.n_channels, backbone.length)  # sequence backbones
    return tuple(int(d) for d in shape) if shape is not None else None


def _named(text: str) -> Source:
    """What a ``timm:`` or ``hf:`` name declares before anything is read."""
    if text.startswith("timm:"):
        import timm

        arch = text.removeprefix("timm:").partition(".")[0]
        if timm.is_model(arch):  # a misspelled name is resolve()'s error, with close names
            return Source(text, "timm", meta={"architecture": arch}, library="timm")
    if text.startswith("hf:"):
        return Source(text, "transformers", library="transformers")
    return Source(text, "state_dict")


def _strip_task_prefix(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                     list[str]]:
    """An sslcore pretraining checkpoint holds the whole pretext task: keep ``backbone.*``."""
    if any(k.startswith("backbone.") for k in tensors):
        kept = {k.removeprefix("backbone."): v for k, v in tensors.items()
                if k.startswith("backbone.")}
        return kept, sorted(k for k in tensors if not k.startswith("backbone."))
    return tensors, []


def _split(tensors: dict[str, torch.Tensor], backbone: nn.Module, prefix: str,
           model: nn.Module | None, force_full: bool) -> tuple[dict[str, torch.Tensor],
                                                               dict[str, torch.Tensor], bool]:
    """``(library-model tensors, other backbone tensors, keyed like the whole backbone?)``."""
    if not prefix or model is None:
        return {}, tensors, True
    full_keys, native_keys = backbone.state_dict(), model.state_dict()
    full_hits = sum(k in full_keys for k in tensors)
    native_hits = sum(k in native_keys for k in tensors)
    if force_full or full_hits > native_hits:
        native = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return native, {k: v for k, v in tensors.items() if not k.startswith(prefix)}, True
    return tensors, {}, False


def load_init(backbone: nn.Module, init: Any, *, source: Source | None = None) -> InitReport:
    """Load ``init``'s weights into ``backbone`` and return (and set
    ``backbone.init_report``) the loading report; print its summary on rank 0.

    Args:
        backbone: a freshly built backbone. A backbone wrapping a library model names it
            with ``native_library = "timm"`` or ``"transformers"`` and keeps it as
            ``backbone.model``: weights in that library's names are adapted by it (input
            channels, position embeddings, heads dropped).
        init: ``backbone.init``: a source string, a mapping or an InitConfig.
        source: ``resolve_init(init)``, when the caller resolved it already.

    Raises:
        InitSourceError: the source cannot be found or reached.
        InitFileError: a file is truncated or corrupt.
        InitMismatchError: the source is for another architecture.
        InitIncompleteError: less than ``init.min_loaded`` of the parameters were loaded.
    """
    cfg = as_init_config(init)
    prefix, model, library = native_part(backbone)
    if source is None:  # a named model for another library or architecture: fail before I/O
        _check_architecture(_named(cfg.source), backbone, model, library)
    src = source or resolve(cfg.source, cfg.file, _input_shape(backbone))
    _check_architecture(src, backbone, model, library)
    report = InitReport(source=cfg.source, kind=src.kind, min_loaded=cfg.min_loaded)
    dropped: list[str] = []
    if src.kind == "transformers" or (src.kind == "sslcore" and src.library == "transformers"):
        from sslcore.init.hf import load_hf_tensors

        native, dropped = load_hf_tensors(src)
        extra = read_export_tensors(src) if src.kind == "sslcore" else {}
        tensors = {prefix + k: v for k, v in native.items()} | extra
    elif src.kind == "sslcore":
        tensors = read_export_tensors(src)
    else:
        tensors, dropped = _strip_task_prefix(read_state_dict(src.path))
    report.files = [file_record(p) for p in src.files]
    native, extra, full = _split(tensors, backbone, prefix, model,
                                 force_full=src.kind == "sslcore" or src.library == "transformers")
    if library == "timm" and native:
        from sslcore.init.timm_weights import adapt_to_timm

        in_chans = int(getattr(backbone, "input_shape", (3,))[0])
        native, adapted, gone = adapt_to_timm(model, native, in_chans,
                                              src.meta if src.kind == "timm" else None)
        report.adapted += adapted
        dropped += [prefix + k if full else k for k in gone]
    elif library == "transformers" and native:
        from sslcore.init.hf import adapt_to_hf

        native, adapted = adapt_to_hf(model, native)
        report.adapted += adapted
    report.dropped = sorted(dropped)
    state = {prefix + k: v for k, v in native.items()} | extra
    # An export or checkpoint of an sslcore backbone describes all of it; library weights
    # describe the library model only (a pooling head of sslcore's stays random).
    scope = "" if src.kind == "sslcore" or (full and src.kind == "state_dict") else prefix
    apply_state_dict(backbone, state, report, scope_prefix=scope)
    if report.fraction < cfg.min_loaded:
        raise InitIncompleteError(
            f"{report.summary()}\nbackbone.init: only {report.fraction:.1%} of the "
            f"{type(backbone).__name__}'s parameters came from {cfg.source} (min_loaded "
            f"{cfg.min_loaded:g}): it is probably for another architecture or input size. "
            "Check the backbone and its params against the source, or lower "
            "backbone.init.min_loaded to accept a partial load", report)
    backbone.init_report = report
    _announce(report)
    return report


# False while a caller loads the same weights a second time (the transfer arm's encoder), so
# the report is printed once per run.
_ANNOUNCE: ContextVar[bool] = ContextVar("sslcore_init_announce", default=True)


@contextmanager
def quiet_reports() -> Iterator[None]:
    """Within this block, loading reports are logged at DEBUG, not printed."""
    token = _ANNOUNCE.set(False)
    try:
        yield
    finally:
        _ANNOUNCE.reset(token)


def _announce(report: InitReport) -> None:
    if not _ANNOUNCE.get():
        logger.debug(report.summary())
        return
    logger.info(report.summary())
    if int(os.environ.get("RANK", "0")) == 0:
        print(report.summary(), file=sys.stderr, flush=True)
