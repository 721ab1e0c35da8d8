"""DINO's center stays identical across ranks: two gloo processes, different teacher batches.

The worker runs as a script under torchrun (CPU, gloo), like a real job: nothing from this test
module has to be importable in the ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

WORKER = textwrap.dedent('''
    import sys

    import torch
    import torch.distributed as dist

    from sslcore_satellite.dino_loss import DINOLoss

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    try:
        loss_fn = DINOLoss(out_dim=2, center_momentum=0.5)
        teacher = torch.full((2, 2), float(rank))  # rank 0 sees zeros, rank 1 ones
        loss_fn(torch.zeros(4, 2), teacher, n_crops=2, step=0)
        loss_fn.update_center()
        torch.save(loss_fn.center, f"{sys.argv[1]}/center{rank}.pt")
    finally:
        dist.destroy_process_group()
''')


@pytest.mark.slow
def test_center_is_averaged_over_ranks(tmp_path):
    script = tmp_path / "center_worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                        "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    centers = [torch.load(tmp_path / f"center{r}.pt") for r in range(2)]
    # Global batch mean 0.5, EMA with momentum 0.5 from 0: 0.25 on both ranks.
    for c in centers:
        assert torch.allclose(c, torch.full((1, 2), 0.25))
