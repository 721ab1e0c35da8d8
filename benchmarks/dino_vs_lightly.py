"""Our DINO vs lightly's DINO: same backbone, crops, batch, data and epochs, in one run.

    python benchmarks/dino_vs_lightly.py [--pool 2048] [--epochs 5] [--batch 64] [--threads 2]

Both arms pretrain a timm ViT-Tiny (8 px patches, 64 px tiles, random init) with DINO
(2 global 64 px crops + 6 local 32 px crops, projection head 192 -> 512 -> 128 -> 2048 with a
weight-normalized last layer frozen for the first epoch, AdamW lr 5e-4, teacher momentum 0.996
-> 1 on a cosine, teacher temperature 0.04, center momentum 0.9) on the CPU, then embed a
labeled bank and a test set and score a weighted kNN (k = 20, T = 0.07, the same code for
both). sslcore runs twice: with its default bf16 autocast (the headline) and in float32 like
lightly's example, so the precision's share of the difference is visible. Reported per arm:
pretraining images/s (tiles per second through the whole step: views, teacher, student, loss,
optimizer), peak resident memory of the arm's process, kNN accuracy, and the final loss.

- lightly: ``DINOTransform`` (PIL, per sample, in a ``DataLoader`` without workers, as in
  lightly's DINO example), ``DINOProjectionHead``, ``DINOLoss``, ``update_momentum`` and
  ``cosine_schedule``; views go through the model one by one, as in that example.
- sslcore: the ``dino`` pretext task of the satellite plugin through sslcore's pretraining loop
  (batched multi-crop tensor ops, globals and locals each in one forward pass).

lightly's transform is for RGB photographs (colour jitter, greyscale, solarization on PIL
images), so both arms get the same 3-band RGB tiles (the synthetic Sentinel-2 tiles' B04, B03,
B02, stretched to 8 bits), not the 13 bands. Photometric augmentations differ by design
(lightly: colour jitter, greyscale, solarization; ours: brightness, contrast, per-band gain,
band dropout); geometry (resized crops, flips, 90-degree rotations) and blur match.

Each arm runs in its own process (``--arm``), so peak memory is that arm's alone. Writes
benchmarks/results/dino_vs_lightly.md with the command, machine and date. Without lightly
installed, the lightly arm is skipped with a message (it is not a dependency of sslcore:
``pip install lightly`` next to the pinned torch to run it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEAD = {"hidden_dim": 512, "bottleneck_dim": 128, "out_dim": 2048}
LR, WEIGHT_DECAY, MOMENTUM, N_LOCAL, GLOBAL, LOCAL = 5e-4, 0.04, 0.996, 6, 64, 32
RESULT = Path(__file__).parent / "results" / "dino_vs_lightly.md"
ARMS = ("sslcore", "sslcore_fp32", "lightly")  # sslcore: bf16 autocast (its default)


# ----------------------------------------------------------------------------- data

def make_data(path: Path, pool: int, n_bank: int, n_test: int, seed: int) -> None:
    """Synthetic tiles -> 8-bit RGB arrays (N, 64, 64, 3) for pool, kNN bank and test set."""
    import numpy as np

    from sslcore_satellite.bands import RGB
    from sslcore_satellite.synthetic import generate_tiles

    def rgb(n: int, stream: int) -> tuple:
        x, y = generate_tiles(n, size=GLOBAL, seed=seed, stream=stream)
        img = np.clip(x[:, list(RGB)] * 3.0 * 255.0, 0, 255).astype(np.uint8)
        return img.transpose(0, 2, 3, 1).copy(), y

    pool_x, _ = rgb(pool, 0)
    bank_x, bank_y = rgb(n_bank, 1)
    test_x, test_y = rgb(n_test, 2)
    np.savez(path, pool=pool_x, bank=bank_x, bank_y=bank_y, test=test_x, test_y=test_y)


def vit():  # type: ignore[no-untyped-def]
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                             in_chans=3, img_size=GLOBAL, patch_size=8, dynamic_img_size=True)


def knn_accuracy(embed_fn, data) -> float:  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F

    from sslcore_satellite.knn import weighted_knn_proba

    bank = F.normalize(embed_fn(data["bank"]), dim=1)
    test = F.normalize(embed_fn(data["test"]), dim=1)
    proba = weighted_knn_proba(test, bank, torch.from_numpy(data["bank_y"]), 10, 20, 0.07)
    return float((proba.argmax(1).numpy() == data["test_y"]).mean())


# ----------------------------------------------------------------------------- arms

def run_ours(data, epochs: int, batch: int, bf16: bool) -> dict:  # type: ignore[no-untyped-def]
    import numpy as np
    import torch

    from sslcore.builtins.backbones.timm_backbone import TimmBackbone, TimmParams
    from sslcore.config import PretrainConfig
    from sslcore.train.pretrain import pretrain_encoder
    from sslcore.train.supervised import embed
    from sslcore_satellite.dino import DINO, DINOParams

    to_float = lambda a: (a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # noqa: E731
    pool = to_float(data["pool"])
    torch.manual_seed(0)
    backbone = TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", patch_size=8),
                            input_shape=(3, GLOBAL, GLOBAL))
    backbone.fit_normalizer(pool)
    steps_per_epoch = len(pool) // batch
    params = DINOParams(n_local_crops=N_LOCAL, global_crop_size=GLOBAL, local_crop_size=LOCAL,
                        momentum=MOMENTUM, total_steps=steps_per_epoch * epochs,
                        freeze_last_layer_steps=steps_per_epoch, blur_p_global=0.5,
                        blur_p_local=0.5, **HEAD)
    task = DINO(params, backbone=backbone, input_shape=(3, GLOBAL, GLOBAL))
    cfg = PretrainConfig(epochs=epochs, batch_size=batch, lr=LR, weight_decay=WEIGHT_DECAY,
                         bf16=bf16, checkpoint_every=10**9, log_every=10**9)
    with tempfile.TemporaryDirectory() as ckpt:
        start = time.perf_counter()
        result = pretrain_encoder(task, pool, cfg, checkpoint_dir=ckpt, progress=False)
        wall = time.perf_counter() - start
    cpu = torch.device("cpu")
    acc = knn_accuracy(lambda a: torch.from_numpy(embed(task.backbone, to_float(a), cpu)), data)
    return {"steps": result.steps, "wall_s": wall, "images_per_s": result.steps * batch / wall,
            "knn_accuracy": acc, "final_loss": result.losses[-1]}


def run_lightly(data, epochs: int, batch: int) -> dict:  # type: ignore[no-untyped-def]
    import copy

    import torch
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms.dino_transform import DINOTransform
    from lightly.utils.scheduler import cosine_schedule
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    transform = DINOTransform(global_crop_size=GLOBAL, local_crop_size=LOCAL,
                              n_local_views=N_LOCAL, vf_prob=0.5, rr_prob=0.5)

    class Tiles(Dataset):
        def __init__(self, images) -> None:  # type: ignore[no-untyped-def]
            self.images = images

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return transform(Image.fromarray(self.images[i]))

    class LightlyDINO(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student_backbone = vit()
            self.student_head = DINOProjectionHead(192, HEAD["hidden_dim"],
                                                   HEAD["bottleneck_dim"], HEAD["out_dim"],
                                                   freeze_last_layer=1)
            self.teacher_backbone = copy.deepcopy(self.student_backbone)
            self.teacher_head = DINOProjectionHead(192, HEAD["hidden_dim"],
                                                   HEAD["bottleneck_dim"], HEAD["out_dim"])
            deactivate_requires_grad(self.teacher_backbone)
            deactivate_requires_grad(self.teacher_head)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.student_head(self.student_backbone(x))

        def forward_teacher(self, x):  # type: ignore[no-untyped-def]
            return self.teacher_head(self.teacher_backbone(x))

    torch.manual_seed(0)
    model = LightlyDINO()
    criterion = DINOLoss(output_dim=HEAD["out_dim"], warmup_teacher_temp_epochs=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(Tiles(data["pool"]), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=0)
    total, step, losses = epochs * len(loader), 0, []
    start = time.perf_counter()
    for epoch in range(epochs):
        for views in loader:
            m = cosine_schedule(step, total, MOMENTUM, 1.0)
            update_momentum(model.student_backbone, model.teacher_backbone, m=m)
            update_momentum(model.student_head, model.teacher_head, m=m)
            teacher_out = [model.forward_teacher(v) for v in views[:2]]
            student_out = [model.forward(v) for v in views]
            loss = criterion(teacher_out, student_out, epoch=epoch)
            loss.backward()
            model.student_head.cancel_last_layer_gradients(current_epoch=epoch)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
    wall = time.perf_counter() - start
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    backbone = model.student_backbone.eval()

    @torch.no_grad()
    def embed(a):  # type: ignore[no-untyped-def]
        x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0
        return torch.cat([backbone((x[i:i + 512] - mean) / std) for i in range(0, len(x), 512)])

    return {"steps": step, "wall_s": wall, "images_per_s": step * batch / wall,
            "knn_accuracy": knn_accuracy(embed, data), "final_loss": losses[-1]}


def arm_main(arm: str, data_path: str, epochs: int, batch: int, threads: int) -> None:
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    with np.load(data_path) as z:
        data = {k: z[k] for k in z.files}
    if arm == "lightly":
        out = run_lightly(data, epochs, batch)
    else:
        out = run_ours(data, epochs, batch, bf16=arm == "sslcore")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


# ----------------------------------------------------------------------------- driver

def _run_arm(arm: str, data_path: Path, args: argparse.Namespace) -> dict | str:
    cmd = [sys.executable, __file__, "--arm", arm, "--data", str(data_path), "--epochs",
           str(args.epochs), "--batch", str(args.batch), "--threads", str(args.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=2048, help="unlabeled tiles")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per arm")
    parser.add_argument("--bank", type=int, default=1000, help="labeled tiles for kNN")
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per arm, alternating; "
                        "the median images/s is reported (use 2-3 on a shared machine)")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        arm_main(args.arm, args.data, args.epochs, args.batch, args.threads)
        return 0

    import importlib.util

    arms = list(ARMS)
    if importlib.util.find_spec("lightly") is None:
        arms.remove("lightly")
        print("lightly is not installed: skipping its arm", file=sys.stderr)
    runs: dict[str, list[dict | str]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "tiles.npz"
        make_data(data_path, args.pool, args.bank, args.test, seed=0)
        for _ in range(args.repeats):  # arms alternate, so a busy spell hits all of them
            for arm in arms:
                runs[arm].append(_run_arm(arm, data_path, args))
    results: dict[str, dict | str] = {arm: _combine(r) for arm, r in runs.items()}
    if "lightly" not in results:
        results["lightly"] = "skipped: lightly is not installed (pip install lightly)"
    write_report(results, args)
    return 0 if isinstance(results["sslcore"], dict) else 1


def _combine(runs: list[dict | str]) -> dict | str:
    """Median images/s, max peak RSS, mean kNN accuracy and loss over an arm's repeats."""
    import statistics

    ok = [r for r in runs if isinstance(r, dict)]
    if not ok:
        return str(runs[0])
    speeds = [r["images_per_s"] for r in ok]
    return {"images_per_s": statistics.median(speeds), "all_images_per_s": speeds,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
            "knn_accuracy": statistics.fmean(r["knn_accuracy"] for r in ok),
            "final_loss": statistics.fmean(r["final_loss"] for r in ok), "steps": ok[0]["steps"]}


