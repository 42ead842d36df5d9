"""One type for "what the students learn from": :class:`TeacherSignals`, used by both tasks.

Each teacher's scores on each table (split) of a run, and the named ways to combine them.  A sentence-pair run
combines calibrated logits (``mean``; ``stack``: the logistic-regression stacker of
:mod:`distilrank.distill.targets`); a ranking run combines within each query's pool (``stack-equal``: every teacher
z-scored within the pool, equal weights; ``stack``: non-negative weights fitted on judged training queries,
:mod:`distilrank.distill.ranking.stacking`).  Build them with :func:`pair_signals` or :func:`ranking_signals`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distilrank.distill.targets import Stacker, average_logits

#: ``combine(scores of one split {teacher: [N]}, split) -> [N]``
Combiner = Callable[[Mapping[str, np.ndarray], str], np.ndarray]


@dataclass
class TeacherSignals:
    """Teacher scores per split (``scores[split][teacher]``, float ``[N]``) and named combinations of them.
    ``combined(split, how)`` gives a teacher's own scores or a combination's; ``stacker`` is the fitted model behind
    ``stack`` (for reports), ``None`` when there is none."""

    names: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    combiners: dict[str, Combiner] = field(default_factory=dict)
    stacker: Any = None

    def combined(self, split: str, how: str) -> np.ndarray:
        if how in self.combiners:
            return self.combiners[how](self.scores[split], split)
        if how in self.names:
            return self.scores[split][how]
        hint = " (combine = 'stack' needs the stacker holdout, data.stack_holdout)" if how == "stack" else ""
        raise ValueError(f"unknown teacher signal {how!r}: one of {self.signals()}{hint}")

    def signals(self) -> list[str]:
        """Every signal a student can learn from: each teacher, then the combinations (with several teachers)."""
        return self.names + (list(self.combiners) if len(self.names) > 1 else [])


def pair_signals(names: list[str], logits: dict[str, dict[str, np.ndarray]], stacker: Stacker | None) -> TeacherSignals:
    """A sentence-pair run's signals: raw teacher logits, ``mean`` and (with a fitted ``stacker``) ``stack``, the
    stacker's calibrated logit."""
    def stack_of(scores: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([scores[n] for n in names])

    combiners: dict[str, Combiner] = {"mean": lambda s, _split: average_logits(stack_of(s))}
    if stacker is not None:
        combiners["stack"] = lambda s, _split: stacker.apply(stack_of(s))
    return TeacherSignals(names, logits, combiners, stacker)


def ranking_signals(names: list[str], scores: dict[str, dict[str, np.ndarray]], groups: Callable[[str], np.ndarray],
                    stacker: Any) -> TeacherSignals:
    """A ranking run's signals: each teacher's scores, ``stack-equal`` and ``stack`` (``stacker``, a fitted
    :class:`~distilrank.distill.ranking.stacking.RankStacker`), both combined within each query's pool
    (``groups(split)``: each row's query, int ``[N]``)."""
    from distilrank.distill.ranking.stacking import equal_stack

    equal = equal_stack(names)
    combiners: dict[str, Combiner] = {"stack-equal": lambda s, split: equal.apply(s, groups(split)),
                                      "stack": lambda s, split: stacker.apply(s, groups(split))}
    return TeacherSignals(names, scores, combiners, stacker)
