"""Memory the distilrank rescorer's cached models take on a node: resident set before and after each load.

Run on a freshly started node (the rescorer must hold no model yet, or freed memory is reused and hides the
cost): .venv/bin/python bench/rescorer_memory.py [--url URL] [--models 2]

Two default-architecture students (random weights, different seeds: different zips) are registered with ML
Commons without deploying them (so ML Commons loads nothing native) and uploaded to the rescorer; then one rescored
search per model loads it. Reported: the node's VmRSS (``/proc/<pid>/status``; the JVM heap is pre-touched, so RSS
growth is native memory: the ONNX Runtime library at the first load, each session's weights) after each load, the
JVM heap in use, and the rescorer's own figures (graph size, load time). Results: ``runs/bench/rescorer_memory.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "integration" / "cluster"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "rescorer_memory.json"))
    args = ap.parse_args()

    import torch
    from rerank_latency import INDEX, build_index, catalogue, node_memory, node_url

    from distilrank.atomic import write_json
    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig, StudentModel
    from distilrank.distill.student.store import save_student
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.plugin import api, rescore

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    if rescore.loaded_models(t):
        raise SystemExit("the rescorer already holds models on this node: restart it (integration/cluster/stop; start) so "
                         "the measurement starts from a clean process")
    products = catalogue()
    build_index(t.client, products)
    titles = [p["title"] for p in products]
    tok = build_student_tokenizer(titles, min_count=1, max_length=128)
    rows = []
    with tempfile.TemporaryDirectory(prefix="distilrank-mem-") as tmp:
        for seed in range(args.models):
            torch.manual_seed(seed)
            model = StudentModel(StudentConfig(vocab_size=tok.get_vocab_size())).eval()
            save_student(model, tok, Path(tmp) / f"s{seed}", metadata={"variant": "memory bench (random weights)"})
            res = export_student(Path(tmp) / f"s{seed}", Path(tmp) / f"e{seed}", name=f"mem-student-{seed}")
            reg = api.register(t, res.zip, group="distilrank-bench-memory", name=f"mem-student-{seed}", progress=False)
            before = node_memory(t.client, url)
            t0 = time.perf_counter()
            body = rescore.rescore_search_body("hp laptop", model=reg["model_id"], fields=["title"], window_size=100)
            t.client.search(index=INDEX, body=body, params={"search_pipeline": "_none"})
            first_ms = 1000 * (time.perf_counter() - t0)
            time.sleep(1)
            after = node_memory(t.client, url)
            info = next(m for m in rescore.loaded_models(t) if m["model_id"] == reg["model_id"])
            rows.append({"model_id": reg["model_id"], "rss_before": before["rss_bytes"], "rss_after": after["rss_bytes"],
                         "rss_added_bytes": after["rss_bytes"] - before["rss_bytes"], "heap_before": before["heap_used_bytes"],
                         "heap_after": after["heap_used_bytes"], "first_search_ms": first_ms, **info})
            print(f"model {seed + 1}: RSS +{rows[-1]['rss_added_bytes'] / 1e6:.0f} MB (graph {info['onnx_bytes'] / 1e6:.1f} MB, "
                  f"vocab {info['vocab_size']:,}, node-side load {info['load_ms']} ms, first search {first_ms:.0f} ms)", file=sys.stderr)
    for r in rows:
        api.delete(t, r["model_id"], force=True)
    t.client.indices.delete(index=INDEX)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"url": url, "models": rows})
    print(f"written {out}")


if __name__ == "__main__":
    main()
