"""Batch-norm statistics over the global batch under torchrun, on GPUs and on CPUs.

With DDP each rank normalises with its own slice of the batch, so N ranks of B/N rows do not
compute what one process with B rows computes. ``torch.nn.SyncBatchNorm`` fixes that on GPUs
only; :class:`CrossRankBatchNorm` does the same over any backend (gloo on CPU): the per-channel
sum, sum of squares and count are all-reduced with gradients, so forward and backward match a
single process with the global batch. Outside a process group it is an ordinary BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from sslcore.distributed import is_distributed


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum over ranks is the summed gradient."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        import torch.distributed as dist

        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        import torch.distributed as dist

        out = grad.clone()
        dist.all_reduce(out)
        return out


class CrossRankBatchNorm(_BatchNorm):
    """BatchNorm1d/2d/3d whose training statistics cover every rank's rows."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
                self.num_batches_tracked += 1
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm in ``module`` use global-batch statistics (in place; returned).

    CUDA gets ``torch.nn.SyncBatchNorm`` (NCCL kernels); other devices get
    :class:`CrossRankBatchNorm`. Parameters and buffers are kept, so state dicts still load.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, CrossRankBatchNorm):
            new = CrossRankBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new.to(next(child.buffers(), torch.empty(0)).device))
        else:
            sync_batchnorm(child, device)
    return module
