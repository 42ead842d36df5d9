"""`make demo`: product search end to end on a small real ESCI sample, ending on a live OpenSearch node.

1. ``distilrank run configs/demo.toml``: index the sample catalogue, BM25 pools for 4,000 unlabeled queries,
   teachers (zero-shot bi-encoder, a small fine-tuned cross-encoder, BM25) stacked on held-out queries,
   the distilled student and a gold-only student, evaluated by 3-fold query-grouped CV (resumable).
2. Export fold 0's distilled student (ONNX + tokenizer.json, parity-checked), register, deploy and promote it
   behind the alias ``demo`` (rerank pipeline ``distilrank-demo``, depth 100).
3. For a few of fold 0's test queries (queries that student never saw), print BM25's top 5 beside the
   reranked top 5 with each product's human grade and each list's nDCG@10, then the latency rerank adds.

Run: ``integration/cluster/start && .venv/bin/python examples/esci_demo.py`` (``make demo`` does both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADE = {3.0: "E", 2.0: "S", 1.0: "C", 0.0: "I"}


def main() -> int:
    from distilrank.distill.ranking.config import load_ranking_config
    from distilrank.distill.ranking.evaluate import rerank_setting
    from distilrank.distill.ranking.pipeline import run_ranking
    from distilrank.plugin import api
    from distilrank.plugin.aliases import pipeline_name
    from distilrank.plugin.catalogue_index import bm25_query
    from distilrank.plugin.connection import load_connection
    from distilrank.plugin.export import export_student
    from distilrank.plugin.pipelines import check_search_body, rerank_search_body
    from distilrank.plugin.transport import Transport

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.toml"), help="ranking run config")
    ap.add_argument("--alias", default="demo", help="alias (and pipeline distilrank-ALIAS) the student is promoted to")
    ap.add_argument("--queries", type=int, default=3, help="how many held-out judged queries to show")
    ap.add_argument("--latency-searches", type=int, default=30, help="searches per arm for the latency figure")
    args = ap.parse_args()

    t_start = time.perf_counter()
    cfg = load_ranking_config(args.config)
    t = Transport(load_connection(args.config))
    summary = run_ranking(cfg, t, progress=False)
    out = Path(cfg.out_dir)

    fold = out / "folds" / "fold-0"
    zip_path = fold / "export" / "student.zip"
    if not zip_path.exists():
        res = export_student(fold / "students" / "distilled", fold / "export", name="student")
        print(f"exported {res.zip} ({res.zip_bytes:,} bytes); parity max |torch - onnx| = {res.parity.max_abs_diff:.1e}")
    reg = api.register(t, zip_path, group="distilrank-demo", deploy=True, promote_alias=args.alias, index=cfg.index.name,
                       document_fields=[cfg.document.index_field], depth=cfg.eval.rerank_depth, size=10, progress=False)
    print(f"model {reg['model_id']} deployed, smoke-tested and promoted to alias {args.alias!r} "
          f"(pipeline {pipeline_name(args.alias)}, depth {cfg.eval.rerank_depth})")

    from distilrank.plugin.abtest.judgments import load_judgments

    grades = load_judgments(cfg.judgments.path)
    test = json.loads((fold / "split.json").read_text())["test"]
    first_pass = lambda q: bm25_query(q, cfg.index.bm25_fields)  # noqa: E731

    def search(q: str, rerank: bool, size: int = 10) -> tuple[list[tuple[str, str]], float]:
        source = ["title", cfg.document.index_field]  # the rerank processor reads the model text from _source
        if rerank:
            body = rerank_search_body(q, size=size, query=first_pass(q), source=source)
            check_search_body(body)
            params = {"search_pipeline": pipeline_name(args.alias)}
        else:
            body = {"size": size, "query": first_pass(q), "_source": source}
            params = {"search_pipeline": "_none"}
        t0 = time.perf_counter()
        res = t.request("POST", f"/{cfg.index.name}/_search", body, params=params)
        ms = 1000 * (time.perf_counter() - t0)
        return [(h["_id"], h["_source"]["title"]) for h in res["hits"]["hits"]], ms

    shown = 0
    for q in test:
        if shown >= args.queries:
            break
        bm, _ = search(q, False)
        rr, _ = search(q, True)
        if [d for d, _ in bm] == [d for d, _ in rr]:
            continue  # show queries where the student changes something
        shown += 1
        j = grades[q]
        nd = {name: rerank_setting({q: [d for d, _ in hits]}, None, {q: j}, 10)[q]["ndcg_esci"] for name, hits in (("bm25", bm), ("student", rr))}
        print(f"\nquery: {q!r}   nDCG@10 (ESCI gains): BM25 {nd['bm25']:.3f} -> student {nd['student']:.3f}")
        for i in range(5):
            cell = lambda hits: f"[{GRADE.get(j.get(hits[i][0]), '?')}] {hits[i][1][:52]:<52}" if i < len(hits) else ""  # noqa: E731
            print(f"  {i + 1}. {cell(bm)}  |  {cell(rr)}")
    print("  ([E]xact, [S]ubstitute, [C]omplement, [I]rrelevant, [?] not judged)")

    lat = {"bm25": [], "student": []}
    for i in range(args.latency_searches):
        q = test[i % len(test)]
        for arm in (("bm25", False), ("student", True)) if i % 2 else (("student", True), ("bm25", False)):
            lat[arm[0]].append(search(q, arm[1])[1])
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    print(f"\nlatency p50 over {args.latency_searches} searches: BM25 {p50['bm25']:.1f} ms, BM25 + student rerank of the top "
          f"{cfg.eval.rerank_depth} {p50['student']:.1f} ms (+{p50['student'] - p50['bm25']:.1f} ms)")
    print("\n" + "\n".join(summary["headline"]))
    for setting, rows in summary["pairwise"].items():
        gold = next((r for r in rows if r["a"] == "student distilled" and r["b"] == "student gold-only"), None)
        if gold:
            print(f"{setting}: distilled - gold-only student {gold['delta_ndcg_esci']:+.4f} nDCG@10 (95% CI {gold['ci_low']:+.3f}.."
                  f"{gold['ci_high']:+.3f}, p = {gold['p_value']:.3f}): what the teachers' scores on unlabeled queries add to "
                  "training on the judgments alone")
    print(f"report: {summary['report']['html']}\ndemo finished in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
