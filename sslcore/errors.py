"""Errors raised by sslcore. The API raises these; only the CLI maps them to exit code 2.

Every message says what went wrong, where (file, row, column, config field or plugin) and how
to fix it.
"""

from __future__ import annotations


class SSLCoreError(Exception):
    """Base class of every error sslcore raises on purpose."""


class ConfigError(SSLCoreError):
    """A config file or field is invalid; the message names the dotted path of the field."""


class DataError(SSLCoreError):
    """Input data is unusable; the message names the file, row, column or array."""


class PluginLoadError(SSLCoreError):
    """A plugin could not be imported or registered; the message names the plugin and version."""


class UnknownComponentError(SSLCoreError, KeyError):
    """A component name is not registered; the message lists close matches and installed plugins."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(SSLCoreError):
    """Two modules registered the same name in one registry; the message names both."""


class CheckpointError(SSLCoreError):
    """A checkpoint file is missing, truncated or does not match the model."""
