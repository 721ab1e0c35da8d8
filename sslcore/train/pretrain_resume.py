"""Resuming pretraining from its checkpoint: the same data order, model, optimizer, schedule.

Every rank reads the checkpoint; a rank that sees another one (or none) is an error, as is a
checkpoint written with another data order (batch size, seed, pool), since the run could not
continue with the batches an uninterrupted run would see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from sslcore.config import PretrainConfig
from sslcore.contracts import PretextTask
from sslcore.distributed import world_size
from sslcore.errors import CheckpointError
from sslcore.train.checkpoint import load_checkpoint

# Fields that fix which rows form each batch: a resumed run must not change them.
_DATA_ORDER_FIELDS = ("batch_size", "seed", "max_unlabeled")
_STATE_KEYS = ("model", "optimizer", "scheduler", "step", "epoch", "pos", "losses")


def agree(value: int, device: torch.device) -> bool:
    """True when ``value`` is the same on every rank (one all-reduce)."""
    if world_size() == 1 or not dist.is_initialized():
        return True
    t = torch.tensor([value, -value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == -int(t[1])


def resume_state(path: Path, task: PretextTask, opt: torch.optim.Optimizer, sched: Any,
                 cfg: PretrainConfig, n: int, batch: int,
                 device: torch.device) -> dict[str, Any] | None:
    """Load ``path`` into task/optimizer/scheduler on every rank; None when there is none."""
    state = load_checkpoint(path) if path.is_file() else None
    step = -1 if state is None else state.get("step", -2)
    if not isinstance(step, int) or not agree(step, device):
        raise CheckpointError(f"ranks see different checkpoints at {path} (or none); put the "
                              "checkpoint directory on a filesystem every node shares")
    if state is None:
        return None
    missing = sorted(set(_STATE_KEYS) - set(state))
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a pretraining checkpoint (no "
                              f"{', '.join(missing)}); delete it or start without --resume")
    saved = state.get("config", {})
    changed = [f"pretrain.{k} ({saved.get(k)!r} -> {getattr(cfg, k)!r})"
               for k in _DATA_ORDER_FIELDS if saved.get(k) != getattr(cfg, k)]
    if state.get("n_samples") != n:
        changed.append(f"unlabeled pool size ({state.get('n_samples')} -> {n})")
    saved_batch = state.get("global_batch", saved.get("batch_size"))
    if not changed and saved_batch != batch:  # a shrunk batch that now differs (world size)
        changed.append(f"global batch shrunk to fit the pool ({saved_batch} -> {batch})")
    if changed:
        raise CheckpointError(f"checkpoint {path} was written with a different data order: "
                              f"{', '.join(changed)}; resume with the same config and data, or "
                              "start without --resume")
    fused = [g.get("fused") for g in opt.param_groups]
    try:
        task.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this model/optimizer "
                              f"({exc}); delete it or start without --resume") from exc
    for group, flag in zip(opt.param_groups, fused):  # a CUDA run's state resumed on CPU
        group["fused"] = flag
    return state
