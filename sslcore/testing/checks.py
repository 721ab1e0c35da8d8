"""The contract checks, one per kind of component, on tiny tensors (see :mod:`sslcore.testing`)."""

from __future__ import annotations

import copy
import functools
import numbers
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from sslcore.config import FinetuneConfig
from sslcore.contracts import Backbone, FitContext, Method, Metric, PretextTask, VerticalRecipe
from sslcore.errors import ConfigError, SSLCoreError
from sslcore.registry import Entry

TINY_BUDGET = FinetuneConfig(epochs=2, min_steps=20, batch_size=16, lr=1e-3, weight_decay=1e-4,
                             patience=1)
METHOD_KINDS = ("heads", "baselines")


# ----------------------------------------------------------------------------- helpers

def synthetic_classification(input_shape: Sequence[int], n: int, num_classes: int = 2, *,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable float32 task: class c shifts the mean of every feature by ``c``.

    Every class appears at least twice (needs ``n >= 2 * num_classes``).
    """
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.repeat(np.arange(num_classes), 2),
                        rng.integers(0, num_classes, n - 2 * num_classes)])
    y = rng.permutation(y).astype(np.int64)
    x = rng.normal(size=(n, *input_shape)) + y.reshape(-1, *([1] * len(input_shape)))
    return x.astype(np.float32), y


def tiny_context(input_shape: Sequence[int], num_classes: int = 2, *, seed: int = 0,
                 encoder: nn.Module | None = None, make_backbone: Any = None,
                 budget: Any = TINY_BUDGET) -> FitContext:
    """A FitContext of a few rows: 40 train and 16 val (each with every class), 64 unlabeled."""
    shape = tuple(input_shape)
    x_tr, y_tr = synthetic_classification(shape, 40, num_classes, seed=seed)
    x_va, y_va = synthetic_classification(shape, 16, num_classes, seed=seed + 100)
    unlabeled, _ = synthetic_classification(shape, 64, num_classes, seed=seed + 200)
    return FitContext(x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, unlabeled=unlabeled,
                      num_classes=num_classes, seed=seed, device=torch.device("cpu"),
                      budget=budget, make_backbone=make_backbone or _no_backbone,
                      encoder=encoder)


def _no_backbone() -> Backbone:
    raise AssertionError("this context has no backbone factory")


def _build_backbone(entry: Entry[Any], params: dict[str, Any] | None,
                    input_shape: tuple[int, ...], seed: int,
                    fit_on: np.ndarray | None = None) -> Backbone:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = entry.build(params, input_shape=input_shape)
    if fit_on is not None and callable(getattr(backbone, "fit_normalizer", None)):
        backbone.fit_normalizer(fit_on)
    return backbone


def _roundtrip(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj))


def _assert_close(a: Any, b: Any, what: str, atol: float = 1e-6) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shapes differ ({a.shape} vs {b.shape})"
    assert np.allclose(a, b, atol=atol, rtol=1e-5), \
        f"{what}: results differ (max abs diff {np.abs(a - b).max():.3g})"


def _assert_finite_grads(module: nn.Module, what: str, must_have: nn.Module | None = None) -> None:
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    for name, g in grads.items():
        assert g is None or torch.isfinite(g).all(), f"{what}: non-finite gradient in {name}"
    scope = must_have if must_have is not None else module
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in scope.parameters()), \
        f"{what}: backward produced no gradient"


# ----------------------------------------------------------------------------- checks

def check_params(entry: Entry[Any], params: dict[str, Any] | None = None) -> BaseModel:
    """Params validate, survive ``model_dump`` -> ``model_validate`` and JSON, reject unknowns."""
    model = entry.params.model_validate(params or {})
    assert entry.params.model_validate(model.model_dump()) == model, f"{entry.name}: dump"
    assert entry.params.model_validate_json(model.model_dump_json()) == model, f"{entry.name}: json"
    try:
        entry.params.model_validate({**model.model_dump(), "not_a_field_xyz": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError(f"{entry.name}: params accept unknown keys (set extra='forbid')")
    return model


def check_backbone(entry: Entry[Any], input_shape: Sequence[int],
                   params: dict[str, Any] | None = None, batch: int = 4) -> None:
    """Shape ``(N, embed_dim)``, finite grads, determinism, state_dict and pickle round-trips."""
    shape = tuple(input_shape)
    check_params(entry, params)
    x_np, _ = synthetic_classification(shape, max(batch, 8))
    a = _build_backbone(entry, params, shape, 0, fit_on=x_np)
    assert isinstance(a, nn.Module) and isinstance(a.embed_dim, int), \
        f"{entry.name}: a backbone is an nn.Module with an int embed_dim"
    x = torch.as_tensor(x_np[:batch])
    with torch.no_grad():
        b = _build_backbone(entry, params, shape, 0, fit_on=x_np).eval()
        _assert_close(b(x), a.eval()(x), f"{entry.name}: same seed, same weights")
    a.train()
    out = a(x)
    assert tuple(out.shape) == (batch, a.embed_dim), \
        f"{entry.name}: output {tuple(out.shape)}, expected {(batch, a.embed_dim)}"
    out.float().square().mean().backward()
    _assert_finite_grads(a, entry.name)
    a.eval()
    with torch.no_grad():
        ref = a(x)
        assert torch.isfinite(ref).all(), f"{entry.name}: non-finite embeddings"
        _assert_close(a(x), ref, f"{entry.name}: eval forward twice")
        fresh = _build_backbone(entry, params, shape, 1).eval()
        fresh.load_state_dict(a.state_dict())
        _assert_close(fresh(x), ref, f"{entry.name}: fresh copy + load_state_dict")
        _assert_close(_roundtrip(a).eval()(x), ref, f"{entry.name}: pickle")


def _jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A picklable stand-in augmentation for pretext checks."""
    noise = torch.randn(tuple(x.shape), generator=generator, device=generator.device)
    return x + 0.1 * noise.to(x.device, x.dtype)


def check_augmentation(entry: Entry[Any], input_shape: Sequence[int],
                       params: dict[str, Any] | None = None, batch: int = 8) -> None:
    """Same shape and dtype, finite, input untouched, reproducible by generator, picklable."""
    check_params(entry, params)
    aug = entry.build(params)
    x = torch.as_tensor(synthetic_classification(tuple(input_shape), batch)[0])
    before = x.clone()
    out = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, before), f"{entry.name}: modified its input in place"
    assert out.shape == x.shape and out.dtype == x.dtype, \
        f"{entry.name}: output {tuple(out.shape)} {out.dtype}, expected {tuple(x.shape)} {x.dtype}"
    assert torch.isfinite(out).all(), f"{entry.name}: non-finite output"
    _assert_close(aug(x, torch.Generator().manual_seed(0)), out, f"{entry.name}: same generator")
    _assert_close(_roundtrip(aug)(x, torch.Generator().manual_seed(0)), out,
                  f"{entry.name}: pickle")
    one = aug(x[:1], torch.Generator().manual_seed(0))
    assert one.shape == x[:1].shape, f"{entry.name}: fails on a batch of one"


