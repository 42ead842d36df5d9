"""The tables of a sentence-pair run (:class:`RunData`), which its stages (:mod:`distilrank.distill.pipeline`) and its
evaluation (:mod:`distilrank.distill.evaluation.pairs_run`) share; its teachers' signals are
:class:`~distilrank.distill.signals.TeacherSignals` and the students it trains
:class:`~distilrank.distill.variants.StudentVariant`."""

from __future__ import annotations

from dataclasses import dataclass

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
