"""The Python API: compare(), pretrain(), finetune(), load_model().

Every function validates the whole config (components, params, metrics) and the data before
the first expensive step, and raises SSLCoreError subclasses; it never exits the process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sslcore.experiment import Report

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a model hub

__all__ = ["Report", "compare", "finetune", "load_model", "pretrain"]


def _prepare(vertical_or_config: Any, data: Any, *, quick: bool, tracking_uri: str | None,
             overrides: dict[str, Any] | None = None,
             budget: str | None = None, init: Any = None) -> tuple[Any, Any, Any]:
    from sslcore.experiment import load_data, resolve_config
    from sslcore.plugins import load_registries

    registries = load_registries()
    overrides = dict(overrides or {})
    if tracking_uri:
        overrides["tracking"] = {"uri": tracking_uri}
    if budget:
        overrides["budget"] = budget
    if init is not None:  # deep-merged into the recipe's backbone block
        overrides["backbone"] = {"init": init}
    cfg = resolve_config(vertical_or_config, registries, quick=quick, overrides=overrides)
    return cfg, registries, load_data(cfg, registries, data)


def compare(vertical_or_config: Any, data: Any = None, *,
            label_fractions: list[float] | None = None, seeds: list[int] | None = None,
            tracking_uri: str | None = None, quick: bool = False, budget: str | None = None,
            init: Any = None, resume: bool = False, progress: bool = True) -> Report:
    """Pretrain on the unlabeled pool, then compare SSL heads with labeled-only baselines.

    Args:
        vertical_or_config: a vertical name (``"fraud_transactions"``), a YAML path, a mapping
            or an ExperimentConfig.
        data: the user's own data, ``{"unlabeled": X, "labeled": (X, y), "test": (X, y)}`` with
            numpy arrays, torch tensors or polars/pandas frames; None uses the built-in data.
            Optionally ``"shifted": {"site_b": {"test": (X, y), "unlabeled": X}}``: named
            shifted domains (same features and classes; ``unlabeled`` optional). Every model
            is also scored on each shifted test set (child-run metrics
            ``shift_<name>_<metric>``, a section of ``comparison.md``, ``shift.png``,
            ``Report.shift_table``), with the thresholds and choices made on the in-domain
            validation split; config ``pretrain.target_unlabeled: [site_b]`` adds a domain's
            unlabeled rows to the pool pretraining sees (unsupervised domain adaptation). With
            the built-in data, ``dataset.shifted`` in the config builds the domains instead.
        label_fractions: fractions of the labeled pool to sweep (default 1%, 5%, 10%, 25%, 100%).
        seeds: seeds of the labeled subsets and models (default 0, 1, 2).
        tracking_uri: MLflow tracking URI (default ``sqlite:///mlflow.db``).
        quick: the vertical's quick recipe (smaller data and budgets) for demos and smoke tests.
        budget: ``"quick"``, ``"standard"`` or ``"thorough"``: scales every floor and cap on
            training steps (``pretrain``/``finetune`` ``min_steps``, ``max_steps``) 0.25x, 1x
            or 4x; default: the config's (``--quick`` recipes select ``quick``).
        init: start the encoder from pretrained weights (``backbone.init``): a
            ``.safetensors`` / ``.pt`` file, a Hugging Face directory or ``hf:<id>``,
            ``timm:<name>.<tag>``, an sslcore export, or ``runs:/...`` / ``models:/...``; a
            string or ``{"source": ..., "min_loaded": 0.9}``.
        resume: continue pretraining from the last checkpoint of an identical config and data.

    Returns:
        Report: ``.table`` (polars: label_fraction, arm, method, metric, mean, std, n_seeds,
        n_defined) and ``.run_id`` (the MLflow parent run).

    Raises:
        ConfigError, DataError, UnknownComponentError: before any training starts (for shifted
            domains: a feature shape, columns or label set unlike the source's, an empty or
            in-domain test set, a name that collides with metric names, a test row in a pool).
        RunInterrupted: SIGTERM or SIGINT (Ctrl-C) stopped the run (in the main thread, these
            signals stop gracefully: pretraining finishes its step and checkpoints, the MLflow
            runs are marked KILLED); ``compare(..., resume=True)`` with the same arguments
            continues it in the same MLflow runs.
    """
    from sslcore import interrupts
    from sslcore.experiment import run_experiment

    evaluation: dict[str, Any] = {}
    if label_fractions is not None:
        evaluation["label_fractions"] = list(label_fractions)
    if seeds is not None:
        evaluation["seeds"] = list(seeds)
    with interrupts.stop_on_signals("sslcore.compare(<the same arguments>, resume=True)"):
        interrupts.set_phase("while loading the config and data (no run recorded yet)")
        cfg, registries, ssl_data = _prepare(
            vertical_or_config, data, quick=quick, tracking_uri=tracking_uri, budget=budget,
            init=init, overrides={"evaluation": evaluation} if evaluation else None)
        return run_experiment(cfg, registries, ssl_data, resume=resume, progress=progress)


def pretrain(vertical_or_config: Any, data: Any = None, *, tracking_uri: str | None = None,
             quick: bool = False, budget: str | None = None, init: Any = None,
             resume: bool = False, progress: bool = True) -> Path:
    """Pretrain the encoder only (single process or under torchrun); return its checkpoint dir.

    ``budget`` (the step-budget preset) and ``init`` (pretrained weights to start from) are
    as for :func:`compare`.

    ``compare(..., resume=True)`` with the same config and data reuses the checkpoint.
    ``resume=True`` here continues an interrupted pretraining from its last checkpoint, in the
    same MLflow runs (a torchrun restart of the same job reopens them too).

    Raises:
        RunInterrupted: SIGTERM or SIGINT stopped it after an optimizer step (every rank at the
            same step), with a checkpoint of that step; its MLflow runs are KILLED.
    """
    from contextlib import nullcontext

    from sslcore import interrupts, tracking
    from sslcore.data.shift import pretraining_data
    from sslcore.distributed import cleanup_distributed, init_distributed, is_main_process
    from sslcore.experiment import checkpoint_dir, run_key
    from sslcore.pretraining import run_pretraining
    from sslcore.train.build import build_pretraining

    with interrupts.stop_on_signals("sslcore.pretrain(<the same arguments>, resume=True)"):
        interrupts.set_phase("while loading the config and data (no run recorded yet)")
        cfg, registries, ssl_data = _prepare(vertical_or_config, data, quick=quick,
                                             tracking_uri=tracking_uri, budget=budget,
                                             init=init)
        # The pool compare() pretrains on: with pretrain.target_unlabeled, the targets' rows.
        ssl_data = pretraining_data(ssl_data, cfg.pretrain.target_unlabeled)
        device = init_distributed()
        card = ssl_data.card()
        ckpt = checkpoint_dir(cfg, card.content_hash)
        built = build_pretraining(cfg, registries, ssl_data)
        main = is_main_process()  # only rank 0 talks to MLflow
        experiment = cfg.tracking.experiment or f"sslcore-{cfg.vertical}"
        reopen = tracking.runs_to_reopen(ckpt) if main else {}  # a torchrun restart: same runs
        run = tracking.parent_run(
            cfg.tracking.uri, experiment, f"{cfg.vertical}-pretrain",
            {"sslcore.vertical": cfg.vertical, "sslcore.kind": "pretrain"}, card.as_params(),
            run_id=reopen.get("parent"), resume=resume,
            config_hash=run_key(cfg, card.content_hash, registries.plugin_versions())) \
            if main else nullcontext()
        try:
            with run as parent:
                child = reopen.get("pretrain")
                if parent is not None:
                    tracking.record_run(ckpt, "parent", parent.info.run_id)
                    if child is None and resume:  # --resume: the interrupted run's child
                        prior = tracking.latest_child(parent.info.experiment_id,
                                                      parent.info.run_id, "pretrain")
                        child = prior[0] if prior and prior[1] != "FINISHED" else None
                interrupts.set_phase("before pretraining")
                run_pretraining(cfg, built, ssl_data, ckpt, resume=resume, device=device,
                                progress=progress and main, log_to_mlflow=main,
                                reopen_run_id=child)
        finally:
            with interrupts.shielded():
                cleanup_distributed()
    return ckpt


def finetune(vertical_or_config: Any, data: Any = None, *, method: str = "finetune",
             label_fraction: float = 1.0, seed: int = 0, quick: bool = False,
             budget: str | None = None) -> Any:
    """Fit one SSL head on the pretrained encoder (from ``pretrain()``) and return it.

    The returned Method has ``predict_scores(x)``. Raises CheckpointError when the encoder was
    not pretrained for this config and data.
    """
    from sslcore.data.sampling import labeled_subsets
    from sslcore.data.shift import pretraining_data
    from sslcore.distributed import pick_device
    from sslcore.errors import CheckpointError, ConfigError
    from sslcore.experiment import checkpoint_dir
    from sslcore.train.build import build_pretraining
    from sslcore.sweep import fit_context
    from sslcore.train.checkpoint import latest_checkpoint, load_checkpoint

    cfg, registries, ssl_data = _prepare(vertical_or_config, data, quick=quick, tracking_uri=None,
                                         budget=budget)
    ssl_data = pretraining_data(ssl_data, cfg.pretrain.target_unlabeled)  # as pretrain() saw it
    refs = {r.label: r for r in cfg.heads}
    if method not in refs:
        raise ConfigError(f"method: {method!r} is not a head of this config; choose from "
                          f"{sorted(refs)}")
    ckpt_dir = checkpoint_dir(cfg, ssl_data.card().content_hash)
    ckpt = latest_checkpoint(ckpt_dir)
    if ckpt is None:
        raise CheckpointError(f"no pretrained encoder in {ckpt_dir}; run "
                              "sslcore.pretrain() (or `sslcore pretrain`) with this config first")
    built = build_pretraining(cfg, registries, ssl_data)
    built.task.load_state_dict(load_checkpoint(ckpt)["model"])
    device = pick_device()
    subset = labeled_subsets(ssl_data, cfg.evaluation, [label_fraction], seed)[0]
    ctx = fit_context(ssl_data, subset, cfg, device=device, make_backbone=built.make_backbone,
                      augment=built.finetune_augment, encoder=built.task.backbone.to(device).eval())
    head = registries.heads.get(refs[method].name).build(refs[method].params)
    head.fit(ctx)
    return head


def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """Load a logged sslcore model as an MLflow pyfunc: ``Report.model_uri`` (``models:/m-...``),
    a registered version (``models:/sslcore-<vertical>/3``, ``Report.registered_model``) or an
    alias (``models:/sslcore-<vertical>@champion`` after ``sslcore promote``, ``@candidate``
    for the newest run's).

    ``tracking_uri`` is the store it was logged to (default: $MLFLOW_TRACKING_URI, else
    ``sqlite:///mlflow.db``); the Model Registry is the same store.
    """
    import mlflow

    from sslcore.tracking import resolve_uri

    mlflow.set_tracking_uri(resolve_uri(tracking_uri))
    return mlflow.pyfunc.load_model(model_uri)
