"""distilrank.distill.signals: one teacher-signal type for both tasks."""

from __future__ import annotations

import numpy as np
import pytest

from distilrank.distill.ranking.stacking import equal_stack
from distilrank.distill.signals import pair_signals, ranking_signals
from distilrank.distill.targets import average_logits


def test_pair_signals_give_teachers_mean_and_the_stacker():
    logits = {"dev": {"a": np.array([1.0, -2.0]), "b": np.array([3.0, 0.0])}}
    s = pair_signals(["a", "b"], logits, None)
    assert s.signals() == ["a", "b", "mean"]
    np.testing.assert_allclose(s.combined("dev", "mean"), average_logits(np.stack([logits["dev"]["a"], logits["dev"]["b"]])))
    np.testing.assert_array_equal(s.combined("dev", "b"), logits["dev"]["b"])
    with pytest.raises(ValueError, match="needs the stacker holdout"):
        s.combined("dev", "stack")
    assert pair_signals(["a"], {"dev": {"a": logits["dev"]["a"]}}, None).signals() == ["a"]  # one teacher: nothing to combine


def test_ranking_signals_combine_within_each_query_pool():
    scores = {"transfer": {"x": np.array([1.0, 2.0, 10.0, 30.0]), "y": np.array([0.5, 0.1, 5.0, 1.0])}}
    groups = {"transfer": np.array([0, 0, 1, 1])}
    s = ranking_signals(["x", "y"], scores, groups.__getitem__, equal_stack(["x", "y"]))
    assert s.signals() == ["x", "y", "stack-equal", "stack"]
    want = equal_stack(["x", "y"]).apply(scores["transfer"], groups["transfer"])
    np.testing.assert_allclose(s.combined("transfer", "stack-equal"), want)
    np.testing.assert_allclose(s.combined("transfer", "stack"), want)  # the stacker given here has equal weights too
    with pytest.raises(ValueError, match="unknown teacher signal 'mean'"):
        s.combined("transfer", "mean")
