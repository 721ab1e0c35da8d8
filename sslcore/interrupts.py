"""Graceful stops on SIGTERM and SIGINT, and the fault-injection hook of the crash tests.

Schedulers preempt with SIGTERM (then SIGKILL after a grace period); a user stops with Ctrl-C.
While :func:`stop_on_signals` is active (``sslcore.compare`` and ``sslcore.pretrain`` enter
it in the main thread), the first SIGTERM or SIGINT does not kill the process:

- inside a :func:`deferred` section (the pretraining loop, logging one child run) it only
  sets a flag; pretraining polls :func:`requested` after every optimizer step (under torchrun
  the flag rides on the step's loss all-reduce, so every rank stops after the same step),
  writes a checkpoint and raises :class:`~sslcore.errors.RunInterrupted`; a section that does
  not poll raises it when it ends;
- anywhere else it raises :class:`~sslcore.errors.RunInterrupted` at once (loading data, a
  fit of the sweep: nothing there is worth saving, a fit is redone on ``--resume``).

:mod:`sslcore.tracking` marks every open MLflow run KILLED on the way out, and the CLI exits
with ``128 + signal``. A second SIGTERM while stopping is ignored (torchrun may repeat it); a
second Ctrl-C aborts at once (KeyboardInterrupt).

Test hook (inert unless the variable is set): ``SSLCORE_FAULT=<point>[:<n>][:<action>]`` makes
the process signal itself when it reaches ``point`` (the ``n``-th time, for points that count):
``load_data``, ``pretrain_step`` (after optimizer step n), ``child`` (after the n-th child
run of the sweep is logged), ``child_logging`` (inside the n-th child run's logging, leaving it
RUNNING), ``artifacts`` (between the parent run's files and its model). ``action`` is ``kill``
(SIGKILL, the default), ``term`` (SIGTERM), ``int`` (SIGINT) or ``pause`` (SIGSTOP: the
test then signals the stopped process from outside and continues it with SIGCONT, a real
external signal at a known step). ``SSLCORE_FAULT_RANK=r``
limits it to one torchrun rank; it never fires after a torchrun restart.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sslcore.errors import RunInterrupted

RESUME_ENV = "SSLCORE_RESUME_COMMAND"  # set by the CLI's torchrun launcher for its workers
FAULT_ENV, FAULT_RANK_ENV = "SSLCORE_FAULT", "SSLCORE_FAULT_RANK"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ACTIONS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT,
            "pause": signal.SIGSTOP}


class _State:
    received: int | None = None  # the first stop signal of the active stop_on_signals
    raised = False  # RunInterrupted was raised for it (raise once)
    deferring = 0  # depth of deferred() sections
    phase = ""  # where the run is, for the message of an immediate stop
    resume_command: str | None = None  # how to continue, for messages and MLflow tags


def requested() -> int | None:
    """The stop signal received so far (SIGTERM, SIGINT), or None."""
    return _State.received


def resume_command() -> str | None:
    """The command that continues this run (the CLI's, with ``--resume``), if known."""
    return os.environ.get(RESUME_ENV) or _State.resume_command


def set_phase(text: str) -> None:
    """Say where the run is ("during the few-label sweep"), for an immediate stop's message."""
    _State.phase = text


def interrupted(where: str, *, step: int | None = None) -> RunInterrupted:
    """The RunInterrupted for the received signal (raise it); marks the stop as raised."""
    _State.raised = True
    if _State.received is None:  # under torchrun the signal reached another rank
        where += " (the signal reached another rank)"
    return RunInterrupted(_State.received or signal.SIGTERM, where, step=step,
                          resume_command=resume_command())


def check() -> None:
    """Raise RunInterrupted here if a stop signal arrived and was not raised yet."""
    if _State.received is not None and not _State.raised:
        raise interrupted(_State.phase or "at a safe point")


def _note(text: str) -> None:
    try:  # os.write, not print: a handler may run while the main thread is inside a print
        os.write(2, f"\nsslcore: {text}\n".encode())
    except OSError:
        pass


def _handle(signum: int, frame: object) -> None:
    if _State.received is not None or _State.raised:
        if signum == signal.SIGINT == _State.received:
            raise KeyboardInterrupt  # Ctrl-C twice: abort now
        # Already stopping: torchrun may repeat the signal, or send it to a rank that
        # learnt of the stop from another rank while it records the stop in MLflow.
        _State.received = _State.received or signum
        return
    _State.received = signum
    name = signal.Signals(signum).name
    again = "; Ctrl-C again aborts at once" if signum == signal.SIGINT else ""
    if _State.deferring:
        _note(f"{name} received: stopping after the current step, with a checkpoint{again}")
        return
    _note(f"{name} received: stopping{again}")
    raise interrupted(_State.phase or "before any checkpoint")


@contextmanager
def stop_on_signals(resume: str | None = None) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into graceful stops inside the block (main thread only).

    ``resume`` is the command that continues the run, used when the CLI gave none. The
    previous handlers and state are restored afterwards, so nested or repeated calls (a
    notebook running several comparisons) start clean.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only: nothing to install
        return
    saved = (_State.received, _State.raised, _State.deferring, _State.phase,
             _State.resume_command)
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    _State.received, _State.raised, _State.deferring, _State.phase = None, False, 0, ""
    _State.resume_command = _State.resume_command or resume
    for s in STOP_SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        (_State.received, _State.raised, _State.deferring, _State.phase,
         _State.resume_command) = saved


@contextmanager
def resume_hint(command: str | None) -> Iterator[None]:
    """The command that continues the run, for the stop messages and tags (the CLI's)."""
    saved = _State.resume_command
    _State.resume_command = command
    try:
        yield
    finally:
        _State.resume_command = saved


@contextmanager
def deferred(where: str = "") -> Iterator[None]:
    """A section a stop signal must not cut: inside, the signal only sets the flag.

    Code inside may poll :func:`requested` and stop on its own (pretraining does, raising its
    own RunInterrupted); otherwise the stop is raised when the section ends.
    """
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if _State.deferring == 0 and _State.received is not None and not _State.raised:
        raise interrupted(where or _State.phase or "at a safe point")


@contextmanager
def shielded() -> Iterator[None]:
    """Cleanup after a failure (ending MLflow runs FAILED or KILLED, leaving the process
    group): a stop signal inside only sets the flag, and nothing is raised at the end, so
    the error on its way out is the one reported (under torchrun a restart SIGTERMs the
    surviving ranks while they fail)."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1


def fault_point(point: str, index: int | None = None) -> None:
    """The test hook: signal this process at ``point`` if ``SSLCORE_FAULT`` names it."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, rest = spec.partition(":")
    count, _, action = rest.partition(":")
    if name != point or (count and index is not None and int(count) != index):
        return
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0:
        return  # a restarted torchrun job must be able to finish
    only = os.environ.get(FAULT_RANK_ENV)
    if only and int(only) != int(os.environ.get("RANK", "0") or 0):
        return
    os.kill(os.getpid(), _ACTIONS[action or "kill"])
