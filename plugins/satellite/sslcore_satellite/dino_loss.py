"""DINO's loss: cross-entropy between a centered, sharpened teacher and the student, over crops.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), ICCV 2021,
Algorithm 1 and Section 3.1; reference code facebookresearch/dino ``main_dino.py::DINOLoss``.

For teacher outputs ``t`` on the 2 global crops and student outputs ``s`` on all ``V`` crops::

    P_t = softmax((t - c) / tau_t)        # centering (c) and sharpening (tau_t small)
    P_s = softmax(s / tau_s)
    loss = mean over pairs (global crop i, crop v != i) of  -sum_k P_t[i, k] log P_s[v, k]

Centering stops one prototype from dominating and sharpening stops the uniform solution; the
two together avoid collapse. The center is an EMA of the teacher's batch mean:
``c <- m c + (1 - m) mean(t)``, averaged over ranks first so every rank keeps the same center.
Here the update is split in two: :meth:`DINOLoss.forward` only accumulates the batch mean, and
:meth:`DINOLoss.update_center` applies it once per optimizer step (from the pretext task's
``on_step_end``), so a loss evaluation never changes the module's state. With gradient
accumulation the center moves once per step by the mean of the micro-batches.

The teacher temperature warms up linearly from ``warmup_teacher_temp`` to ``teacher_temp``
over ``warmup_teacher_temp_steps`` optimizer steps (DINO: 0.04 -> 0.07 over 30 epochs), then
stays.

Example::

    loss_fn = DINOLoss(out_dim=4096, teacher_temp=0.07, warmup_teacher_temp=0.04,
                       warmup_teacher_temp_steps=500)
    loss = loss_fn(student_out, teacher_out, n_crops=8, step=step)
    ...                                # backward, optimizer step
    loss_fn.update_center()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcore.sdk import all_reduce_mean_


def teacher_temperature(step: int, warmup: float, final: float, warmup_steps: int) -> float:
    """Linear warm-up from ``warmup`` (at step 0) to ``final`` (at ``warmup_steps``), then flat."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return float(final)
    return float(warmup + (final - warmup) * step / warmup_steps)


def dino_cross_entropy(student: torch.Tensor, teacher_probs: torch.Tensor,
                       student_temp: float) -> torch.Tensor:
    """Mean cross-entropy over (teacher crop i, student crop v), ``v != i``.

    Args:
        student: ``(V, B, K)`` student logits for V crops (the first ones are the globals).
        teacher_probs: ``(G, B, K)`` teacher probabilities for the G global crops.
    """
    log_p = F.log_softmax(student.float() / student_temp, dim=-1)
    # (G, V): for every pair, the batch-mean cross-entropy, in one contraction over B and K.
    ce = -torch.einsum("gbk,vbk->gv", teacher_probs.float(), log_p) / student.shape[1]
    g, v = ce.shape
    same = torch.eye(g, v, dtype=torch.bool, device=ce.device)
    return ce.masked_select(~same).mean()


class DINOLoss(nn.Module):
    """Centered, sharpened teacher vs student cross-entropy, with the center as a buffer.

    Args:
        out_dim: number of prototypes K.
        student_temp: tau_s (0.1).
        teacher_temp: tau_t after warm-up (0.04 - 0.07).
        warmup_teacher_temp: tau_t at step 0.
        warmup_teacher_temp_steps: optimizer steps of the linear warm-up.
        center_momentum: m of the center EMA (0.9).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_teacher_temp_steps: int = 0,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = float(student_temp)
        self.teacher_temp = float(teacher_temp)
        self.warmup_teacher_temp = float(warmup_teacher_temp)
        self.warmup_teacher_temp_steps = int(warmup_teacher_temp_steps)
        self.center_momentum = float(center_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))
        # Teacher outputs seen since the last update_center(): sum and count (not state).
        self._pending: tuple[torch.Tensor, int] | None = None

    def temperature(self, step: int) -> float:
        return teacher_temperature(step, self.warmup_teacher_temp, self.teacher_temp,
                                   self.warmup_teacher_temp_steps)

    def teacher_probs(self, teacher_out: torch.Tensor, step: int) -> torch.Tensor:
        """``softmax((t - center) / tau_t(step))`` without gradient."""
        t = teacher_out.detach().float()
        return F.softmax((t - self.center) / self.temperature(step), dim=-1)

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, *, n_crops: int,
                step: int) -> torch.Tensor:
        """Loss of ``student_out`` ``(n_crops * B, K)`` against ``teacher_out`` ``(G * B, K)``
        (crop-major: rows ``[i*B:(i+1)*B]`` are crop i; the G teacher crops are the student's
        first G crops)."""
        b = student_out.shape[0] // n_crops
        k = student_out.shape[-1]
        probs = self.teacher_probs(teacher_out, step).view(-1, b, k)
        loss = dino_cross_entropy(student_out.view(n_crops, b, k), probs, self.student_temp)
        t = teacher_out.detach().float()
        total, count = (t.sum(dim=0, keepdim=True), t.shape[0])
        if self._pending is not None:
            total, count = total + self._pending[0], count + self._pending[1]
        self._pending = (total, count)
        return loss

    @torch.no_grad()
    def update_center(self) -> None:
        """``center <- m center + (1 - m) batch_center``, the batch center averaged over ranks
        (a collective under torchrun: every rank calls it once per optimizer step)."""
        if self._pending is None:
            return
        total, count = self._pending
        self._pending = None
        batch_center = all_reduce_mean_(total / count)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pending"] = None  # a pickled loss carries its center, not a half-done step
        return state
