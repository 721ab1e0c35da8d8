"""Why did the model say pneumonia? Grad-CAM (CNNs) or gradient saliency (ViTs), side by side.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017) weights the feature maps of a convolutional stage by
the spatial mean of the gradient of the class logit, sums them and keeps the positive part.
At 64 px a ResNet's last stage is 2 x 2, too coarse to point at a lobe, so the stage used is
the deepest whose map is at least ``min_cells`` wide (4 x 4 here: layer3 at 64 px, layer4 at
128 px). Backbones without convolutional stages (ViTs) get a gradient saliency map instead
(|d logit / d input|, smoothed; Simonyan et al., "Deep Inside Convolutional Networks", ICLR
2014 workshop).

:func:`write_artifacts` is the recipe's artifacts function: ``saliency.png`` shows a few test
images (fixed, not cherry-picked: the first pneumonia and normal images of the test set) with
the SSL fine-tuned model's map beside the scratch baseline's and each model's predicted
probability. With more
than two classes (a user's own labels), the first test image of each class is shown with the
map of its own class. The parent run is also tagged with the encoder's geometry
(``sslcore.geometry.*``: image size, and the size a ResNet upsamples small images to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

N_POSITIVE, N_NEGATIVE = 4, 2


def _stages(backbone: Any) -> list[Any]:
    """Candidate convolutional stages of a timm backbone, shallow to deep."""
    model = getattr(backbone, "model", backbone)
    info = getattr(model, "feature_info", None)
    names = [f["module"] for f in info] if info is not None else []
    out = []
    for name in names:
        try:
            out.append(model.get_submodule(name))
        except AttributeError:
            continue
    return out


def grad_cam(classifier: Any, x: Any, *, target: int | np.ndarray = 1,
             min_cells: int = 4) -> np.ndarray:
    """Class-activation maps ``(N, H, W)`` in [0, 1] for ``target`` on images ``x``.

    Args:
        classifier: a :class:`sslcore.train.supervised.Classifier` (``.backbone``, ``.head``).
        x: float tensor ``(N, C, H, W)`` on the classifier's device.
        target: class whose logit is explained (1 = pneumonia), or one class per image.
        min_cells: use the deepest stage whose feature map is at least this wide.
    """
    import torch
    import torch.nn.functional as F

    rows = torch.as_tensor(np.broadcast_to(np.asarray(target), (len(x),)).copy(),
                           dtype=torch.long, device=x.device)

    classifier.eval()
    captured: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(out))
             for m in _stages(classifier.backbone)]
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            logits = classifier(x)
            maps = [a for a in captured if isinstance(a, torch.Tensor) and a.ndim == 4]
            wide = [a for a in maps if min(a.shape[-2:]) >= min_cells]
            act = wide[-1] if wide else (maps[-1] if maps else None)
            score = logits.gather(1, rows[:, None]).sum()
            if act is None:
                return _gradient_saliency(score, x)
            (grad,) = torch.autograd.grad(score, act)
    finally:
        for h in hooks:
            h.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _unit(cam.detach())


def _gradient_saliency(score: Any, x: Any) -> np.ndarray:
    """|d score / d x| (max over channels), blurred with sigma 1.5 px, per image in [0, 1]."""
    import torch

    from sslcore.sdk import gaussian_blur

    (grad,) = torch.autograd.grad(score, x)
    sal = grad.abs().amax(dim=1, keepdim=True)
    sal = gaussian_blur(sal, torch.Generator(device=sal.device), sigma=(1.5, 1.5), p=1.0)
    return _unit(sal[:, 0].clamp_min(0).detach())


def _unit(maps: Any) -> np.ndarray:
    """Scale each map to [0, 1] (an all-zero map stays 0)."""
    m = maps.float().cpu().numpy()
    top = m.reshape(len(m), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(top > 0, m / np.maximum(top, 1e-12), 0.0).astype(np.float32)


def pick_examples(y: np.ndarray, n_pos: int = N_POSITIVE, n_neg: int = N_NEGATIVE) -> np.ndarray:
    """The first ``n_pos`` positive and ``n_neg`` negative test rows (no cherry-picking); with
    more than two classes, the first row of each class, up to ``n_pos + n_neg`` classes."""
    y = np.asarray(y)
    if y.size and int(y.max()) > 1:
        firsts = [np.flatnonzero(y == c)[:1] for c in np.unique(y)]
        return np.concatenate(firsts)[:n_pos + n_neg]
    return np.concatenate([np.flatnonzero(y == 1)[:n_pos], np.flatnonzero(y == 0)[:n_neg]])


def saliency_figure(images: np.ndarray, labels: list[str],
                    panels: list[tuple[str, np.ndarray, np.ndarray]], path: Path,
                    explained: list[str] | None = None) -> None:
    """One row per image: the image, then each model's map overlaid, titled with the
    probability of the explained class (``explained``, per image; default pneumonia).

    ``panels`` holds (model name, maps (N, H, W), probabilities (N,)).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, cols = len(images), 1 + len(panels)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols, 2.3 * n), squeeze=False)
    for i in range(n):
        img = images[i, 0]
        axes[i, 0].imshow(img, cmap="gray")
        axes[i, 0].set_title(labels[i], fontsize=8)
        for j, (name, maps, probs) in enumerate(panels, start=1):
            axes[i, j].imshow(img, cmap="gray")
            axes[i, j].imshow(maps[i], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            what = explained[i] if explained else "pneumonia"
            axes[i, j].set_title(f"{name}\np({what})={probs[i]:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("Grad-CAM on test images: SSL fine-tuned vs scratch", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _trained_model(fitted: dict[tuple[str, str], Any], arm: str, component: str,
                   labels: dict[str, str]) -> tuple[str, Any] | None:
    """(panel title, network) of the first ``component`` fitted in ``arm``, if any."""
    for (a, label), method in fitted.items():
        if (a == arm and labels.get(label) == component
                and getattr(method, "model", None) is not None):
            return f"{'SSL' if arm == 'ssl' else 'baseline'} {label}", method.model
    return None


def write_artifacts(ctx: Any) -> None:
    """The recipe's artifacts: ``saliency.png`` (the core records the encoder's geometry and
    the files a loader skipped, dropped or found duplicated)."""
    import torch

    from sslcore.sdk import predict_scores

    labels = {r.label: r.name for r in list(ctx.cfg.heads) + list(ctx.cfg.baselines)}
    models = [m for m in (_trained_model(ctx.fitted, "ssl", "finetune", labels),
                          _trained_model(ctx.fitted, "baseline", "scratch", labels)) if m]
    if not models:
        return  # nothing with a network to explain (e.g. only linear probes configured)
    y = np.asarray(ctx.data.test_y)
    rows = pick_examples(y)
    images = ctx.data.test_x[rows]
    names = ctx.data.class_names or [str(c) for c in range(max(int(y.max()) + 1, 2))]
    # Binary: explain the positive class; more classes: each image's own class.
    targets = y[rows] if int(y.max()) > 1 else np.ones(len(rows), dtype=np.int64)
    titles = [f"test #{r}: {names[int(y[r])]}" for r in rows]
    panels = []
    for title, model in models:
        device = next(model.parameters()).device
        maps = grad_cam(model, torch.as_tensor(images, device=device), target=targets)
        scores = np.asarray(predict_scores(model, images, device)).reshape(len(rows), -1)
        probs = scores[np.arange(len(rows)), targets] if scores.shape[1] > 1 else scores[:, 0]
        panels.append((title, maps, probs))
    saliency_figure(images, titles, panels, ctx.out_dir / "saliency.png",
                    explained=[names[int(t)] for t in targets])

