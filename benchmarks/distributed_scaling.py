"""Pretraining throughput on 1 vs N processes (torchrun), and how the data path scales.

Part 1 runs the same pretraining job (same global batch, same steps) as one process and under
torchrun with N processes, and reports samples/s from the loop itself (wall time of the
optimizer steps, after a warm-up). Part 2 streams one epoch of a rank's shard of a
:class:`~sslcore.data.parquet_pool.ParquetPool` for growing dataset sizes and reports rows/s
and the peak resident memory the reader added, against what loading the pool whole would take.

    python benchmarks/distributed_scaling.py --procs 1 2 --sizes 1000000 4000000 10000000

Writes ``benchmarks/results/distributed_scaling.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed_scaling.md"
N_FEATURES = 32


def _task(kind: str):
    """The pretext task of a workload, on a fresh backbone (same init on every rank)."""
    import torch

    torch.manual_seed(0)
    if kind == "tabular":
        from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
        from sslcore.builtins.pretext.scarf import Scarf, ScarfParams

        backbone = MLPBackbone(MLPParams(hidden_dims=[256, 256], embed_dim=128),
                               input_shape=(N_FEATURES,))
        return Scarf(ScarfParams(), backbone=backbone), (N_FEATURES,)
    from sslcore.builtins.augmentations.image import RandomResizedCrop, RandomResizedCropParams
    from sslcore.builtins.backbones.timm_backbone import ResNet18Params, resnet18
    from sslcore.builtins.pretext.simclr import SimCLR, SimCLRParams

    shape = (1, 64, 64)
    backbone = resnet18(ResNet18Params(), input_shape=shape)
    augment = RandomResizedCrop(RandomResizedCropParams(scale=(0.4, 1.0)))
    return SimCLR(SimCLRParams(), backbone=backbone, augment=augment, input_shape=shape), shape


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process) of part 1; rank 0 writes the result as JSON."""
    import torch

    from sslcore.config import PretrainConfig
    from sslcore.distributed import cleanup_distributed, rank, world_size
    from sslcore.train.pretrain import pretrain_encoder

    torch.set_num_threads(max(1, args.threads // world_size()))
    task, shape = _task(args.workload)
    pool = np.random.default_rng(0).standard_normal((args.rows, *shape)).astype(np.float32)
    cfg = PretrainConfig(epochs=1000, max_steps=args.steps, batch_size=args.batch,
                         log_every=10_000, checkpoint_every=10_000, bf16=args.bf16)
    with tempfile.TemporaryDirectory() as ckpt:
        warm = PretrainConfig(**(cfg.model_dump() | {"max_steps": 3}))
        pretrain_encoder(task, pool, warm, checkpoint_dir=ckpt, progress=False)
        task, _ = _task(args.workload)
        result = pretrain_encoder(task, pool, cfg, checkpoint_dir=ckpt, progress=False)
    if rank() == 0:
        Path(args.out).write_text(json.dumps({"samples_per_second": result.samples_per_second,
                                              "world": world_size()}))
    cleanup_distributed()


def run_procs(workload: str, procs: int, steps: int, batch: int, rows: int, bf16: bool,
              threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        me = [str(Path(__file__).resolve()), "--worker", "--workload", workload, "--steps",
              str(steps), "--batch", str(batch), "--rows", str(rows), "--out", str(out),
              "--threads", str(threads)] + (["--bf16"] if bf16 else [])
        cmd = ([sys.executable, *me] if procs == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(procs), *me])
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // procs)),
               "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, check=True, env=env, cwd=tmp)
        return json.loads(out.read_text())["samples_per_second"]


class PeakRSS:
    """Samples this process's resident memory in a thread; ``peak`` minus ``start`` in MB."""

    def __enter__(self) -> PeakRSS:
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def data_path(sizes: list[int], world: int, batch: int, tmp: Path) -> list[dict]:
    import polars as pl

    from sslcore.data.parquet_pool import ParquetPool

    rows = []
    for n in sizes:
        files = []
        rng = np.random.default_rng(n)
        per_file = min(n, 1_000_000)
        for f in range(0, n, per_file):  # ~1M-row files of 64k-row row groups, as writers do
            frame = pl.DataFrame(rng.standard_normal((min(per_file, n - f), N_FEATURES))
                                 .astype(np.float32), schema=[f"f{i}" for i in range(N_FEATURES)])
            path = tmp / f"n{n}_{f}.parquet"
            frame.write_parquet(path, row_group_size=65_536)
            files.append(path)
        pool = ParquetPool(files, [f"f{i}" for i in range(N_FEATURES)])
        local = batch // world
        steps = pool.steps_per_epoch(world, local)
        shard = pool.shard(0, world)
        with PeakRSS() as mem:
            start = time.perf_counter()
            for pos in range(steps):
                shard.batch(0, pos, local, seed=0)
            seconds = time.perf_counter() - start
        rows.append({"rows": n, "rank_rows": steps * local, "seconds": seconds,
                     "rows_per_second": steps * local / seconds, "reader_peak_mb": mem.added_mb,
                     "whole_pool_mb": n * N_FEATURES * 4 / 2**20})
        for path in files:
            path.unlink()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workload", choices=["tabular", "image"], default="tabular")
    p.add_argument("--workloads", nargs="+", default=["tabular", "image"])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads shared by all processes of a run")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000, 10_000_000])
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    lines = [f"# Distributed pretraining and data-path scaling\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
             f"{'CUDA' if _cuda() else 'no GPU'}; date {dt.date.today()}; load average "
             f"before the run {', '.join(f'{v:.1f}' for v in os.getloadavg())}.",
             f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`\n",
             "## Pretraining samples/s, 1 vs N processes (same global batch and steps)\n",
             "| workload | processes | threads each | samples/s | vs 1 process |",
             "|---|---|---|---|---|"]
    for workload in args.workloads:
        batch = args.batch if workload == "tabular" else 64
        steps = args.steps if workload == "tabular" else max(6, args.steps // 4)
        rows = args.rows if workload == "tabular" else 2_000
        base = None
        for procs in args.procs:
            sps = run_procs(workload, procs, steps, batch, rows, args.bf16, args.threads)
            base = base or sps
            lines.append(f"| {workload} (batch {batch}) | {procs} | "
                         f"{max(1, args.threads // procs)} | {sps:,.0f} | {sps / base:.2f}x |")
            print(lines[-1], flush=True)
    lines += ["", "## Data path: one rank's epoch of a sharded Parquet pool (world size 2)\n",
              "| rows in pool | rows this rank read | seconds | rows/s | reader peak MB | "
              "whole pool in memory MB |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for r in data_path(args.sizes, 2, args.batch, Path(tmp)):
            lines.append(f"| {r['rows']:,} | {r['rank_rows']:,} | {r['seconds']:.1f} | "
                         f"{r['rows_per_second']:,.0f} | {r['reader_peak_mb']:.0f} | "
                         f"{r['whole_pool_mb']:,.0f} |")
            print(lines[-1], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
