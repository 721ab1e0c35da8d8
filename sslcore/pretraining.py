"""Run pretraining inside its MLflow child run: the step plan, metrics, stop reason, checkpoint.

The training itself (``sslcore.train``) knows nothing of MLflow; this module connects it to
the one writer, :mod:`sslcore.tracking`, on rank 0 only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import torch

from sslcore import tracking
from sslcore.config import ExperimentConfig
from sslcore.contracts import Backbone
from sslcore.data.ssl_data import SSLData
from sslcore.train.build import Built


def run_pretraining(cfg: ExperimentConfig, built: Built, data: SSLData, ckpt_dir: Path, *,
                    resume: bool, device: torch.device, progress: bool,
                    log_to_mlflow: bool, reopen_run_id: str | None = None) -> Backbone:
    """Pretrain on the unlabeled pool (never the test set); return the encoder in eval mode.

    With ``log_to_mlflow`` the rank-0 process logs a nested ``pretrain`` run: loss, learning
    rate, embedding std and effective rank per step, the final checkpoint and the encoder;
    the step plan as params (``budget``, ``planned_steps``, ``steps_per_epoch``,
    ``pretrain_batch_size``) and why it ended as the tag ``sslcore.stop_reason`` (the plan's
    reason, or ``early: ...``). ``reopen_run_id`` continues that run instead (a torchrun
    restart of the same job).
    """
    from sslcore.distributed import is_main_process
    from sslcore.train.pretrain import pretrain_encoder

    main = is_main_process()
    ctx = (tracking.child_run("pretrain", {"sslcore.kind": "pretrain",
                                           "sslcore.vertical": cfg.vertical}, reopen_run_id)
           if log_to_mlflow and main else nullcontext())
    with ctx as run:
        if run is not None:
            tracking.record_run(ckpt_dir, "pretrain", run.info.run_id)
        on_metrics = tracking.metrics_logger(run.info.run_id) if run is not None else None
        if run is not None:
            tracking.log_params(run.info.run_id,
                                tracking.flatten("pretrain", cfg.pretrain.model_dump())
                                | {"checkpoint_dir": str(ckpt_dir)})
        on_plan = _plan_logger(run.info.run_id) if run is not None else None
        try:
            result = pretrain_encoder(built.task, data.unlabeled, cfg.pretrain,
                                      checkpoint_dir=ckpt_dir, resume=resume, device=device,
                                      on_metrics=on_metrics, on_plan=on_plan,
                                      progress=progress)
        except BaseException as exc:
            if run is not None:
                with suppress(Exception):  # never hide the failure behind a tracking error
                    _set_stop_reason(run.info.run_id, f"early: {type(exc).__name__}: {exc}")
            raise
        if run is not None:
            plan = result.plan
            if plan is not None:
                _set_stop_reason(run.info.run_id, plan.reason if result.steps == plan.total
                                 else f"early: {result.steps} of {plan.total} planned steps")
            tracking.log_metrics(run.info.run_id, {
                "final_loss": result.losses[-1] if result.losses else float("nan"),
                "pretrain_seconds": result.wall_time,
                "samples_per_second": result.samples_per_second, "steps": result.steps},
                step=result.steps)
            if result.final_checkpoint and Path(result.final_checkpoint).exists():
                tracking.log_artifact(run.info.run_id, result.final_checkpoint, "checkpoint")
    encoder = built.task.backbone.to(device).eval()
    return encoder


def _plan_logger(run_id: str) -> Callable[[Any], None]:
    """Logs the pretraining step plan (a StepPlan) as params of the pretrain run."""
    def log(plan: Any) -> None:
        tracking.log_params(run_id, {
            "budget": plan.budget, "planned_steps": str(plan.total),
            "steps_per_epoch": str(plan.steps_per_epoch),
            "pretrain_batch_size": str(plan.batch_size)})
    return log


def _set_stop_reason(run_id: str, reason: str) -> None:
    tracking.set_tags(run_id, {"sslcore.stop_reason": reason[:500]})
