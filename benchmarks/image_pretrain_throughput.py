"""Image SSL pretraining throughput: the full training step against the bare backbone.

(a) bare: forward + backward of the backbone alone on pre-made tensors of exactly the shapes it
    sees in a step (a two-view method: both views, 2B images, counted as B source images);
(b) full: the pretraining loop's own step (``sslcore.train.pretrain._train_step``): index the
    batch's rows from the float32 pool tensor, augment twice on the device, backbone,
    projection head, loss, backward, gradient clipping, AdamW step, then ``on_step_end``.

Both run after warm-up steps, with the same autocast setting, interleaved step by step (so a
shared machine's load hits both alike); the median step time is reported. The overhead of
everything that is not the backbone, ``(t_full - t_bare) / t_bare``, should stay under 25%.
A breakdown times the augmentation pipeline, the optimizer step and (BYOL) the EMA target's
forward alone. For MAE, (a) is whole images while its encoder sees only the visible patches. The result is appended to
``benchmarks/results/image_pretrain_throughput.md`` (machine, date, command).

    OMP_NUM_THREADS=1 python benchmarks/image_pretrain_throughput.py              # resnet18, 64 px
    python benchmarks/image_pretrain_throughput.py --method byol --no-bf16 --steps 5
    python benchmarks/image_pretrain_throughput.py --model vit_tiny --method mae
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "image_pretrain_throughput.md"
TARGET_OVERHEAD = 0.25
# Every image augmentation the recipes use (crop with a small rotation, flip, intensity,
# blur, noise), a superset of the medical recipe's SimCLR views (no flip, no intensity
# jitter): an upper bound on the data path's cost, not a trimmed one.
AUGMENTATIONS = [
    ("random_resized_crop", {"scale": [0.35, 1.0], "degrees": 10.0}),
    ("random_flip", {}),
    ("intensity_jitter", {"brightness": 0.3, "contrast": 0.3, "gamma": 0.2}),
    ("gaussian_blur", {"p": 0.3}),
    ("image_noise", {"std": 0.02}),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_seconds(fns: dict, steps: int, warmup: int, device: torch.device) -> dict:
    """Median seconds per call of each ``fn(i)``, after ``warmup`` untimed calls of each.

    The functions take turns, one call each per round, so a change in the machine's load (it
    is shared) hits all of them alike instead of biasing whichever ran last.
    """
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    times: dict = {name: [] for name in fns}
    for i in range(warmup, warmup + steps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn(i)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def build(args: argparse.Namespace, device: torch.device):
    from sslcore.plugins import load_registries
    from sslcore.train.build import compose

    regs = load_registries()
    shape = (args.channels, args.size, args.size)
    torch.manual_seed(0)
    pool = torch.rand((args.pool, *shape))
    backbone = regs.backbones.get(args.model).build(None, input_shape=shape)
    backbone.fit_normalizer(pool)
    augment = compose([regs.augmentations.get(n).build(p) for n, p in AUGMENTATIONS])
    params = {"total_steps": 1000} if args.method == "byol" else None
    task = regs.pretext_tasks.get(args.method).build(params, backbone=backbone, augment=augment,
                                                     input_shape=shape)
    return pool, augment, task.to(device).train()


def bare_step(task, args, device, views: int):
    backbone = task.backbone
    x = torch.rand((views * args.batch, args.channels, args.size, args.size), device=device)
    params = [p for p in backbone.parameters() if p.requires_grad]

    def step(_: int) -> None:
        for p in params:
            p.grad = None
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = backbone(x)
        out.float().square().mean().backward()

    return step


def target_step(task, args, device, views: int):
    """Forward of an EMA target network (BYOL) on the views, without gradients."""
    target = task.target_backbone
    x = torch.rand((views * args.batch, args.channels, args.size, args.size), device=device)

    def step(_: int) -> None:
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                             enabled=args.bf16):
            target(x)

    return step


def full_step(task, pool, args, device):
    from sslcore.config import PretrainConfig
    from sslcore.train.pretrain import _LossModule, _train_step, epoch_permutation

    cfg = PretrainConfig(batch_size=args.batch, bf16=args.bf16, lr=1e-4)
    params = [p for p in task.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=True if device.type == "cuda" else None)
    gen = torch.Generator(device=device)
    perm = epoch_permutation(pool.shape[0], 0, 0)
    per_epoch = pool.shape[0] // args.batch
    model, losses = _LossModule(task), []

    def step(i: int) -> None:
        pos = i % per_epoch
        batch = pool.index_select(0, perm[pos * args.batch:(pos + 1) * args.batch])
        if device.type == "cuda":
            batch = batch.pin_memory().to(device, non_blocking=True)
        loss, _, _ = _train_step(model, task, batch, opt, params, cfg, device, gen, i, 0, 1)
        task.on_step_end()
        losses.append(loss)

    def optimizer_only(_: int) -> None:
        opt.step()

    return step, optimizer_only


def augment_step(augment, pool, args, device, views: int):
    gen = torch.Generator(device=device).manual_seed(0)
    batch = pool[: args.batch].to(device)

    def step(_: int) -> None:
        for _ in range(views):
            augment(batch, gen)

    return step


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    return (f"{where}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}")


def write_result(text: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = RESULTS.read_text() if RESULTS.exists() else "# Image pretraining throughput\n"
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, delete=False, suffix=".tmp") as f:
        f.write(old.rstrip("\n") + "\n\n" + text)
    os.replace(f.name, RESULTS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet18", help="a registered backbone")
    ap.add_argument("--method", default="simclr", help="simclr | byol | mae")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128, help="source images per step")
    ap.add_argument("--steps", type=int, default=8, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pool", type=int, default=2048, help="images in the float32 pool")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bf16 autocast in both measurements (the loop's default)")
    ap.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)

    from sslcore.distributed import pick_device

    device = pick_device(args.device)
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    pool, augment, task = build(args, device)
    views = 1 if args.method == "mae" else 2
    full, optimizer_only = full_step(task, pool, args, device)
    fns = {"bare": bare_step(task, args, device, views), "full": full,
           "augment": augment_step(augment, pool, args, device, views),
           "optimizer": optimizer_only}
    if hasattr(task, "target_backbone"):
        fns["target"] = target_step(task, args, device, views)
    t = interleaved_seconds(fns, args.steps, args.warmup, device)
    t_bare, t_full, t_aug, t_opt = t["bare"], t["full"], t["augment"], t["optimizer"]
    overhead = (t_full - t_bare) / t_bare
    # A method's second network (BYOL's EMA target) is model compute, not data path or loss.
    t_model_extra = t.get("target", 0.0)
    data_overhead = (t_full - t_model_extra - t_bare) / t_bare
    b = args.batch
    cmd = "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "unset") + " python " + \
        " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    verdict = "meets" if data_overhead < TARGET_OVERHEAD else "MISSES"
    text = "\n".join([
        f"## {args.method} on {args.model}, {args.channels} x {args.size} x {args.size}, "
        f"batch {b}, {'bf16' if args.bf16 else 'fp32'}",
        "",
        f"`{cmd}`  ",
        f"{dt.date.today().isoformat()}; {machine(device)}; median of {args.steps} timed "
        f"steps after {args.warmup} warm-up, measurements interleaved step by step; "
        f"load average before: {load_before}.",
        "",
        "| measurement | s / step | source images / s |",
        "|---|---|---|",
        f"| (a) bare backbone forward+backward ({views * b} images) | {t_bare:.3f} | "
        f"{b / t_bare:.1f} |",
        f"| (b) full pretraining step (pool rows, {views}x augment, loss, AdamW) | "
        f"{t_full:.3f} | {b / t_full:.1f} |",
        f"| augmentation pipeline alone ({views} views) | {t_aug:.3f} | {b / t_aug:.0f} |",
        f"| AdamW step alone | {t_opt:.3f} | |",
        *([f"| EMA target forward alone (part of the method, not of the data path) | "
           f"{t['target']:.3f} | |"] if "target" in t else []),
        *(["| (MAE's encoder sees only the visible 25% of patches; (a) is whole images) "
           "| | |"] if args.method == "mae" else []),
        "",
        (f"Overhead (t_full - t_target - t_bare) / t_bare = **{100 * data_overhead:.1f}%** "
         f"({verdict} the {100 * TARGET_OVERHEAD:.0f}% target); with the EMA target's "
         f"forward, (t_full - t_bare) / t_bare = {100 * overhead:.1f}%."
         if "target" in t else
         f"Overhead (t_full - t_bare) / t_bare = **{100 * overhead:.1f}%** ({verdict} the "
         f"{100 * TARGET_OVERHEAD:.0f}% target)."),
        "",
    ])
    print(text)
    if not args.no_write:
        write_result(text)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
