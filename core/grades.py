"""The grade scale of relevance judgments, named once.

Judgments are graded on the ESCI scale ``Exact 3 > Substitute 2 > Complement 1 > Irrelevant 0`` (:data:`ESCI_GRADES`;
:data:`GRADE_MAX` is its top).  The Search Relevance Workbench writes the same labels as ratings 100/10/1/0
(:data:`SRW_ESCI_RATINGS`, what ``grade_map = "esci"`` reads).  Two gains are computed from grades: the ESCI task's
linear gains E 1.0, S 0.1, C 0.01, I 0 (:func:`esci_gain`, the ``ndcg_esci`` metric) and the exponential
``2^g - 1`` (``ndcg@k`` / ``ndcg_graded``); "relevant" (MRR, precision, recall) means Exact (:data:`EXACT`).
"""

from __future__ import annotations

import numpy as np

#: ESCI label -> grade
ESCI_GRADES: dict[str, float] = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}
#: the top of the grade scale (a grade divided by it is a probability-like target in [0, 1])
GRADE_MAX: float = 3.0
#: the grade of an Exact product, the one "relevant" grade of MRR / precision / recall
EXACT: float = ESCI_GRADES["E"]
#: Search Relevance Workbench rating -> grade (``grade_map = "esci"``)
SRW_ESCI_RATINGS: dict[float, float] = {100.0: 3.0, 10.0: 2.0, 1.0: 1.0, 0.0: 0.0}
#: grade -> the ESCI task's linear gain
ESCI_GAINS: dict[float, float] = {3.0: 1.0, 2.0: 0.1, 1.0: 0.01, 0.0: 0.0}


def esci_gain(grades: np.ndarray) -> np.ndarray:
    """float64 ``[n]``: the ESCI task's gain of each grade (:data:`ESCI_GAINS`; grades between the four labels are
    interpolated linearly on that scale)."""
    g = np.asarray(grades, dtype=np.float64)
    points = sorted(ESCI_GAINS)
    return np.interp(g, points, [ESCI_GAINS[p] for p in points])
