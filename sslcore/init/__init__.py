"""Initialise a backbone from a pretrained model: ``backbone.init`` in a config.

Sources (one file per kind in this package): a local state dict or model directory
(:mod:`~sslcore.init.sources`), ``timm:<name>.<tag>`` (:mod:`~sslcore.init.timm_weights`),
``hf:<org>/<model>`` (:mod:`~sslcore.init.hf`), an MLflow run or model
(:mod:`~sslcore.init.mlflow_source`), and sslcore's own exports
(:mod:`~sslcore.init.export_format`, written by ``sslcore export``).

Example (a config)::

    backbone:
      name: resnet18
      init: timm:resnet18.a1_in1k          # or {source: ..., file: ..., min_loaded: 0.9}

Example (a backbone factory, built-in or plugin, through ``sslcore.sdk``)::

    from sslcore.sdk import load_init

    class MyBackbone(Backbone):
        def __init__(self, params, *, input_shape, init=None):
            ...
            if init is not None:
                load_init(self, init)           # self.init_report: the loading report

Every load produces an :class:`InitReport` (``backbone.init_report``; ``to_json()`` is the run's
``init_report.json``); less than ``min_loaded`` of the parameters loaded is an error, never a
silent partial load.
"""

from __future__ import annotations

from typing import Any

from sslcore.init.errors import (
    InitError,
    InitFileError,
    InitIncompleteError,
    InitMismatchError,
    InitSourceError,
)
from sslcore.init.load import as_init_config, load_init, resolve_init
from sslcore.init.report import InitReport
from sslcore.init.sources import Source

__all__ = ["InitError", "InitFileError", "InitIncompleteError", "InitMismatchError",
           "InitReport", "InitSourceError", "Source", "accepts_init", "as_init_config",
           "load_init", "resolve_init"]


def accepts_init(factory: Any) -> bool:
    """True when a backbone factory takes ``init=`` (an ``init`` parameter or ``**kwargs``)."""
    from sslcore.config_checks import _accepts_init

    return _accepts_init(factory)
