"""sslcore: self-supervised pretraining for enterprise verticals, compared honestly.

Public API::

    import sslcore
    report = sslcore.compare("fraud_transactions", quick=True)
    print(report.table)
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("sslcore")

from sslcore.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    DuplicateComponentError,
    PluginLoadError,
    RunInterrupted,
    SSLCoreError,
    UnknownComponentError,
)
from sslcore.registry import NoParams, Registry  # noqa: E402

# Heavy names (torch, MLflow) load on first use so `sslcore plugins` and every torchrun rank's
# plugin import stay fast.
_LAZY = {
    "Report": "sslcore.api", "compare": "sslcore.api", "finetune": "sslcore.api",
    "load_model": "sslcore.api", "pretrain": "sslcore.api",
    "Backbone": "sslcore.contracts", "FitContext": "sslcore.contracts",
    "Method": "sslcore.contracts", "PretextTask": "sslcore.contracts",
    "VerticalRecipe": "sslcore.contracts",
    "DataCard": "sslcore.data.ssl_data", "SSLData": "sslcore.data.ssl_data",
    "load_registries": "sslcore.plugins",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sslcore' has no attribute {name!r}")


__all__ = [
    "Backbone",
    "CheckpointError",
    "ConfigError",
    "DataCard",
    "DataError",
    "DuplicateComponentError",
    "FitContext",
    "Method",
    "NoParams",
    "PluginLoadError",
    "PretextTask",
    "Registry",
    "Report",
    "RunInterrupted",
    "SSLCoreError",
    "SSLData",
    "UnknownComponentError",
    "VerticalRecipe",
    "__version__",
    "compare",
    "finetune",
    "hookimpl",
    "load_model",
    "load_registries",
    "pretrain",
]
