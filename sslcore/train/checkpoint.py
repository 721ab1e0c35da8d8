"""Checkpoints: atomic writes, safe loads, and finding the latest one.

A checkpoint is a dict of tensors and primitive containers (dict, list, tuple, str, int, float,
bool, None), so it loads with ``torch.load(weights_only=True)``: loading never runs code from
the file. Writes go to a temporary file in the same directory, are flushed and fsynced, then
``os.replace``d onto the target, so a crash or a kill mid-write leaves the previous checkpoint
intact and never a half-written one under the real name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sslcore.errors import CheckpointError

LAST = "last.pt"  # the training loop keeps only the latest checkpoint, under this name


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    Raises:
        CheckpointError: the file could not be written (disk full, permissions, an object
            that cannot be serialised); the previous file at ``path``, if any, is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target so os.replace is a rename on one filesystem (atomic);
    # the *.pt.tmp suffix is git-ignored.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".pt.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is readable like any file
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise CheckpointError(f"could not write checkpoint {path}: {type(exc).__name__}: "
                                  f"{exc}; check free disk space and write permission on "
                                  f"{path.parent}") from exc
        raise  # KeyboardInterrupt and friends propagate unchanged, after cleaning up
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable across a power loss; not supported everywhere.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint onto the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or not a checkpoint dict;
            the message names the file and says how to recover.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path, or start "
                              "without --resume to train from scratch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        # torch's own text suggests weights_only=False, which would be unsafe advice here.
        raise CheckpointError(
            f"checkpoint {path} is truncated, corrupt or not a checkpoint "
            f"({type(exc).__name__}); delete it to start from scratch, or start without "
            "--resume") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a "
                              "checkpoint dict; delete it or start without --resume")
    return state


def latest_checkpoint(directory: str | Path) -> Path | None:
    """``directory/last.pt`` if it exists, else the newest ``*.pt`` in it, else None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    last = directory / LAST
    if last.is_file():
        return last
    # Temporary files start with "." and end in .pt.tmp, so the glob never returns one.
    found = [p for p in directory.glob("*.pt") if p.is_file() and not p.name.startswith(".")]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None