def check_pretext_task(entry: Entry[Any], backbone_entry: Entry[Any],
                       input_shape: Sequence[int], params: dict[str, Any] | None = None,
                       backbone_params: dict[str, Any] | None = None, batch: int = 8) -> None:
    """Scalar finite loss, finite grads reaching the backbone, determinism, pickling; with and
    without an ``augment`` (a task that needs views must refuse None with a ConfigError)."""
    shape = tuple(input_shape)
    check_params(entry, params)
    x_np, _ = synthetic_classification(shape, batch)
    x = torch.as_tensor(x_np)

    def build(augment: Any) -> PretextTask:
        bb = _build_backbone(backbone_entry, backbone_params, shape, 0, fit_on=x_np)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return entry.build(params, backbone=bb, augment=augment, input_shape=shape)

    def loss_of(task: PretextTask) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            return task.loss(x, torch.Generator().manual_seed(0))

    for augment in (None, _jitter):
        what = f"{entry.name} (augment={getattr(augment, '__name__', None)})"
        try:
            task = build(augment)
        except ConfigError as exc:  # tasks that need views (SimCLR, BYOL) must say so
            assert augment is None and "augment" in str(exc), f"{what}: {exc}"
            continue
        assert isinstance(task, nn.Module) and isinstance(task.backbone, nn.Module), \
            f"{what}: a pretext task is an nn.Module with a .backbone"
        task.train()
        loss = loss_of(task)
        assert loss.ndim == 0 and torch.isfinite(loss), f"{what}: loss must be a finite scalar"
        _assert_close(loss_of(build(augment)).item(), loss.item(), f"{what}: same seed")
        _assert_close(loss_of(_roundtrip(task)).item(), loss.item(), f"{what}: pickle")
        loss.backward()
        _assert_finite_grads(task, what, must_have=task.backbone)
        task.on_step_end()


