"""The ranking stacker (within-pool z-scores, non-negative weights), the blend fit and its nesting, the recipes."""

import numpy as np
import pytest

from distilrank.distill.ranking.blend_fit import BLEND_GRID, fit_blend, inner_cv_blend_score
from distilrank.distill.ranking.stacking import equal_stack, fit_rank_stacker, group_index, pool_zscore
from distilrank.distill.ranking.students import subset_rows, targets_for
from distilrank.distill.variants import StudentVariant
from distilrank.plugin.blend import BlendSettings, blend_window


def test_group_index_in_order_of_first_appearance():
    assert group_index(["b", "a", "b", "c", "a"]).tolist() == [0, 1, 0, 2, 1]


def test_pool_zscore_within_groups_with_degenerate_groups():
    x = np.array([1.0, 3.0, 10.0, 5.0, 5.0, 7.0])
    g = np.array([0, 0, 1, 2, 2, 3])
    z = pool_zscore(x, g)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:2], [-1.0, 1.0])
    assert z[2] == 0.0 and z[3] == 0.0 and z[4] == 0.0 and z[5] == 0.0  # one row, zero variance
    # invariant to a per-group affine map with positive scale
    np.testing.assert_allclose(pool_zscore(np.where(g == 0, 100 + 7 * x, x), g), z, atol=1e-6)


def _judged_queries(n_queries=40, n_docs=12, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_queries), n_docs)
    grades = rng.integers(0, 4, size=len(g)).astype(np.float64)
    good = grades + rng.normal(0, 0.8, len(g))          # informative teacher
    noise = rng.normal(0, 1, len(g))                     # useless teacher
    anti = -grades + rng.normal(0, 0.8, len(g))          # harmful teacher
    scale = np.where(g % 2 == 0, 10.0, 0.1)              # very different scales per query
    return {"good": good * scale, "noise": noise, "anti": anti}, grades, g


def test_rank_stacker_weights_are_non_negative_sum_to_one_and_favour_the_informative_teacher():
    scores, grades, g = _judged_queries()
    st = fit_rank_stacker(scores, grades, g)
    w = dict(zip(st.teachers, st.weights))
    assert all(v >= 0 for v in w.values()) and sum(w.values()) == pytest.approx(1.0)
    assert w["good"] > 0.8 and w["anti"] == 0.0
    stacked = st.apply(scores, g)
    assert stacked.shape == grades.shape and stacked.dtype == np.float32
    assert np.corrcoef(stacked, grades)[0, 1] > 0.6
    with pytest.raises(ValueError, match="missing"):
        st.apply({"good": scores["good"]}, g)


def test_equal_stack_uses_no_labels():
    st = equal_stack(["a", "b"])
    assert st.weights == [0.5, 0.5] and "no judgments" in st.fitted_on
    g = np.array([0, 0, 0])
    np.testing.assert_allclose(st.apply({"a": np.array([1.0, 2, 3]), "b": np.array([30.0, 20, 10])}, g), [0, 0, 0], atol=1e-6)


def _rerank_world(n_queries=30, depth=20, seed=0):
    """BM25 finds relevant products near the top; the model knows the grades better (noisy)."""
    rng = np.random.default_rng(seed)
    pool, first, model, grades = {}, {}, {}, {}
    for i in range(n_queries):
        q = f"q{i}"
        docs = [f"{q}-d{j}" for j in range(depth)]
        g = rng.integers(0, 4, size=depth).astype(float)
        pool[q] = docs
        first[q] = np.sort(rng.gamma(2.0, 3.0, depth))[::-1].copy()
        model[q] = g + rng.normal(0, 1.0, depth)
        grades[q] = {d: float(x) for d, x in zip(docs, g)}
    return pool, first, model, grades


def test_fit_blend_prefers_the_informative_model_and_reports_the_grid():
    pool, first, model, grades = _rerank_world()
    settings, grid = fit_blend(pool, first, model, grades, list(pool), k=10)
    assert isinstance(settings, BlendSettings) and settings.normalization in ("min_max", "z_score")
    assert settings.model_weight >= 0.5  # BM25's order is random with respect to the grades here
    assert len(grid) == 2 * len(BLEND_GRID)
    assert max(r["score"] for r in grid) == pytest.approx(
        max(r["score"] for r in grid if r["normalization"] == settings.normalization and r["a"] == settings.model_weight))


def test_inner_cv_never_fits_on_the_queries_it_scores():
    pool, first, model, grades = _rerank_world(n_queries=24)
    queries = list(pool)
    res = inner_cv_blend_score(pool, first, model, grades, queries, k=10, folds=4, seed=0)
    assert sorted(res["per_query"]) == sorted(queries) and len(res["settings"]) == 4

    # a query whose model scores are sabotaged only changes the blend fitted for the *other* inner folds
    seen = []

    class Spy(dict):
        def __getitem__(self, q):
            seen.append(q)
            return dict.__getitem__(self, q)

    from distilrank.distill.data.folds import query_folds
    from distilrank.distill.ranking import blend_fit

    folds = query_folds(queries, 4, seed=0)
    for fold in folds:
        seen.clear()
        blend_fit.fit_blend(pool, first, Spy(model), grades, fold.train, 10)
        assert set(seen) == set(fold.train) and not set(seen) & set(fold.test)


def test_blend_window_normalisations_match_by_hand():
    first, logits = np.array([10.0, 5.0, 0.0]), np.array([-1.0, 1.0, 3.0])
    mm = blend_window(first, logits, BlendSettings(0.5, 0.5, "min_max"))
    np.testing.assert_allclose(mm, [0.5, 0.5, 0.5])
    zs = blend_window(first, logits, BlendSettings(1.0, 2.0, "z_score"))
    z1 = (first - first.mean()) / first.std()
    z2 = (logits - logits.mean()) / logits.std()
    np.testing.assert_allclose(zs, (z1 + 2 * z2).astype(np.float32), rtol=1e-6)


def test_recipe_targets_and_subsets():
    signal = np.array([1.0, 2.0, 3.0, 10.0, 10.0])
    g = np.array([0, 0, 0, 1, 1])
    lw = targets_for(StudentVariant(targets="t", loss="listwise", match_features=True, temperature=2.0), signal, g)
    np.testing.assert_allclose(lw, pool_zscore(signal, g) / 2.0, rtol=1e-6)
    bce = targets_for(StudentVariant(targets="t", loss="bce", match_features=False, temperature=1.0), signal, g)
    assert np.all((bce > 0) & (bce < 1)) and bce[3] == pytest.approx(0.5)
    assert StudentVariant(targets="mpnet", loss="bce", match_features=False, temperature=1.0).complexity() < StudentVariant(targets="stack-equal", loss="listwise", match_features=True, temperature=1.0).complexity()
    groups = np.repeat(np.arange(10), 5)
    small, big = subset_rows(groups, 12, seed=1), subset_rows(groups, 30, seed=1)
    assert len(small) == 10 and len(big) == 30 and set(small) <= set(big)  # whole queries, nested
    assert len(subset_rows(groups, None, seed=1)) == 50
