"""Run pretraining inside its MLflow child run: the step plan, metrics, stop reason, checkpoint.

The training itself (``sslcore.train``) knows nothing of MLflow; this module connects it to
the one writer, :mod:`sslcore.tracking`, on rank 0 only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import torch

from sslcore import interrupts, tracking
from sslcore.config import ExperimentConfig
from sslcore.contracts import Backbone
from sslcore.data.ssl_data import SSLData
from sslcore.export import write_backbone_spec
from sslcore.errors import RunInterrupted, SSLCoreError
from sslcore.train.build import Built
from sslcore.train.probe import OnlineProbe


def run_pretraining(cfg: ExperimentConfig, built: Built, data: SSLData, ckpt_dir: Path, *,
                    resume: bool, device: torch.device, progress: bool,
                    log_to_mlflow: bool, reopen_run_id: str | None = None,
                    run_name: str = "pretrain") -> Backbone:
    """Pretrain on the unlabeled pool (never the test set); return the encoder in eval mode.

    With ``log_to_mlflow`` the rank-0 process logs a nested run named ``run_name``
    (tagged ``sslcore.kind=pretrain``): loss, learning
    rate, embedding std and effective rank per step, the final checkpoint and the encoder;
    the step plan as params (``budget``, ``planned_steps``, ``steps_per_epoch``,
    ``pretrain_batch_size``) and why it ended as the tag ``sslcore.stop_reason`` (the plan's
    reason, or ``early: ...``). ``reopen_run_id`` continues that run instead (a torchrun
    restart of the same job, or ``--resume`` after an interruption): its metric history goes
    on, each step once (steps re-run after the last checkpoint are not logged twice). A stop
    signal ends the run KILLED with the tags ``sslcore.stop_reason`` (the signal and step) and
    ``sslcore.resume_command``, after the checkpoint of that step is written, and raises
    RunInterrupted.

    The online probe (``pretrain.probe_every``, :mod:`sslcore.train.probe`) logs
    ``probe_<metric>`` at its steps and, at the end, ``best_probe_<metric>``,
    ``best_probe_step`` and ``probe_seconds``. It is monitoring only: the encoder returned and
    checkpointed is always the last one, whatever step probed best.
    """
    from sslcore.distributed import is_main_process
    from sslcore.train.pretrain import pretrain_encoder

    main = is_main_process()
    ctx = (tracking.child_run(run_name, {"sslcore.kind": "pretrain",
                                           "sslcore.vertical": cfg.vertical}, reopen_run_id)
           if log_to_mlflow and main else nullcontext())
    with ctx as run:
        if run is not None:
            tracking.record_run(ckpt_dir, "pretrain", run.info.run_id)
        on_metrics = (tracking.metrics_logger(run.info.run_id, resumed=reopen_run_id is not None)
                      if run is not None else None)
        if run is not None:
            tracking.log_params(run.info.run_id,
                                tracking.flatten("pretrain", cfg.pretrain.model_dump())
                                | {"checkpoint_dir": str(ckpt_dir)})
        on_plan = _plan_logger(run.info.run_id) if run is not None else None
        if run is not None:
            _log_init_report(run.info.run_id, built.task.backbone, ckpt_dir)
        probe = _make_probe(cfg, built, data) if run is not None else None
        if probe is not None:
            tracking.log_params(run.info.run_id, {
                "probe_metric": probe.metric,
                "probe_rows": f"{len(probe.rows_fit)} fit + {len(probe.rows_val)} val"})
        try:
            result = pretrain_encoder(built.task, data.unlabeled, cfg.pretrain,
                                      checkpoint_dir=ckpt_dir, resume=resume, device=device,
                                      on_metrics=on_metrics, on_plan=on_plan,
                                      progress=progress, from_init=cfg.backbone.init is not None,
                                      probe=_guarded(probe) if probe is not None else None)
        except RunInterrupted:
            raise  # the run is marked KILLED, with the stop's reason, by tracking.child_run
        except BaseException as exc:
            if run is not None:
                # Never hide the failure behind a tracking error or a stop signal.
                with suppress(Exception), interrupts.shielded():
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
            best = probe.best(result.probes) if probe is not None else None
            if probe is not None and best is not None:
                tracking.log_metrics(run.info.run_id, {
                    f"best_{probe.name}": best[1], "best_probe_step": best[0],
                    "probe_seconds": probe.seconds}, step=result.steps)
            if result.final_checkpoint and Path(result.final_checkpoint).exists():
                tracking.log_artifact(run.info.run_id, result.final_checkpoint, "checkpoint")
                # What `sslcore export` needs to rebuild the encoder without this config.
                spec = write_backbone_spec(ckpt_dir, cfg, data.input_shape, built.task.backbone)
                tracking.log_artifact(run.info.run_id, spec, "checkpoint")
    encoder = built.task.backbone.to(device).eval()
    return encoder


def _make_probe(cfg: ExperimentConfig, built: Built, data: SSLData) -> OnlineProbe | None:
    """The run's online probe on the labeled pool (never the test set), scored with the
    primary metric (else the first of evaluation.metrics these rows can compute); None when
    it is off (``probe_every: 0``) or the labeled pool cannot give one (said as a warning)."""
    registry = built.metrics
    if cfg.pretrain.probe_every == 0 or registry is None:
        return None
    ev = cfg.evaluation
    usable = [m for m in dict.fromkeys([ev.primary_metric, *ev.metrics])
              if set(registry.get(m).build().needs_meta or ()) <= set(data.labeled_meta)]
    try:
        if not usable:
            raise ValueError(f"none of the metrics {ev.metrics} can be computed on labeled "
                             "rows (they need test metadata)")
        return OnlineProbe(
            data.labeled_x, data.labeled_y, metric=usable[0], metrics=registry,
            num_classes=data.num_classes, rows=cfg.pretrain.probe_rows, seed=cfg.pretrain.seed,
            groups=data.labeled_groups, meta=data.labeled_meta,
            higher_is_better=registry.get(usable[0]).build().higher_is_better)
    except ValueError as exc:
        warnings.warn(f"pretraining runs without the online probe: {exc}", stacklevel=2)
        return None


def _guarded(probe: OnlineProbe) -> Callable[[Any, int], dict[str, float]]:
    """The probe as the loop's callback: a probe that fails warns, it never ends the run."""
    def call(backbone: Any, step: int) -> dict[str, float]:
        try:
            return probe(backbone, step)
        except (ValueError, SSLCoreError) as exc:  # e.g. a metric undefined on these rows
            warnings.warn(f"online probe failed at step {step}: {exc}", stacklevel=2)
            return {}
    return call


def _log_init_report(run_id: str, backbone: Any, ckpt_dir: Path) -> None:
    """With ``backbone.init``: the loading report as ``init_report.json`` and the source and
    its SHA-256 as the tag ``sslcore.init``."""
    report = getattr(backbone, "init_report", None)
    if report is None:
        return
    info = report.to_dict()
    path = Path(ckpt_dir) / "init_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.to_json())
    digests = ",".join(f["sha256"][:12] for f in info.get("files", []))
    tracking.set_tags(run_id, {"sslcore.init": f"{info['source']} (sha256 {digests})"})
    tracking.log_artifact(run_id, path)


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
