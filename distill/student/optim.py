"""Lazy (row-sparse) Adam for the student's large embedding table.

Dense Adam would touch all ``vocab + buckets`` rows every step; a batch only
uses a few thousand.  :class:`RowSparseAdam` updates just the rows a batch used
(TensorFlow's ``LazyAdam``), with per-row moments and a global bias-correction
step.  The caller looks rows up once per distinct id and hands their dense
gradient back, which avoids the sparse-gradient coalescing that makes
``torch.optim.SparseAdam`` the bottleneck on a CPU.
"""

from __future__ import annotations

import math

import torch


class RowSparseAdam:
    """Adam on selected rows of ``weight`` ``[R, D]``.

    ``step(rows, grad)``: ``rows`` int64 ``[U]`` distinct row indices, ``grad``
    float32 ``[U, D]`` the loss gradient for those rows.
    """

    def __init__(self, weight: torch.Tensor, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.weight = weight
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = torch.zeros_like(weight)
        self.exp_avg_sq = torch.zeros_like(weight)

    @torch.no_grad()
    def step(self, rows: torch.Tensor, grad: torch.Tensor) -> None:
        self.step_count += 1
        m = self.exp_avg.index_select(0, rows).mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v = self.exp_avg_sq.index_select(0, rows).mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        self.exp_avg.index_copy_(0, rows, m)
        self.exp_avg_sq.index_copy_(0, rows, v)
        bias1 = 1 - self.beta1**self.step_count
        bias2 = 1 - self.beta2**self.step_count
        denom = v.sqrt_().div_(math.sqrt(bias2)).add_(self.eps)
        self.weight.index_add_(0, rows, m.div_(denom), alpha=-self.lr / bias1)

    def state_dict(self) -> dict:
        return {"step": self.step_count, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.lr = float(state["lr"])
