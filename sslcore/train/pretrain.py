"""The SSL pretraining loop: one process or torchrun/DDP, exactly resumable, with collapse checks.

Data order does not depend on the number of ranks. Epoch ``e`` shuffles all indices with a
generator seeded by ``(seed, e)``, identical on every rank; global batch ``b`` is
``perm[b*B:(b+1)*B]`` with ``B = pretrain.batch_size`` (the GLOBAL batch: nothing is scaled
automatically, neither the batch nor the learning rate, except that a pool smaller than one
batch trains with the largest batch that fits, see :mod:`sslcore.train.budget`); rank ``r``
takes the ``r``-th contiguous slice of it. So two ranks with ``B/2`` rows each see exactly the
batches one process with ``B`` sees, and for a per-sample-mean loss (DDP averages gradients)
follow the same trajectory. The last incomplete global batch of each epoch is dropped. How
many optimizer steps run is planned in :mod:`sslcore.train.budget` (epochs, a floor, a cap).

All randomness is a pure function of ``(seed, step, rank)``: ``task.loss`` gets a generator
seeded from it, and the global RNG (dropout, ...) is reseeded from it inside a forked RNG
context each step. A checkpoint holds the model, optimizer, scheduler and the position
(step, epoch, batch within the epoch), so a killed run resumed from it continues with the same
next batch, learning rate and random numbers as a run that was never interrupted. A stop
signal (SIGTERM, SIGINT; see :mod:`sslcore.interrupts`) ends the loop after the current step,
the same step on every rank (the flag rides on the step's loss all-reduce), with a checkpoint.

Under DDP every trainable parameter must take part in ``task.loss`` (freeze the others, e.g.
an EMA teacher, with ``requires_grad_(False)``). BatchNorm layers are converted to compute
their statistics over the global batch (``SyncBatchNorm`` on GPUs, ``CrossRankBatchNorm`` on
CPUs), and contrastive losses gather their negatives from every rank
(``sslcore.distributed.gather_with_grad``), so N ranks follow the single-process trajectory.

The backbone and the pretext's own heads are two optimizer groups: with ``backbone.init`` the
backbone trains at a lower rate, after a few heads-only steps (:mod:`sslcore.train.lr_schedule`).
An optional online probe scores the encoder on labeled rows now and then, on rank 0, for
monitoring only (:mod:`sslcore.train.probe`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from sslcore import interrupts
from sslcore.config import PretrainConfig
from sslcore.contracts import PretextTask
from sslcore.data.parquet_pool import ParquetPool
from sslcore.distributed import any_rank, init_distributed, rank, world_size
from sslcore.errors import ConfigError, SSLCoreError
from sslcore.train.budget import StepPlan, plan_pretrain_steps
from sslcore.train.checkpoint import LAST, save_checkpoint
from sslcore.train.collapse import CollapseMonitor, embed
from sslcore.train.lr_schedule import PretrainSchedule, build_optimizer, group_lrs
from sslcore.train.lr_schedule import warmup_cosine  # noqa: F401 (re-exported: its old home)
from sslcore.train.pretrain_resume import resume_state
from sslcore.train.sync_batchnorm import sync_batchnorm
from sslcore.train.unlabeled_pool import prepare_pool

GRAD_CLIP_NORM = 1.0
# Stream tags, so the seeds of the data order, task generator, global RNG and subsample differ.
_PERM, _TASK_RNG, _GLOBAL_RNG, _SUBSAMPLE = 1, 2, 3, 4


@dataclass
class PretrainResult:
    """What a pretraining run did. ``losses`` covers every optimizer step since step 0
    (restored from the checkpoint on resume); each is the mean loss over all ranks.
    ``wall_time`` (seconds) and ``samples_per_second`` cover this call only."""

    steps: int
    epochs_completed: int
    losses: list[float]
    final_checkpoint: Path
    collapse: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    samples_per_second: float = 0.0
    resumed_from_step: int | None = None
    plan: StepPlan | None = None  # the step plan this call followed
    # Online probe scores on rank 0 since step 0 (restored on resume): {"step": s, name: v}.
    probes: list[dict[str, float]] = field(default_factory=list)


class _LossModule(nn.Module):
    """``forward(batch, generator) -> task.loss(batch, generator)``, for DDP to wrap.

    DDP arms its gradient all-reduce inside ``forward``. ``PretextTask.loss`` is an ordinary
    method, so calling it on a DDP-wrapped task would bypass DDP: no gradient sync, and the
    ranks would silently drift apart. Routing the loss through this module's forward fixes that.
    """

    def __init__(self, task: PretextTask) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.task.loss(batch, generator)


def _seed(*parts: int) -> int:
    """A well-mixed 64-bit seed from integers (negative seeds allowed)."""
    entropy = [p & 0xFFFF_FFFF_FFFF_FFFF for p in parts]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled row order of ``epoch``; the same on every rank and every world size."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, _PERM, epoch)))


def _validate(task: PretextTask, cfg: PretrainConfig, world: int) -> None:
    if not isinstance(getattr(task, "backbone", None), nn.Module):
        raise ConfigError(f"pretext task {type(task).__name__} has no .backbone module; a "
                          "PretextTask must expose the encoder it trains as .backbone")
    if not any(p.requires_grad for p in task.parameters()):
        raise ConfigError(f"pretext task {type(task).__name__} has no trainable parameters")
    unit = world * cfg.grad_accum_steps
    if cfg.batch_size % unit:
        raise ConfigError(
            f"pretrain.batch_size: {cfg.batch_size} (the global batch) must be divisible by "
            f"world size {world} x pretrain.grad_accum_steps {cfg.grad_accum_steps} = {unit}; "
            f"use a multiple of {unit}, e.g. {max(unit, cfg.batch_size // unit * unit)}")


def _pool_rows(unlabeled: Any, cap: int | None) -> int:
    """Rows pretraining will see: the pool after ``max_unlabeled`` (Parquet pools ignore it)."""
    if isinstance(unlabeled, ParquetPool):
        return unlabeled.n_rows
    n = len(unlabeled) if getattr(unlabeled, "ndim", 1) else 0
    return n if cap is None else min(n, cap)


def _train_step(model: nn.Module, task: PretextTask, batch: torch.Tensor,
                opt: torch.optim.Optimizer, params: list[nn.Parameter], cfg: PretrainConfig,
                device: torch.device, gen: torch.Generator, step: int, rk: int,
                world: int) -> tuple[float, float, bool]:
    """One optimizer step over ``grad_accum_steps`` micro-batches.

    Returns (global mean loss, grad norm, stop): ``stop`` is True when a stop signal reached
    any rank before this step's loss all-reduce, which carries the flag, so every rank
    decides at the same step without another collective (one process: this process's flag).
    """
    accum = cfg.grad_accum_steps
    micro = batch.shape[0] // accum
    opt.zero_grad(set_to_none=True)
    gen.manual_seed(_seed(cfg.seed, _TASK_RNG, step, rk))
    loss_sum = torch.zeros((), device=device)
    rng_devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):  # reseed without leaking to the caller
        seed = _seed(cfg.seed, _GLOBAL_RNG, step, rk)
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        for i in range(accum):
            # Gradients are all-reduced only on the last micro-batch; earlier ones accumulate.
            last = i == accum - 1
            sync = nullcontext() if last or not isinstance(model, DDP) else model.no_sync()
            with sync:
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                    enabled=cfg.bf16):
                    loss = model(batch[i * micro:(i + 1) * micro], gen)
                (loss.float() / accum).backward()
            loss_sum += loss.detach().float()
    mean = loss_sum / accum
    stop = interrupts.requested() is not None
    if world > 1:
        # The loss and the stop flag in one all-reduce (gloo has no AVG: sum, then divide).
        packed = torch.stack([mean, torch.tensor(float(stop), device=device)])
        dist.all_reduce(packed)
        mean, stop = packed[0] / world, bool(packed[1] > 0)
    value = float(mean)
    if not math.isfinite(value):  # every rank sees the same value, so all raise together
        raise SSLCoreError(f"pretraining diverged at step {step + 1}: the loss is {value}; "
                           "lower pretrain.lr, add pretrain.warmup_steps or set "
                           "pretrain.bf16: false (checkpoints written so far are good)")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM))
    opt.step()
    return value, grad_norm, stop


def pretrain_encoder(task: PretextTask, unlabeled: np.ndarray, cfg: PretrainConfig, *,
                     checkpoint_dir: str | Path, resume: bool = False,
                     device: torch.device | None = None,
                     on_metrics: Callable[[dict[str, float], int], None] | None = None,
                     on_plan: Callable[[StepPlan], None] | None = None,
                     progress: bool = True, from_init: bool = False,
                     probe: Callable[[nn.Module, int], dict[str, float]] | None = None
                     ) -> PretrainResult:
    """Pretrain ``task`` (and so ``task.backbone``) on the unlabeled pool; single process or DDP.

    Under torchrun every rank calls this with the same arguments; the process group is joined
    here (gloo on CPU, NCCL on GPU). AdamW at ``cfg.effective_lr`` (``cfg.lr``, scaled with
    the global batch if ``cfg.lr_scaling`` says so) with linear warmup and cosine decay, bf16
    autocast, gradient accumulation and clipping at norm 1.0. Rank 0 writes
    ``checkpoint_dir/last.pt`` every ``cfg.checkpoint_every`` steps and at the end, calls
    ``on_metrics(metrics, step)`` every ``cfg.log_every`` steps (loss, lr, grad_norm,
    samples_per_second, embedding_std, effective_rank) and warns once if the embeddings collapse.

    The number of optimizer steps is planned by
    :func:`~sslcore.train.budget.plan_pretrain_steps` (``cfg.steps``, or epochs with the
    floor and cap of ``cfg.preset``); rank 0 prints the plan to stderr and passes it to
    ``on_plan`` before the first step.

    Args:
        resume: continue from ``checkpoint_dir/last.pt`` if it exists (every rank reads it, so
            multi-node runs need a shared checkpoint directory).
        device: overrides the device chosen from the torchrun environment.
        from_init: the backbone starts from ``backbone.init`` weights: the backbone trains at
            ``cfg.init_lr_scale`` x the rate, after ``cfg.head_only_steps`` at rate 0 (see
            :mod:`sslcore.train.lr_schedule`); ``lr_backbone`` is logged next to ``lr``.
        probe: ``probe(task.backbone, step) -> scores``, on rank 0 only, every
            ``cfg.probe_every`` steps (None: about 10 times a run) and at the last step; the
            scores go to ``on_metrics`` and into ``PretrainResult.probes`` (monitoring only).

    Raises:
        ConfigError: ``cfg.batch_size`` is not divisible by world size x grad_accum_steps.
        DataError: the pool is too small for 2 rows per rank.
        CheckpointError: the checkpoint to resume from is corrupt or from another config,
            or a checkpoint could not be written (the previous one is left intact).
        RunInterrupted: a stop signal arrived (inside ``sslcore.interrupts.stop_on_signals``):
            the current step finished, every rank stopped after it and rank 0 wrote the
            checkpoint for that step; resuming continues exactly from there.
    """
    world, rk = world_size(), rank()
    _validate(task, cfg, world)  # everything checkable is checked before any work, on all ranks
    parquet = unlabeled if isinstance(unlabeled, ParquetPool) else None
    plan = plan_pretrain_steps(
        cfg, _pool_rows(unlabeled, cfg.max_unlabeled), world, cfg.preset,
        steps_per_epoch=None if parquet is None else
        (lambda b: parquet.steps_per_epoch(world, b // world)))
    # The pool is checked against the batch actually used (smaller than the config's when the
    # pool is); the config itself is what the checkpoint stores and resume compares.
    data = prepare_pool(unlabeled, cfg.model_copy(update={"batch_size": plan.batch_size}),
                        world, _seed(cfg.seed, _SUBSAMPLE))
    dev = init_distributed(device)  # the backend follows the device: NCCL for CUDA, else gloo
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    main, n, big_b = rk == 0, data.shape[0], plan.batch_size
    local_b, per_epoch, total = big_b // world, plan.steps_per_epoch, plan.total
    shard = data.shard(rk, world) if isinstance(data, ParquetPool) else None  # own row groups

    if world > 1:
        sync_batchnorm(task, dev)  # before the optimizer sees the parameters
    task.to(dev).train()
    # GPU-only speedups; none of them changes what a CPU run computes.
    channels_last = dev.type == "cuda" and len(data.shape) == 4
    if channels_last:
        task.to(memory_format=torch.channels_last)  # tensor-core friendly convolutions
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    params = [p for p in task.parameters() if p.requires_grad]
    schedule = PretrainSchedule.plan(cfg, total, from_init)
    opt, sched = build_optimizer(task, cfg, schedule, fused=True if dev.type == "cuda" else None)
    monitor = CollapseMonitor(cfg.collapse_std_threshold, grace_steps=schedule.quiet_steps)
    probe_every = (cfg.probe_every if cfg.probe_every is not None else max(1, total // 10)) \
        if probe is not None and main else 0
    ckpt = Path(checkpoint_dir) / LAST
    step = epoch = pos = 0
    losses: list[float] = []
    probes: list[dict[str, float]] = []
    state = resume_state(ckpt, task, opt, sched, cfg, n, big_b, dev) if resume else None
    if state is not None:
        step, epoch, pos = int(state["step"]), int(state["epoch"]), int(state["pos"])
        losses = [float(x) for x in state["losses"].tolist()]
        monitor.history = [dict(h) for h in state.get("collapse", [])]
        probes = [dict(h) for h in state.get("probes", [])]
    start_step, saved_step = step, (step if state is not None else -1)
    if main:
        print(f"pretraining: {plan.summary()}", file=sys.stderr, flush=True)
        if on_plan is not None:
            on_plan(plan)
    task.on_train_begin(total)
    module = _LossModule(task)
    model: nn.Module = (DDP(module, device_ids=[dev.index] if dev.type == "cuda" else None)
                        if world > 1 else module)
    gen = torch.Generator(device=dev)

    def save() -> None:
        save_checkpoint(ckpt, {
            "format": 1, "model": task.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "step": step, "epoch": epoch, "pos": pos, "total_steps": total,
            "global_batch": big_b,
            "losses": torch.tensor(losses, dtype=torch.float64),
            "collapse": monitor.history, "config": cfg.model_dump(), "n_samples": n,
            "world_size": world, "probes": probes})

    bar = tqdm(total=total, initial=step, desc="pretrain", unit="step", dynamic_ncols=True,
               disable=None if (progress and main) else True, file=sys.stderr)
    t0 = t_log = time.perf_counter()
    step_log, perm, perm_epoch, stop = step, None, -1, False
    # A stop signal (SIGTERM, SIGINT) only sets a flag in here: the current step finishes,
    # every rank stops after the same step, and the checkpoint below is written for it.
    with interrupts.deferred():
        try:
            while step < total and not stop:
                if shard is not None:
                    batch = shard.batch(epoch, pos, local_b, cfg.seed)
                else:
                    if perm_epoch != epoch:
                        perm, perm_epoch = epoch_permutation(n, cfg.seed, epoch), epoch
                    lo = pos * big_b + rk * local_b  # this rank's slice of global batch `pos`
                    batch = data.index_select(0, perm[lo:lo + local_b])
                if dev.type == "cuda":
                    batch = batch.pin_memory().to(dev, non_blocking=True)
                    if channels_last:
                        batch = batch.contiguous(memory_format=torch.channels_last)
                lrs = group_lrs(opt)  # this step's rates; sched.step() moves them on
                # A frozen backbone keeps its pretrained BatchNorm statistics (eval mode).
                frozen = schedule.backbone_frozen(step)
                if task.backbone.training == frozen:
                    task.backbone.train(not frozen)
                loss, grad_norm, stop = _train_step(model, task, batch, opt, params, cfg, dev,
                                                    gen, step, rk, world)
                sched.step()
                task.on_step_end()
                step, pos = step + 1, pos + 1
                if pos == per_epoch:
                    epoch, pos = epoch + 1, 0
                losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if main and (step % cfg.log_every == 0 or step == total) and batch.shape[0] >= 2:
                    now = time.perf_counter()
                    speed = (step - step_log) * big_b / max(now - t_log, 1e-9)
                    metrics = {"loss": loss, "lr": lrs.get("heads", lrs.get("backbone")),
                               "grad_norm": grad_norm, "samples_per_second": speed,
                               **monitor.update(embed(task.backbone, batch, cfg.bf16), step)}
                    if from_init and "backbone" in lrs:
                        metrics["lr_backbone"] = lrs["backbone"]
                    t_log, step_log = now, step
                    if on_metrics is not None:
                        on_metrics(metrics, step)
                if probe_every and (step % probe_every == 0 or step == total):
                    scores = probe(task.backbone, step)  # type: ignore[misc]
                    probes.append({"step": float(step), **scores})
                    if on_metrics is not None and scores:
                        on_metrics(scores, step)
                interrupts.fault_point("pretrain_step", step)  # the crash tests' hook
                if world == 1:  # under torchrun the step's all-reduce carried the flag
                    stop = interrupts.requested() is not None
                if main and step % cfg.checkpoint_every == 0:
                    save()
                    saved_step = step
        finally:
            bar.close()
        # A signal after the last step's all-reduce: agree once more, so no rank stops alone.
        stop = any_rank(stop or interrupts.requested() is not None, dev)
        if main and saved_step != step:
            save()
        if world > 1 and dist.is_initialized():
            dist.barrier()  # no rank returns before rank 0 has written the final checkpoint
        if stop:
            where = (f"at pretraining step {step} of {total}, checkpoint {ckpt} written"
                     if main else f"at pretraining step {step} of {total}")
            raise interrupts.interrupted(where, step=step)
    wall = time.perf_counter() - t0
    return PretrainResult(
        steps=step, epochs_completed=epoch, losses=losses, final_checkpoint=ckpt,
        collapse=list(monitor.history), wall_time=wall,
        samples_per_second=(step - start_step) * big_b / wall if wall > 0 else 0.0,
        resumed_from_step=start_step if state is not None else None, plan=plan, probes=probes)
