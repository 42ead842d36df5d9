"""run_comparison end to end with a deterministic injected search_fn; pooling and teacher judgments."""

import hashlib

import pytest

from distilrank.errors import DistilRankError
from distilrank.judgments import from_pairs, load_judgments
from distilrank.plugin.abtest.metrics import NO_JUDGMENTS, query_metrics
from distilrank.plugin.abtest.offline import SCHEMA, collect_runs, evaluate_runs, pool, run_comparison, teacher_judge
from distilrank.plugin.abtest.stats import holm, latency_summary
from tests.paths import TESTS_DATA

DATA = TESTS_DATA / "abtest"


def _h(*parts):
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def make_judgments(n_queries=24):
    grades = {}
    for q in range(n_queries):
        grades[f"query {q}"] = {f"q{q}d{d}": float(int(_h(str(q), str(d)), 16) % 4) for d in range(12)}
        grades[f"query {q}"][f"q{q}d0"] = 3.0  # every query has a relevant doc
    return from_pairs(grades, queries=[*grades, "never judged <query>"])


def make_search_fn(judgments):
    """bm25: hash order; student: by grade (ideal) with a hash tie-break; same: bm25's list; latencies fixed per arm."""
    def search_fn(arm, query, k):
        docs = sorted(judgments[query], key=lambda d: _h("bm25", d)) or [f"{query}-doc{i}" for i in range(3)]
        if arm == "student":
            docs = sorted(docs, key=lambda d: (-judgments[query].get(d, 0), _h(d)))
        if arm in ("bm25", "same"):
            docs = ["unjudged-1"] + docs  # one unjudged doc on top of the baseline (and its copy)
        took = {"bm25": 5.0, "student": 12.0, "same": 5.0}[arm] + int(_h(arm, query)[:2], 16) / 64
        return docs[: k + 5], took  # more than k: only the first k count
    return search_fn


@pytest.fixture(scope="module")
def results():
    j = make_judgments()
    return run_comparison(j, ["bm25", "student", "same"], make_search_fn(j), k=5, threshold=2,
                          n_permutations=4000, bootstrap_resamples=1000, seed=11)


def test_schema_and_per_query_metrics(results):
    j = make_judgments()
    fn = make_search_fn(j)
    assert results["schema"] == SCHEMA and results["baseline"] == "bm25"
    assert results["metrics"] == ["NDCG@5", "MRR", "Precision@5", "Recall@5"] and results["primary_metric"] == "NDCG@5"
    assert results["arm_names"] == ["bm25", "student", "same"] and results["judgment_source"] == "human"
    assert results["judgments"]["n_queries"] == 25 and results["judgments"]["n_judged_queries"] == 24
    for arm in results["arm_names"]:
        for q, pq in results["arms"][arm]["queries"].items():
            ids, took = fn(arm, q, 5)
            want = query_metrics(ids[:5], j[q], 5, threshold=2)
            assert pq["metrics"] == want.values and pq["reasons"] == want.reasons
            assert pq["doc_ids"] == ids[:5] and pq["n_returned"] == len(ids) and pq["took_ms"] == took
        took_all = [pq["took_ms"] for pq in results["arms"][arm]["queries"].values()]
        assert results["arms"][arm]["latency_ms"] == latency_summary(took_all)
    s = results["arms"]["student"]["summary"]["NDCG@5"]
    assert s["n"] == 24 and s["mean"] == pytest.approx(1.0) and s["ci95"][0] <= s["mean"] <= s["ci95"][1]


def test_unjudged_and_queries_without_judgments_are_reported(results):
    assert results["queries_without_judgments"] == ["never judged <query>"]
    pq = results["arms"]["student"]["queries"]["never judged <query>"]
    assert all(v is None for v in pq["metrics"].values()) and set(pq["reasons"].values()) == {NO_JUDGMENTS}
    bm25 = results["arms"]["bm25"]["unjudged"]
    assert bm25["at_k"] == 25 + 3  # 'unjudged-1' on top of all 25 queries + the unjudged query's 3 docs
    assert results["arms"]["student"]["unjudged"]["at_k"] == 3
    assert bm25["returned_at_k"] == 24 * 5 + 4 and bm25["fraction"] == pytest.approx(28 / 124)


def test_comparisons_stats_and_holm(results):
    comps = {(c["arm"], c["metric"]): c for c in results["comparisons"]}
    assert set(comps) == {(a, m) for a in ("student", "same") for m in results["metrics"]}
    st = comps[("student", "NDCG@5")]
    base = results["arms"]["bm25"]["queries"]
    arm = results["arms"]["student"]["queries"]
    assert st["n"] == 24 and set(st["deltas"]) == {q for q in base if base[q]["metrics"]["NDCG@5"] is not None}
    for q, d in st["deltas"].items():
        assert d == pytest.approx(arm[q]["metrics"]["NDCG@5"] - base[q]["metrics"]["NDCG@5"])
    assert st["delta_mean"] == pytest.approx(st["mean_arm"] - st["mean_baseline"])
    assert st["ci95"][0] <= st["delta_mean"] <= st["ci95"][1] and st["ci95"][0] > 0
    assert st["wins"] == 24 and st["losses"] == 0 and st["p_method"] == "monte-carlo"
    assert st["p_value"] == pytest.approx(1 / 4001) and st["significant"]
    same = comps[("same", "NDCG@5")]
    assert same["delta_mean"] == 0 and same["p_value"] == 1.0 and same["ties"] == 24 and not same["significant"]
    for m in results["metrics"]:
        fam = [comps[(a, m)] for a in ("student", "same")]
        assert [c["p_holm"] for c in fam] == holm([c["p_value"] for c in fam])
    assert comps[("same", "Recall@5")]["ci95"] == [0.0, 0.0]


