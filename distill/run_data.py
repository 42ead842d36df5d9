"""The values a sentence-pair run (:mod:`distilrank.distill.pipeline`) passes between its stages: its tables
(:class:`RunData`), and its teachers' signals (:class:`TeacherSignals`); the students it trains are
:class:`~distilrank.distill.variants.StudentVariant`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distilrank.distill.targets import Stacker, average_logits
from distilrank.pairs import Pairs


@dataclass
class RunData:
    """The labeled and unlabeled tables of one run.

    ``train`` is every labeled row the run may learn from (after the ``select`` sentences and their phrases
    were removed); the teachers see ``teacher_train``, the stacker ``holdout`` (disjoint parts of ``train``).
    ``evals`` maps split name -> labeled table the students are measured on (``select`` first when present,
    then ``dev``).
    """

    train: Pairs
    teacher_train: Pairs
    holdout: Pairs
    evals: dict[str, Pairs]
    transfer: Pairs
    info: dict


@dataclass
class TeacherSignals:
    """Teacher logits per split and how they combine: ``combined(split, how)`` for ``how`` a teacher name,
    ``"mean"`` or ``"stack"`` (the stacker's calibrated logit).  Every value is a raw logit ``[N]``."""

    names: list[str]
    logits: dict[str, dict[str, np.ndarray]]
    stacker: Stacker | None

    def combined(self, split: str, how: str) -> np.ndarray:
        z = np.stack([self.logits[split][n] for n in self.names])
        if how == "stack":
            if self.stacker is None:
                raise ValueError("combine = 'stack' needs the stacker holdout (data.stack_holdout)")
            return self.stacker.apply(z)
        if how == "mean":
            return average_logits(z)
        return self.logits[split][how]

    def signals(self) -> list[str]:
        """Every signal a student can learn from: each teacher, then the combinations."""
        combos = ["mean", "stack"] if self.stacker is not None else ["mean"]
        return self.names + (combos if len(self.names) > 1 else [])
