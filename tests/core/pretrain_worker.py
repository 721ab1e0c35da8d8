"""A tiny deterministic pretraining job for the distributed and resume tests.

Not collected by pytest (no ``test_`` prefix). Run it as a script, alone or under torchrun::

    python tests/core/pretrain_worker.py --out out.json --ckpt ckpt/ --max-steps 12
    torchrun --standalone --nproc_per_node 2 tests/core/pretrain_worker.py --out out.json ...

Rank 0 writes a JSON file with the per-step losses, the step count and every final parameter
as a flat list of floats (JSON round-trips doubles exactly). ``SSLCORE_TEST_STEP_SLEEP``
(seconds) slows each step down so a test can kill the run mid-way; ``--progress-file`` gets the
latest step number after each step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sslcore.builtins.pretext.simclr import nt_xent
from sslcore.config import PretrainConfig
from sslcore.contracts import PretextTask
from sslcore.data.parquet_pool import ParquetPool
from sslcore.distributed import cleanup_distributed, rank, world_size
from sslcore.train.pretrain import PretrainResult, pretrain_encoder

IN_DIM, EMBED_DIM = 8, 4


class ToyBackbone(nn.Module):
    embed_dim = EMBED_DIM

    def __init__(self, dropout: float = 0.0, batchnorm: bool = False) -> None:
        super().__init__()
        norm = nn.BatchNorm1d(16) if batchnorm else nn.Identity()
        # No bias before BatchNorm: its gradient is float noise that Adam would amplify.
        self.net = nn.Sequential(nn.Linear(IN_DIM, 16, bias=not batchnorm), norm, nn.Tanh(), nn.Dropout(dropout),
                                 nn.Linear(16, EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ToyTask(PretextTask):
    """Regress a fixed nonlinear function of x from the embedding: a per-sample-mean loss.

    ``noise`` adds input noise drawn from the step generator; ``dropout`` draws from the global
    RNG. Both default to 0 so that 1 process and N ranks follow the same trajectory.
    """

    def __init__(self, noise: float = 0.0, dropout: float = 0.0, sleep: float = 0.0,
                 progress_file: str | None = None, batchnorm: bool = False,
                 contrastive: bool = False) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # same init everywhere, caller's RNG untouched
            torch.manual_seed(0)
            self.backbone = ToyBackbone(dropout, batchnorm)
            self.head = nn.Linear(EMBED_DIM, 2)
        self.contrastive = contrastive
        self.noise, self.sleep, self.progress_file = noise, sleep, progress_file
        self.steps_seen = 0

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = batch
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device)
        if self.contrastive:  # NT-Xent with global negatives; a deterministic second view
            z = self.head(self.backbone(torch.cat([x, 0.5 * (x + x.flip(1))])))
            return nt_xent(*z.chunk(2), temperature=0.5)
        target = torch.stack([batch[:, :4].sum(1).sin(), (batch[:, 4:] ** 2).mean(1)], dim=1)
        return ((self.head(self.backbone(x)) - target) ** 2).mean()

    def on_step_end(self) -> None:
        self.steps_seen += 1
        if self.progress_file and rank() == 0:
            Path(self.progress_file).write_text(str(self.steps_seen))
        if self.sleep:
            time.sleep(self.sleep)


def make_data(n: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, IN_DIM)).astype(np.float32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--progress-file", default=None)
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm in the backbone")
    p.add_argument("--pid-dir", default=None, help="write rank<r>.pid files here")
    p.add_argument("--parquet-dir", default=None,
                   help="stream the pool from these Parquet files (columns f0..f7)")
    p.add_argument("--contrastive", action="store_true", help="NT-Xent instead of regression")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> PretrainConfig:
    return PretrainConfig(epochs=args.epochs, max_steps=args.max_steps, lr=args.lr,
                          batch_size=args.batch_size, grad_accum_steps=args.accum,
                          warmup_steps=2, weight_decay=1e-4, bf16=False, seed=0,
                          checkpoint_every=args.checkpoint_every, log_every=args.log_every)


def run(args: argparse.Namespace) -> tuple[ToyTask, PretrainResult, dict]:
    """Train the toy task; return it, the result and the JSON-able summary."""
    sleep = float(os.environ.get("SSLCORE_TEST_STEP_SLEEP", "0") or 0)
    task = ToyTask(noise=args.noise, dropout=args.dropout, sleep=sleep,
                   progress_file=args.progress_file, batchnorm=args.batchnorm,
                   contrastive=args.contrastive)
    if args.pid_dir:  # lets a test kill one rank
        Path(args.pid_dir, f"rank{rank()}.pid").write_text(str(os.getpid()))
    pool = (ParquetPool(sorted(Path(args.parquet_dir).glob("*.parquet")),
                        [f"f{i}" for i in range(IN_DIM)]) if args.parquet_dir else make_data(args.n))
    result = pretrain_encoder(task, pool, config(args), checkpoint_dir=args.ckpt,
                              resume=args.resume, progress=False)
    params = torch.cat([t.detach().double().flatten().cpu() for t in task.state_dict().values()])
    summary = {"losses": result.losses, "steps": result.steps,
               "epochs_completed": result.epochs_completed, "world_size": world_size(),
               "resumed_from_step": result.resumed_from_step, "params": params.tolist()}
    return task, result, summary


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)  # deterministic float sums, and 2 ranks fit on 2 cores
    args = parse_args(argv)
    try:
        _, _, summary = run(args)
        if rank() == 0 and args.out:
            tmp = Path(args.out + ".tmp")
            tmp.write_text(json.dumps(summary))
            os.replace(tmp, args.out)
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