def check_method(entry: Entry[Any], *, backbone_entry: Entry[Any] | None,
                 input_shape: Sequence[int], num_classes: int = 2, as_head: bool = True,
                 params: dict[str, Any] | None = None,
                 backbone_params: dict[str, Any] | None = None,
                 add_meta: Callable[[FitContext], None] | None = None) -> None:
    """Fit on a tiny labeled set; scores of the right shape, finite, deterministic by seed,
    picklable; ``ctx.encoder`` left untouched; label-free methods ignore the labels.

    ``add_meta(ctx)`` fills ``ctx.meta_train`` / ``ctx.meta_val`` for methods that need
    per-row metadata (e.g. remaining useful life), which the tiny contexts do not carry.
    """
    shape = tuple(input_shape)
    check_params(entry, params)

    def context(seed: int = 0) -> FitContext:
        make = (functools.partial(_build_backbone, backbone_entry, backbone_params, shape, 7)
                if backbone_entry is not None else None)
        ctx = tiny_context(shape, num_classes, seed=seed, make_backbone=make)
        if as_head and backbone_entry is not None:
            ctx.encoder = _build_backbone(backbone_entry, backbone_params, shape, 0,
                                          fit_on=ctx.unlabeled)
        if add_meta is not None:
            add_meta(ctx)
        return ctx

    method = entry.build(params)
    assert isinstance(method, Method) and isinstance(method.uses_labels, bool), \
        f"{entry.name}: a method has fit, predict_scores and a bool uses_labels"
    _roundtrip(method)
    ctx = context()
    binary_only = not method.uses_labels or getattr(method, "binary_only", False)
    if binary_only and num_classes != 2:
        try:
            method.fit(ctx)
        except SSLCoreError:
            return  # label-free scores fit binary tasks only, and say so
        raise AssertionError(f"{entry.name}: a binary-only or label-free method accepted a "
                             f"{num_classes}-class task without an SSLCoreError")
    enc_state = copy.deepcopy(ctx.encoder.state_dict()) if ctx.encoder is not None else None
    enc_mode = ctx.encoder.training if ctx.encoder is not None else None
    method.fit(ctx)
    if ctx.encoder is not None:
        for k, v in ctx.encoder.state_dict().items():
            assert torch.equal(v, enc_state[k]), f"{entry.name}: fit modified ctx.encoder ({k})"
        assert ctx.encoder.training == enc_mode, f"{entry.name}: fit changed ctx.encoder's mode"
    x_test, _ = synthetic_classification(shape, 20, num_classes, seed=5)
    scores = np.asarray(method.predict_scores(x_test))
    expected = (20,) if num_classes == 2 else (20, num_classes)
    assert scores.shape == expected, f"{entry.name}: scores {scores.shape}, expected {expected}"
    assert np.isfinite(scores).all(), f"{entry.name}: non-finite scores"
    if num_classes > 2:
        assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4), \
            f"{entry.name}: multi-class scores must be probabilities summing to 1"
    again = entry.build(params)
    again.fit(context())
    _assert_close(again.predict_scores(x_test), scores, f"{entry.name}: same seed", atol=1e-5)
    _assert_close(_roundtrip(method).predict_scores(x_test), scores, f"{entry.name}: pickle")
    if not method.uses_labels:
        shuffled = context()
        shuffled.y_train = shuffled.y_train[::-1].copy()
        blind = entry.build(params)
        blind.fit(shuffled)
        _assert_close(blind.predict_scores(x_test), scores,
                      f"{entry.name}: uses_labels=False but the scores depend on the labels")


def check_dataset(entry: Entry[Any], params: dict[str, Any] | None = None) -> None:
    """Builds valid SSLData, the same for the same seed."""
    check_params(entry, params)
    a, b = entry.build(params, seed=0).validate(), entry.build(params, seed=0).validate()
    assert a.card().content_hash == b.card().content_hash, f"{entry.name}: not seeded"


def check_metric(entry: Entry[Any]) -> None:
    """Builds a :class:`Metric` that, on tiny scores, gives a real number, the same twice:
    binary scores (N,) and, unless ``binary_only``, class probabilities (N, 3). A metric that
    reads ``test_meta`` (``needs_meta``) is only built here: its plugin tests it on hand-built
    metadata."""
    from sslcore.evaluate.metrics import compute_one

    check_params(entry)
    metric = entry.build(None)
    assert isinstance(metric, Metric), f"{entry.name}: the factory must return a Metric"
    if metric.needs_meta:
        return
    for num_classes in (2,) if metric.binary_only else (2, 3):
        rng = np.random.default_rng(0)
        y = rng.permutation(np.concatenate([np.repeat(np.arange(num_classes), 4),
                                            rng.integers(0, num_classes, 24)]))
        proba = rng.dirichlet(np.ones(num_classes), len(y))
        scores = proba[:, 1] if num_classes == 2 else proba
        first = compute_one(entry.name, metric, y, scores, threshold=0.5)
        again = compute_one(entry.name, metric, y, scores.copy(), threshold=0.5)
        assert entry.name in first, f"{entry.name}: no value under its own name"
        for key, value in first.items():
            assert isinstance(value, numbers.Real) and not isinstance(value, bool), \
                f"{key}: a metric returns a float, got {type(value).__name__}"
        np.testing.assert_equal(again, first, err_msg=f"{entry.name}: not deterministic")


def check_vertical(entry: Entry[Any], registries: Any) -> None:
    """The recipe (and its ``--quick`` variant) validates and names registered components."""
    from sslcore.config import deep_merge, validate_config
    from sslcore.config_checks import check_components

    check_params(entry)
    recipe = entry.build(None)
    assert isinstance(recipe, VerticalRecipe), f"{entry.name}: factory must return a recipe"
    assert recipe.modality in ("table", "image", "timeseries"), f"{entry.name}: modality"
    raw = {"vertical": entry.name, **recipe.default_config}
    for cfg in (raw, deep_merge(raw, recipe.quick_overrides)):
        check_components(validate_config(cfg, source=f"vertical {entry.name}"), registries)
