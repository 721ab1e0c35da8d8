"""Errors of ``backbone.init``: each names the source and says how to fix it.

All are :class:`~sslcore.errors.CheckpointError` subclasses (a pretrained model is a checkpoint
someone else wrote), so code that handles a bad checkpoint handles a bad init too.
"""

from __future__ import annotations

from typing import Any

from sslcore.errors import CheckpointError


class InitError(CheckpointError):
    """``backbone.init`` could not be applied."""


class InitSourceError(InitError):
    """The source does not exist or cannot be reached: a missing path, an unknown timm or
    Hugging Face name, a model that is neither cached nor downloadable (offline), an MLflow run
    without the artifact."""


class InitFileError(InitError):
    """A weights file is truncated, corrupt or holds no state dict."""


class InitMismatchError(InitError):
    """The source is for another architecture than the backbone (another timm model, another
    Hugging Face model type, another sslcore backbone), or its tensors cannot be adapted."""


class InitIncompleteError(InitMismatchError):
    """Less than ``min_loaded`` of the backbone's parameters came from the source; ``report``
    holds the :class:`~sslcore.init.report.InitReport`."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report