def write_report(results: dict[str, dict | str], args: argparse.Namespace) -> None:
    cmd = (f"python benchmarks/dino_vs_lightly.py --pool {args.pool} --epochs {args.epochs} "
           f"--batch {args.batch} --threads {args.threads} --repeats {args.repeats}")
    lines = [f"<!-- command: {cmd} | machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()} | date: {date.today()} -->",
             "# DINO: sslcore vs lightly", "",
             f"ViT-Tiny/8 at 64 px, RGB tiles, 2 x 64 px + {N_LOCAL} x 32 px crops, batch "
             f"{args.batch}, {args.epochs} epochs over {args.pool} tiles, "
             f"{args.threads} torch threads; kNN (k=20) with {args.bank} labeled tiles, "
             f"{args.test} test tiles. sslcore: bf16 autocast (its default); sslcore_fp32 "
             "and lightly: float32.", "",
             f"Each arm ran {args.repeats} time(s), alternating with the others: median "
             "images/s (every run in brackets), largest peak RSS, mean kNN accuracy and loss.",
             "", "| arm | images/s | peak RSS (MB) | kNN accuracy | final loss | steps |",
             "|---|---|---|---|---|---|"]
    for arm, r in results.items():
        if isinstance(r, dict):
            each = ", ".join(f"{v:.1f}" for v in r["all_images_per_s"])
            lines.append(f"| {arm} | {r['images_per_s']:.1f} ({each}) | "
                         f"{r['peak_rss_mb']:.0f} | {r['knn_accuracy']:.4f} | "
                         f"{r['final_loss']:.3f} | {r['steps']} |")
        else:
            lines.append(f"| {arm} | {r} | | | | |")
    theirs = results.get("lightly")
    for arm in ("sslcore", "sslcore_fp32"):
        ours = results.get(arm)
        if isinstance(ours, dict) and isinstance(theirs, dict):
            lines += ["", f"{arm} / lightly: throughput "
                      f"**{ours['images_per_s'] / theirs['images_per_s']:.2f}x**, kNN accuracy "
                      f"{100 * (ours['knn_accuracy'] - theirs['knn_accuracy']):+.1f} points."]
    text = "\n".join(lines) + "\n"
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
