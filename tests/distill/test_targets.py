"""Temperature rescaling and teacher stacking."""

import numpy as np
import pytest

from distilrank.distill.targets import (
    average_logits,
    best_calibration_temperature,
    binary_nll,
    expected_calibration_error,
    fit_stacker,
    soft_targets,
    temperature_sweep,
)


def test_soft_targets_soften_with_temperature():
    z = np.array([-4.0, 0.0, 4.0], dtype=np.float32)
    t1, t4 = soft_targets(z, 1.0), soft_targets(z, 4.0)
    np.testing.assert_allclose(t1, 1 / (1 + np.exp(-z)), rtol=1e-6)
    np.testing.assert_allclose(t4, 1 / (1 + np.exp(-z / 4)), rtol=1e-6)
    assert t4[2] < t1[2] and t4[0] > t1[0] and t4[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(z, 0.0)


def test_nll_and_ece_hand_values():
    assert binary_nll(np.array([0.0]), np.array([1.0])) == pytest.approx(np.log(2))
    # two bins: p=0.9 with 1/2 positives, p=0.1 with 0/2 positives (the ECE takes logits: log(p / (1 - p)))
    p = np.array([0.9, 0.9, 0.1, 0.1])
    y = np.array([1, 0, 0, 0])
    assert expected_calibration_error(np.log(p / (1 - p)), y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_best_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-true_logit))).astype(float)
    overconfident = 3.0 * true_logit
    t = best_calibration_temperature(overconfident, y)
    assert 2.6 < t < 3.4
    rows = temperature_sweep(overconfident, y, [1, 3])
    assert rows[1]["nll"] < rows[0]["nll"]
    assert rows[1]["target_entropy"] > rows[0]["target_entropy"]


def test_stacker_beats_average_when_one_teacher_is_noise():
    rng = np.random.default_rng(1)
    n = 4000
    signal = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(float)
    good, noise = signal, rng.normal(0, 2, n)
    logits = np.stack([good, noise])
    st = fit_stacker(logits, y, ["good", "noise"])
    assert st.weights[0] > 0.8 and abs(st.weights[1]) < 0.1
    assert binary_nll(st.apply(logits), y) < binary_nll(average_logits(logits), y)
    with pytest.raises(ValueError, match="fitted on 2 teachers"):
        st.apply(logits[:1])
