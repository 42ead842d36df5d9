"""Soft targets from teacher logits: temperature rescaling and teacher stacking.

Score scale: every function here takes and returns *raw logits* (float32),
except :func:`soft_targets`, which turns a logit into a probability target
``sigmoid(z / T)`` in ``[0, 1]``.  ``T > 1`` softens the targets (more of the
teacher's ranking information survives for near-certain pairs); ``T = 1`` is
plain distillation.

Stacking combines ``K`` teachers.  The baseline is the plain mean of their
logits; :func:`fit_stacker` fits a logistic regression ``w . z + b`` on a
labeled split the teachers were *not* trained on, so its output is again a
calibrated logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from distilrank.metrics import binary_nll, expected_calibration_error, sigmoid


def soft_targets(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``sigmoid(logits / temperature)`` as float32, same shape as ``logits``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature).astype(np.float32)


def temperature_sweep(logits: np.ndarray, labels: np.ndarray, temperatures: Sequence[float]) -> list[dict]:
    """Calibration of the teacher's soft targets on a labeled dev set, one row per ``T``.

    Each row: ``{"temperature", "nll", "ece", "mean_confidence", "target_entropy"}``;
    ``target_entropy`` (bits) shows how much softer the targets become.  ``nll`` and ``ece`` are
    :func:`distilrank.metrics.binary_nll` and ``expected_calibration_error`` of ``logits / T``
    (the one sigmoid / NLL / ECE over logits of the project).
    Accuracy does not depend on ``T``; the student's dev accuracy per ``T`` is
    measured by training one student per value (see :mod:`distilrank.distill.pipeline`).
    """
    rows = []
    for t in temperatures:
        p = soft_targets(logits, t).astype(np.float64)
        q = np.clip(p, 1e-12, 1 - 1e-12)
        entropy = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
        rows.append({
            "temperature": float(t),
            "nll": binary_nll(np.asarray(logits) / t, labels),
            "ece": expected_calibration_error(np.asarray(logits, dtype=np.float64) / t, labels),
            "mean_confidence": float(np.mean(np.maximum(p, 1 - p))),
            "target_entropy": float(entropy.mean()),
        })
    return rows


def best_calibration_temperature(logits: np.ndarray, labels: np.ndarray, grid: Sequence[float] | None = None) -> float:
    """The ``T`` that minimises dev NLL (classic temperature scaling), searched on ``grid``."""
    grid = list(grid) if grid is not None else list(np.exp(np.linspace(np.log(0.25), np.log(16), 97)))
    return float(min(grid, key=lambda t: binary_nll(np.asarray(logits) / t, labels)))


def average_logits(teacher_logits: np.ndarray) -> np.ndarray:
    """Baseline combination: mean over teachers. ``[K, N] -> [N]``."""
    return np.asarray(teacher_logits, dtype=np.float32).mean(axis=0)


@dataclass
class Stacker:
    """Logistic-regression stacker: ``stacked = weights . z + bias`` (a logit)."""

    weights: list[float]
    bias: float
    teachers: list[str]
    l2: float
    n_train: int

    def apply(self, teacher_logits: np.ndarray) -> np.ndarray:
        """``[K, N]`` teacher logits (same teacher order as fitted) -> stacked logits ``[N]`` float32."""
        z = np.asarray(teacher_logits, dtype=np.float64)
        if z.shape[0] != len(self.weights):
            raise ValueError(f"stacker was fitted on {len(self.weights)} teachers, got logits for {z.shape[0]}")
        return (np.asarray(self.weights) @ z + self.bias).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_stacker(
    teacher_logits: np.ndarray, labels: np.ndarray, teachers: Sequence[str], *, l2: float = 1e-2, iterations: int = 50
) -> Stacker:
    """Fit logistic regression on held-out labeled logits ``[K, N]`` with Newton's method.

    ``labels`` are binary, or graded values in ``[0, 1]`` (the loss is
    cross-entropy, which accepts soft labels).  ``l2`` penalises the weights
    (not the bias).  Deterministic.
    """
    z = np.asarray(teacher_logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != y.shape[0]:
        raise ValueError(f"teacher_logits must be [K, N] with N = len(labels); got {z.shape} and {y.shape}")
    k, n = z.shape
    # Fit on standardised inputs (teachers may be on very different scales: logits, cosines, BM25
    # scores), then fold the scaling back into the weights; l2 acts on the standardised weights.
    mu, sd = z.mean(axis=1), z.std(axis=1)
    sd = np.where(sd > 0, sd, 1.0)
    x = np.vstack([(z - mu[:, None]) / sd[:, None], np.ones(n)]).T  # [N, K+1]
    theta = np.zeros(k + 1)
    reg = np.full(k + 1, l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = sigmoid(x @ theta)
        grad = x.T @ (p - y) / n + reg * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x / n + np.diag(reg) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    w = theta[:k] / sd
    theta = np.append(w, theta[k] - float(w @ mu))
    return Stacker(weights=theta[:k].tolist(), bias=float(theta[k]), teachers=list(teachers), l2=l2, n_train=n)
