"""The rescorer's blend of the first-pass score and the student's logit, computed offline exactly as the node does.

One shard's rescore window holds ``n`` hits in first-pass order with first-pass scores ``s`` (BM25) and student
logits ``z``.  With ``score_mode = "blend"`` the node scores each hit of the window as::

    combined = query_weight * norm(s) + model_weight * norm(z)

where ``norm`` is applied to each signal *within the window* (neural-search's names):

* ``none``: the raw value;
* ``min_max``: ``(x - min) / (max - min)`` in ``[0, 1]``;
* ``z_score``: ``(x - mean) / std`` (population standard deviation).

A window of one hit, or a signal with zero range / zero variance, normalises to 0 for every hit (that signal
carries no order in the window, so it contributes nothing).  Arithmetic is float64, the combined score is cast to
float32 (as the Java rescorer does).  Hits past the window score below the window's lowest combined score and keep
their first-pass order.  ``score_mode = "replace"`` is ``query_weight = 0``, ``model_weight = 1``, ``none``.

On several shards each shard normalises its own window, so a served ranking equals this function applied per
shard; on a one-shard index it equals :func:`blend_window` applied to the index's top ``window_size``.

The names relate to OpenSearch's own ``rescore`` weights: ``query_weight`` plays the part of OpenSearch's
``query_weight`` (the first pass), ``model_weight`` that of ``rescore_query_weight`` (the second pass).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NORMALIZATIONS = ("none", "min_max", "z_score")


@dataclass(frozen=True)
class BlendSettings:
    """Weights and normalisation of a blend; stored with a model (upload record and model card) and resolved by the node."""

    query_weight: float = 1.0
    model_weight: float = 1.0
    normalization: str = "none"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        for name in ("query_weight", "model_weight"):
            value = getattr(self, name)
            if not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BlendSettings:
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError`` naming them."""
        unknown = set(d) - {"query_weight", "model_weight", "normalization"}
        if unknown:
            raise ValueError(f"unknown blend setting(s) {sorted(unknown)}")
        return cls(**{k: (str(v) if k == "normalization" else float(v)) for k, v in d.items()})


def normalize_window(x: np.ndarray, normalization: str) -> np.ndarray:
    """``x`` (one window, float ``[n]``) normalised as the module doc says; float64 ``[n]``."""
    v = np.asarray(x, dtype=np.float64)
    if normalization == "none" or len(v) == 0:
        return v.copy()
    if normalization == "min_max":
        lo, hi = v.min(), v.max()
        return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    if normalization == "z_score":
        sd = v.std()
        return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def blend_window(first_pass: np.ndarray, logits: np.ndarray, settings: BlendSettings) -> np.ndarray:
    """Combined scores float32 ``[n]`` of one window (``first_pass`` and ``logits`` aligned, float ``[n]``)."""
    if len(first_pass) != len(logits):
        raise ValueError(f"{len(first_pass)} first-pass scores but {len(logits)} logits")
    s = normalize_window(first_pass, settings.normalization)
    z = normalize_window(logits, settings.normalization)
    return (settings.query_weight * s + settings.model_weight * z).astype(np.float32)


def rescored_order(first_pass: np.ndarray, logits: np.ndarray, window: int, settings: BlendSettings) -> np.ndarray:
    """Indices of one shard's hits (given in first-pass order) in rescored order.

    The first ``window`` hits are sorted by :func:`blend_window` (descending; ties keep first-pass order), the rest
    follow in first-pass order.  ``logits`` may hold only the window's ``min(window, n)`` values."""
    n = len(first_pass)
    w = min(window, n)
    combined = blend_window(np.asarray(first_pass)[:w], np.asarray(logits)[:w], settings)
    head = np.argsort(-combined.astype(np.float64), kind="stable")
    return np.concatenate([head, np.arange(w, n)]).astype(np.int64)


__all__ = ["NORMALIZATIONS", "BlendSettings", "blend_window", "normalize_window", "rescored_order"]
