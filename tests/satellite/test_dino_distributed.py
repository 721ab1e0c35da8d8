"""DINO's center stays identical across ranks: two gloo processes, different teacher batches."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from sslcore_satellite.dino_loss import DINOLoss

        loss_fn = DINOLoss(out_dim=2, center_momentum=0.5)
        teacher = torch.full((2, 2), float(rank))  # rank 0 sees zeros, rank 1 ones
        loss_fn(torch.zeros(4, 2), teacher, n_crops=2, step=0)
        loss_fn.update_center()
        torch.save(loss_fn.center, f"{out}/center{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_center_is_averaged_over_ranks(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    centers = [torch.load(tmp_path / f"center{r}.pt") for r in range(2)]
    # Global batch mean 0.5, EMA with momentum 0.5 from 0: 0.25 on both ranks.
    for c in centers:
        assert torch.allclose(c, torch.full((1, 2), 0.25))
