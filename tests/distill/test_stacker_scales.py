"""The stacker standardises its inputs: teachers on very different scales (cosines, BM25, logits) fit well."""

import numpy as np
import pytest

from distilrank.distill.targets import fit_stacker
from distilrank.metrics import binary_nll
from distilrank.metrics import sigmoid as _sigmoid


def _teachers(n: int = 600, seed: int = 0):
    """Binary relevance seen by a cosine-like teacher in [-1, 1] and a BM25-like teacher in [0, 30]."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.float64)
    cosine = np.tanh(0.9 * (y - 0.5) + 0.6 * rng.standard_normal(n))  # in (-1, 1)
    bm25 = np.clip(14.0 + 9.0 * (y - 0.5) + 5.0 * rng.standard_normal(n), 0.0, 30.0)  # in [0, 30]
    return np.vstack([cosine, bm25]), y


def _standardise(z):
    mu, sd = z.mean(axis=1, keepdims=True), z.std(axis=1, keepdims=True)
    return (z - mu) / sd, mu[:, 0], sd[:, 0]


def test_wildly_different_scales_give_a_finite_sensible_fit():
    z, y = _teachers()
    assert z[0].min() >= -1 and z[0].max() <= 1 and z[1].min() >= 0 and z[1].max() <= 30
    st = fit_stacker(z, y, ["cosine", "bm25"])
    assert st.teachers == ["cosine", "bm25"] and st.n_train == len(y)
    assert np.all(np.isfinite(st.weights)) and np.isfinite(st.bias)
    assert st.weights[0] > 0 and st.weights[1] > 0  # both teachers carry signal
    stacked = st.apply(z)
    assert stacked.dtype == np.float32 and np.all(np.isfinite(stacked))
    # better than the base rate, and better than either teacher on its own (each fitted the same way)
    base_rate = np.full_like(y, np.log(y.mean() / (1 - y.mean())))
    nll = binary_nll(stacked, y)
    assert nll < binary_nll(base_rate, y) - 0.05
    for i in range(2):
        alone = fit_stacker(z[i : i + 1], y, ["one"])
        assert nll < binary_nll(alone.apply(z[i : i + 1]), y)
    # calibrated on its training data: mean probability matches the positive rate (the bias is not penalised)
    assert np.mean(_sigmoid(stacked.astype(np.float64))) == pytest.approx(y.mean(), abs=1e-3)


def test_fit_equals_a_fit_on_pre_standardised_inputs_up_to_the_folded_affine_map():
    z, y = _teachers(seed=1)
    zs, mu, sd = _standardise(z)
    raw, pre = fit_stacker(z, y, ["a", "b"]), fit_stacker(zs, y, ["a", "b"])
    np.testing.assert_allclose(raw.apply(z), pre.apply(zs), rtol=1e-5, atol=1e-5)
    w = np.asarray(pre.weights) / sd
    np.testing.assert_allclose(raw.weights, w, rtol=1e-8)
    assert raw.bias == pytest.approx(pre.bias - float(w @ mu), rel=1e-8, abs=1e-10)
    # the standardised fit is the optimum of the penalised objective: its gradient vanishes there
    x = np.vstack([zs, np.ones(zs.shape[1])]).T
    theta = np.append(pre.weights, pre.bias)
    grad = x.T @ (_sigmoid(x @ theta) - y) / len(y) + np.array([1e-2, 1e-2, 0.0]) * theta
    assert np.max(np.abs(grad)) < 1e-8
    # rescaling a teacher's raw scores does not change the stacked predictions
    scaled = z * np.array([[1.0], [1000.0]]) + np.array([[0.0], [-5.0]])
    np.testing.assert_allclose(fit_stacker(scaled, y, ["a", "b"]).apply(scaled), raw.apply(z), rtol=1e-4, atol=1e-4)


def test_stacker_is_deterministic_and_handles_a_constant_teacher():
    z, y = _teachers(seed=2)
    a, b = fit_stacker(z, y, ["a", "b"]), fit_stacker(z.copy(), y.copy(), ["a", "b"])
    assert a.weights == b.weights and a.bias == b.bias
    assert np.array_equal(a.apply(z), b.apply(z))
    const = np.vstack([z, np.full(z.shape[1], 7.0)])
    c = fit_stacker(const, y, ["a", "b", "const"])
    assert np.all(np.isfinite(c.weights)) and c.weights[2] == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(c.apply(const), a.apply(z), atol=1e-5)


def test_soft_labels_on_different_scales():
    z, y = _teachers(seed=3)
    soft = np.clip(0.8 * y + 0.1, 0, 1)
    st = fit_stacker(z, soft, ["cosine", "bm25"])
    p = _sigmoid(st.apply(z).astype(np.float64))
    assert np.all(np.isfinite(p)) and p[y == 1].mean() > p[y == 0].mean()
    assert p.mean() == pytest.approx(soft.mean(), abs=1e-3)
