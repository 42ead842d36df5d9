"""An ``ab run``-shaped report without a cluster, for the SRW export tests: three arms -- BM25, a rerank pipeline arm and
a ``rescore.distilrank`` arm -- whose bodies come from :func:`distilrank.plugin.abtest.runner.arm_search_body` (what
``run_ab`` records and sends), runs from an injected search function, judgments on the 0-3 scale."""

from __future__ import annotations

from distilrank.judgments import from_pairs
from distilrank.plugin.abtest.config import PLACEHOLDER, ArmConfig
from distilrank.plugin.abtest.offline import collect_runs, evaluate_runs
from distilrank.plugin.abtest.runner import arm_search_body

K = 5
QUOTED = 'usb "c" cable'  # SRW refuses quotes in query texts
UNJUDGED = "never judged"
ARMS = {
    "bm25": ArmConfig("bm25", {"match": {"title": PLACEHOLDER}}),
    "student pipeline": ArmConfig("student pipeline", {"match": {"title": PLACEHOLDER}}, alias="staging"),
    "student-rescorer": ArmConfig("student-rescorer", {"multi_match": {"query": PLACEHOLDER, "fields": ["title", "brand"]}},
                                  rescore={"model": "staging", "fields": ["title"], "window_size": 50, "score_mode": "blend"}),
}
INFO = {
    "bm25": {"pipeline": None, "alias": None, "rerank": False, "model_id": None, "spec": None},
    "student pipeline": {"pipeline": "distilrank-staging", "alias": "staging", "rerank": True, "model_id": "m-1",
                         "spec": {"model_id": "m-1", "document_fields": ["title"], "depth": 30, "size": 10}},
    "student-rescorer": {"pipeline": None, "alias": "staging", "rerank": False, "model_id": "m-1", "spec": None,
                         "rescore": {"model": "staging", "fields": ["title"], "window_size": 50, "score_mode": "blend"}},
}


def grades(n: int = 12, top: float = 3.0) -> dict[str, dict[str, float]]:
    """Per query ``q<i>``: 7 judged docs graded 0..``top``; query ``q0`` has no relevant doc; the quoted query is judged."""
    out = {f"q{i}": {f"q{i}-d{j}": float((i + j) % 4) * top / 3 for j in range(7)} for i in range(n)}
    out["q0"] = {"q0-d0": 0.0, "q0-d1": 0.0}
    out[QUOTED] = {"u-1": 3 * top / 3, "u-2": 1 * top / 3}
    return out


def search_fn(judged: dict[str, dict[str, float]]):
    """Each arm's ranking: bm25 by doc id (with an unjudged doc on top), the student arms best grade first."""
    def fn(arm: str, query: str, k: int) -> tuple[list[str], float]:
        docs = sorted(judged.get(query, {}), key=lambda d: d[::-1])
        if arm != "bm25":
            docs = sorted(docs, key=lambda d: -judged[query][d])
        if arm == "student-rescorer":
            docs = docs[1:] + docs[:1]
        return ([f"{query}-unjudged"] if arm == "bm25" else []) + docs, 3.0 + len(arm)
    return fn


def make_report(top: float = 3.0, *, name: str = "icecat bm25 vs student") -> dict:
    """The results dict ``run_ab`` writes, for the arms above."""
    g = grades(top=top)
    judgments = from_pairs(g, queries=[*g, UNJUDGED])
    runs = collect_runs(judgments.queries, list(ARMS), search_fn(g), K)
    res = evaluate_runs(runs, judgments, k=K, baseline="bm25", threshold=2 * top / 3, n_permutations=200,
                        bootstrap_resamples=100, click_model=None)
    res["experiment"] = {"name": name, "index": "products", "config": None, "judgments_file": None, "queryset": None,
                         "latency": "client-side wall time per search, ms", "query_placeholder": PLACEHOLDER}
    res["arms_config"] = {a: {**INFO[a], "search_body": arm_search_body(ARMS[a], INFO[a], PLACEHOLDER, K)} for a in ARMS}
    return res
