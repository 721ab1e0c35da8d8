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


class RunInterrupted(SSLCoreError):
    """A stop signal (SIGTERM, SIGINT) ended the run at a safe point.

    Pretraining finished its current optimizer step and wrote a checkpoint; every open MLflow
    run was marked KILLED with the tags ``sslcore.stop_reason`` and ``sslcore.resume_command``.
    ``signal`` is the signal number, ``exit_code`` is ``128 + signal`` (what the CLI exits
    with), ``resume_command`` continues the run, ``killed_runs`` lists the MLflow run ids
    marked KILLED and ``step`` is the pretraining step it stopped at (None outside pretraining).
    """

    def __init__(self, signum: int, where: str, *, step: int | None = None,
                 resume_command: str | None = None) -> None:
        self.signal, self.where, self.step = signum, where, step
        self.resume_command = resume_command
        self.killed_runs: list[str] = []
        super().__init__(self._text())

    @property
    def signal_name(self) -> str:
        import signal

        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signal

    @property
    def reason(self) -> str:
        """What stopped the run and where, for the ``sslcore.stop_reason`` tag."""
        return f"interrupted: {self.signal_name} {self.where}"

    def _text(self) -> str:
        resume = f"; resume with: {self.resume_command}" if self.resume_command else ""
        return f"stopped by {self.signal_name} {self.where}{resume}"

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self):  # picklable with its keyword fields
        return (_rebuild_interrupted, (self.signal, self.where, self.step, self.resume_command))


def _rebuild_interrupted(signum: int, where: str, step: int | None,
                         resume_command: str | None) -> RunInterrupted:
    return RunInterrupted(signum, where, step=step, resume_command=resume_command)