def test_interleaving_results(results):
    inter = {r["arm"]: r for r in results["interleaving"]}
    assert set(inter) == {"student", "same"}
    assert inter["same"]["wins_arm"] == inter["same"]["wins_baseline"] == 0 and inter["same"]["ties"] == 24
    assert inter["same"]["win_rate_arm"] is None
    st = inter["student"]
    assert st["n_queries"] == 24 and st["win_rate_arm"] > 0.7 and st["p_value"] < 0.05
    assert st["click_model"]["model"] == "pbm"


def test_deterministic_for_a_seed():
    j = make_judgments(8)
    kw = dict(k=5, n_permutations=500, bootstrap_resamples=200, seed=3)
    a = run_comparison(j, ["bm25", "student"], make_search_fn(j), **kw)
    b = run_comparison(j, ["bm25", "student"], make_search_fn(j), **kw)
    assert a == b
    c = run_comparison(j, ["bm25", "student"], make_search_fn(j), baseline="student", click_model=None, **kw)
    assert c["baseline"] == "student" and c["interleaving"] == []
    assert c["comparisons"][0]["arm"] == "bm25" and c["comparisons"][0]["delta_mean"] < 0


def test_icecat_sample_end_to_end():
    j = load_judgments(DATA / "icecat_judgments_sample.csv")

    def search_fn(arm, query, k):
        docs = sorted(j[query], key=lambda d: (-j[query][d], d) if arm == "rerank" else d)
        return docs[:k], 10.0
    r = run_comparison(j, ["bm25", "rerank"], search_fn, k=3, threshold=3, n_permutations=100, bootstrap_resamples=100)
    assert r["arms"]["rerank"]["summary"]["Precision@3"]["mean"] == 1.0
    assert r["comparisons"][0]["p_method"] == "exact" and r["comparisons"][0]["n"] == 2


def test_search_fn_errors_name_arm_and_query():
    j = make_judgments(2)

    def broken(arm, query, k):
        raise RuntimeError("connection refused")
    with pytest.raises(DistilRankError, match=r"arm='a', query='query 0'.*connection refused"):
        run_comparison(j, ["a", "b"], broken)
    with pytest.raises(DistilRankError, match="must return"):
        run_comparison(j, ["a", "b"], lambda arm, q, k: ["d1"])
    with pytest.raises(DistilRankError, match="took_ms"):
        run_comparison(j, ["a", "b"], lambda arm, q, k: (["d1"], -1))
    with pytest.raises(DistilRankError, match="unique"):
        run_comparison(j, ["a", "a"], make_search_fn(j))
    runs = collect_runs(["query 0"], ["a", "b"], lambda arm, q, k: (["x"], 1.0))
    with pytest.raises(DistilRankError, match="no search result"):
        evaluate_runs(runs, j)
    with pytest.raises(DistilRankError, match="baseline"):
        evaluate_runs(runs, j.with_queries(["query 0"]), baseline="c")


def test_pool_and_teacher_judge():
    runs = collect_runs(["red shoes", "blue mug"], ["a", "b"],
                        lambda arm, q, k: ((["s1", "s2", "s3"] if arm == "a" else ["s3", "s4"]) if q == "red shoes"
                                           else ["m1"], 1.0))
    pooled = pool(runs)
    assert pooled == {"red shoes": ["s1", "s3", "s2", "s4"], "blue mug": ["m1"]}
    assert pool(runs, depth=1) == {"red shoes": ["s1", "s3"], "blue mug": ["m1"]}
    texts = {"s1": "red shoes", "s2": "red socks", "s3": "shoes", "s4": "lamp", "m1": "blue mug"}
    logits = {"s1": 3.0, "s2": -1.0, "s3": 0.0, "s4": -2.5, "m1": 1.0}
    batches = []

    def score_fn(pairs):
        batches.append(len(pairs))
        return [logits[next(d for d, t in texts.items() if t == text)] for _, text in pairs]
    j = teacher_judge(pooled, score_fn, texts, name="bert-base-ce", batch_size=2)
    assert batches == [2, 2, 1]
    assert j.source == "model (teacher cross-encoder bert-base-ce)"
    # default cuts ln(1/5), 0, ln(5) = 3*sigmoid rounded half up: 3 -> 3, -1 -> 1, 0 -> 2, -2.5 -> 0, 1 -> 2
    assert j["red shoes"] == {"s1": 3.0, "s2": 1.0, "s3": 2.0, "s4": 0.0} and j["blue mug"] == {"m1": 2.0}
    r = evaluate_runs(runs, j, k=3, threshold=2, n_permutations=100, bootstrap_resamples=100)
    assert r["judgment_source"] == "model (teacher cross-encoder bert-base-ce)"
    assert r["arms"]["a"]["unjudged"]["at_k"] == 0
    j2 = teacher_judge(pooled, score_fn, texts.get, name="x", thresholds=[0.5])
    assert j2["red shoes"] == {"s1": 1.0, "s2": 0.0, "s3": 0.0, "s4": 0.0}
    with pytest.raises(DistilRankError, match="no text for doc 's4'"):
        teacher_judge(pooled, score_fn, {k: v for k, v in texts.items() if k != "s4"}, name="x")
    with pytest.raises(DistilRankError, match="scores for"):
        teacher_judge(pooled, lambda pairs: [0.0], texts, name="x")
    with pytest.raises(DistilRankError, match="ascending"):
        teacher_judge(pooled, score_fn, texts, name="x", thresholds=[1.0, 0.0])
