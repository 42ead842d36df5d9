"""`make demo`: product search end to end on a small real ESCI sample, served by the rescorer on a live OpenSearch node.

1. ``distilrank run configs/demo.toml``: index the sample catalogue, BM25 pools for 2,000 unlabeled queries, the
   zero-shot MiniLM-L6 bi-encoder and BM25 as teachers, the student distilled from them (listwise, with lexical-match
   features; no judgment used), a gold-only student, and the BM25 + student blend fitted per fold on its training
   queries; evaluated by 3-fold query-grouped CV (resumable).
2. Export the student with fold 0's blend in its model card, register it (the rescorer stores the blend with the
   model) and promote it behind the alias ``demo``.
3. For a few of fold 0's test queries (queries its blend never saw): BM25's top 5 beside the top 5 of
   ``BM25 + student`` as the ``distilrank`` rescorer serves it (blend resolved by the node from the alias), with each
   product's human grade and each list's nDCG@10, then the latency the rescorer adds and the CV headline.

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


def _export(fold: Path, blend: dict) -> Path:
    from distilrank.distill.export import export_student

    zips = sorted((fold / "export").glob("*.zip"))
    if zips and json.loads((fold / "export" / "model-card.json").read_text()).get("blend") == blend:
        return zips[0]
    res = export_student(fold / "students" / "distilled", fold / "export", name="demo-student", blend=blend)
    print(f"exported {res.zip} ({res.zip_bytes:,} bytes); parity max |torch - onnx| = {res.parity.max_abs_diff:.1e}")
    return Path(res.zip)


def main() -> int:
    from distilrank.distill.ranking.config import load_ranking_config
    from distilrank.distill.ranking.evaluate import rerank_setting
    from distilrank.distill.ranking.pipeline import run_ranking
    from distilrank.judgments import load_judgments
    from distilrank.plugin import api
    from distilrank.plugin.catalogue_index import bm25_query
    from distilrank.plugin.connection import load_connection
    from distilrank.plugin.rescore import rescore_search_body
    from distilrank.plugin.transport import Transport

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.toml"), help="ranking run config")
    ap.add_argument("--alias", default="demo", help="alias the student is promoted to")
    ap.add_argument("--queries", type=int, default=3, help="how many held-out judged queries to show")
    ap.add_argument("--latency-searches", type=int, default=40, help="searches per arm for the latency figure")
    args = ap.parse_args()

    t_start = time.perf_counter()
    cfg = load_ranking_config(args.config)
    t = Transport(load_connection(args.config))
    summary = run_ranking(cfg, t, progress=False)
    fold = Path(cfg.out_dir) / "folds" / "fold-0"
    blend = json.loads((fold / "blends.json").read_text())["student"]
    zip_path = _export(fold, blend)
    reg = api.register(t, zip_path, group="distilrank-demo", deploy=True, promote_alias=args.alias, progress=False)
    print(f"model {reg['model_id']} registered with the rescorer and promoted to alias {args.alias!r}; "
          f"blend stored with it: {blend}")

    grades = load_judgments(cfg.judgments.path)
    test = json.loads((fold / "split.json").read_text())["test"]
    depth = cfg.eval.rerank_depth

    def search(q: str, rerank: bool, size: int = 10) -> tuple[list[tuple[str, str]], float]:
        first = bm25_query(q, cfg.index.bm25_fields)
        body = (rescore_search_body(q, model=args.alias, fields=[cfg.document.index_field], window_size=depth, size=size, query=first)
                if rerank else {"size": size, "query": first})
        body["_source"] = ["title"]
        t0 = time.perf_counter()
        res = t.request("POST", f"/{cfg.index.name}/_search", body, params={"search_pipeline": "_none"})
        return [(h["_id"], h["_source"]["title"]) for h in res["hits"]["hits"]], 1000 * (time.perf_counter() - t0)

    shown = 0
    for q in test:
        bm, _ = search(q, False)
        rr, _ = search(q, True)
        if shown >= args.queries or [d for d, _ in bm[:5]] == [d for d, _ in rr[:5]]:
            continue  # show queries whose top 5 the blend changes
        shown += 1
        j = grades[q]
        nd = {n: rerank_setting({q: [d for d, _ in hits]}, None, {q: j}, 10)[q]["ndcg_esci"] for n, hits in (("bm25", bm), ("blend", rr))}
        print(f"\nquery: {q!r}   nDCG@10 (ESCI gains): BM25 {nd['bm25']:.3f} -> BM25 + student {nd['blend']:.3f}")
        for i in range(5):
            cell = lambda hits: f"[{GRADE.get(j.get(hits[i][0]), '?')}] {hits[i][1][:52]:<52}" if i < len(hits) else ""  # noqa: E731
            print(f"  {i + 1}. {cell(bm)}  |  {cell(rr)}")
    print("  ([E]xact, [S]ubstitute, [C]omplement, [I]rrelevant, [?] not judged)")

    lat: dict[str, list[float]] = {"bm25": [], "blend": []}
    for i in range(args.latency_searches):
        q = test[i % len(test)]
        for name, rerank in (("bm25", False), ("blend", True)) if i % 2 else (("blend", True), ("bm25", False)):
            lat[name].append(search(q, rerank)[1])
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    print(f"\nlatency p50 over {args.latency_searches} searches: BM25 {p50['bm25']:.1f} ms, BM25 + student (rescorer, top {depth}) "
          f"{p50['blend']:.1f} ms (+{p50['blend'] - p50['bm25']:.1f} ms)")
    print("\n" + "\n".join(summary["headline"]))
    for setting in ("judged", "rerank"):
        gold = next((r for r in summary["pairwise"][setting] if r["a"] == "student" and r["b"] == "gold-only student"), None)
        if gold:
            print(f"{setting}: distilled - gold-only student {gold['delta_ndcg_esci']:+.4f} nDCG@10 (95% CI {gold['ci_low']:+.3f}.."
                  f"{gold['ci_high']:+.3f}, p = {gold['p_value']:.3f}): what the teachers' scores on unlabeled queries add")
    print(f"report: {summary['report']['html']}\ndemo finished in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
