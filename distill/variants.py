"""One type for "which student to train": :class:`StudentVariant`, used by both tasks.

A sentence-pair run (:mod:`distilrank.distill.pipeline`) trains ``main``, gold-label baselines, ablations that each
change one setting, and the scale curve; a ranking run (:mod:`distilrank.distill.ranking.pipeline`) compares
candidate recipes (``targets`` x ``loss`` x ``match_features``) and trains the chosen one.  Each is a variant of the
run's ``[student]`` section: :meth:`StudentVariant.section` applies its changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from distilrank.distill.config import StudentSection


@dataclass(frozen=True)
class StudentVariant:
    """What one student learns from and how.

    ``targets``: a teacher name, a combination of the teachers (pairs: ``mean`` | ``stack``; ranking:
    ``stack-equal`` | ``stack``) or ``gold`` (the labels alone; ``temperature`` then does not apply).  ``loss``,
    ``temperature`` and the ``[student]`` settings given here (``None``: the section's) override the section.
    ``rows`` trains on the first ``rows`` rows of a fixed shuffle of the transfer set (``None``: all).  ``baseline``
    names the variant an ablation is compared with (paired)."""

    targets: str
    loss: str = "bce"
    temperature: float | None = None
    match_features: bool | None = None
    interactions: bool | None = None
    embedding_dim: int | None = None
    trigrams: bool | None = None
    init: str = "random"
    rows: int | None = None
    name: str = ""
    baseline: str | None = None

    @property
    def gold(self) -> bool:
        """Trained on the labels alone."""
        return self.targets == "gold"

    @property
    def slug(self) -> str:
        """``name``, else a directory-safe name from the settings (``stack-equal-listwise-match-T1``)."""
        if self.name:
            return self.name
        match = "" if self.match_features is None else ("-match" if self.match_features else "-nomatch")
        temp = "" if self.temperature is None else f"-T{self.temperature:g}"
        return f"{self.targets}-{self.loss}{match}{temp}"

    def complexity(self) -> int:
        """Ties between variants go to the simpler one: fewer features, a single teacher, the pointwise loss."""
        return int(bool(self.match_features)) + int(self.targets.startswith("stack")) + int(self.loss == "listwise")

    def section(self, base: StudentSection) -> StudentSection:
        """``base`` with this variant's changes: what :func:`distilrank.distill.api.train_student` trains with.
        Gold-label students train with :func:`distilrank.distill.api.gold_section` (BCE, ``gold_epochs``)."""
        from distilrank.distill.api import gold_section

        changes: dict[str, Any] = {"loss": self.loss}
        for name in ("match_features", "interactions", "embedding_dim", "trigrams"):
            if getattr(self, name) is not None:
                changes[name] = getattr(self, name)
        s = replace(base, **changes)
        return gold_section(s) if self.gold else s

    def to_dict(self) -> dict:
        """The settings that are set (``None`` and an empty name left out); :meth:`from_dict` reads it back."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, raw: dict) -> StudentVariant:
        return cls(**raw)
