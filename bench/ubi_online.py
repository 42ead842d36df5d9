"""The online A/B loop on the node, end to end: simulated users search BM25 and BM25 + the distilled student (the
rescorer's blend), click by the human ESCI judgments, their UBI log is read back and analysed by ``ab online``.

Run: .venv/bin/python bench/ubi_online.py --zip runs/esci/final/export/distilrank-esci-student.zip
     [--searches 20000] [--users 2000] [--interleaved 4000] [--url URL]

On the ESCI catalogue indexed as ``configs/esci.toml`` indexes it (index ``distilrank-esci``), with the zip uploaded to
the rescorer (``plugin register``, not deployed in ML Commons): an ``ab run``-style config with two arms, ``bm25``
(multi-field BM25) and ``student`` (the same first pass + ``rescore.distilrank`` over the top 100, the blend stored
with the model), judgments = the 100 judged ESCI dev queries. Then, with the commands a relevance engineer runs:

1. ``distilrank ab simulate-ubi``: ``--searches`` searches by ``--users`` users, each user sticky to one arm, clicks
   from the simulator's position-biased click model (labelled simulated), into this bench's own UBI indices;
2. the same with ``--interleave bm25,student`` for ``--interleaved`` more searches (team-draft lists, teams logged);
3. ``distilrank ab online``: per-arm CTR / MRR / abandonment / add-to-cart with user-level bootstrap CIs and
   permutation p-values, interleaving credit, COEC judgments and their Kendall tau-b against the human grades (and
   raw CTR's), timed.

Prints the summary; writes ``bench/results/ubi_online_esci.json`` (and the ``ab online`` report under ``runs/``).
The clicks are simulated from the human judgments, so the outcome measures the judged quality of each arm's top 10
through a click model, not real users.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))
INDEX = "distilrank-esci"
QUERIES, EVENTS = "distilrank-bench-ubi-queries", "distilrank-bench-ubi-events"
START, INTERLEAVED_START, END = "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z", "2026-01-02T00:00:00Z"
BM25 = {"multi_match": {"query": "{{query}}", "fields": ["title^2", "brand", "color", "bullet_points", "description"],
                        "type": "best_fields", "tie_breaker": 0.3}}


def _ab_config(work: Path, model_id: str, url: str) -> Path:
    from distilrank.data_root import require_data

    judgments = require_data("esci-shopping/judgments-dev.jsonl")
    arms = (f"[[arm]]\nname = \"bm25\"\nquery = {_toml(BM25)}\n\n"
            f"[[arm]]\nname = \"student\"\nquery = {_toml(BM25)}\n"
            f"rescore = {{ model = \"{model_id}\", fields = [\"distilrank_text\"], window_size = 100, score_mode = \"blend\" }}\n")
    path = work / "ab-esci-online.toml"
    path.write_text(f"[opensearch]\nurl = \"{url}\"\n\n[experiment]\nname = \"esci-online\"\nindex = \"{INDEX}\"\nk = 10\n"
                    f"judgments = \"{judgments}\"\nid_field = \"doc_id\"\nseed = 0\nout = \"{work / 'ab'}\"\n\n{arms}")
    return path


def _toml(obj) -> str:
    """A JSON-like object as a TOML inline table."""
    if isinstance(obj, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in obj.items()) + " }"
    if isinstance(obj, list):
        return "[" + ", ".join(_toml(v) for v in obj) + "]"
    return json.dumps(obj)


def _online_config(work: Path, out: Path, url: str) -> Path:
    from distilrank.data_root import require_data

    path = work / "online.toml"
    path.write_text(f"[online]\nname = \"esci-online\"\ncontrol = \"bm25\"\nstart = \"{START}\"\nend = \"{END}\"\n"
                    f"queries_index = \"{QUERIES}\"\nevents_index = \"{EVENTS}\"\nresamples = 2000\npermutations = 2000\n"
                    f"seed = 0\nout = \"{out}\"\n\n[coec]\njudgments = \"{require_data('esci-shopping/judgments-dev.jsonl')}\"\n\n"
                    f"[opensearch]\nurl = \"{url}\"\n")
    return path


def _cli(args: list[str]) -> dict:
    """Run ``distilrank ARGS --json`` in this process; its JSON answer."""
    import contextlib
    import io

    from distilrank.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([*args, "--json"])
    if rc != 0:
        raise SystemExit(f"distilrank {' '.join(args)} exited {rc}: {buf.getvalue()[-2000:]}")
    return json.loads(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", required=True, help="the student zip (uploaded to the rescorer)")
    ap.add_argument("--searches", type=int, default=20_000, help="simulated A/B searches (users split 50/50)")
    ap.add_argument("--users", type=int, default=2_000, help="simulated users")
    ap.add_argument("--interleaved", type=int, default=4_000, help="simulated searches shown a team-draft interleaving")
    ap.add_argument("--url", help="node URL (default: $OPENSEARCH_URL or the local test node)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ubi_online_esci.json"), help="JSON results")
    args = ap.parse_args()
    from rerank_latency import node_url

    from distilrank.catalogue import DocumentText, read_catalogue
    from distilrank.data_root import require_data
    from distilrank.plugin import api, index_api
    from distilrank.plugin.catalogue_index import index_catalogue

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    catalogue = read_catalogue(require_data("esci-shopping/products.jsonl"), id_field="asin")
    index_catalogue(t, INDEX, catalogue, DocumentText(fields=["title", "brand", "color"], max_chars=0, index_field="distilrank_text"),
                    recreate=True)
    reg = api.register(t, args.zip, group="distilrank-bench-ubi", name="bench-ubi-student", deploy=False, progress=False, smoke=False)
    for name in (QUERIES, EVENTS):
        if index_api.index_exists(t, name):
            index_api.delete_index(t, name)
    run_out = ROOT / "runs" / "bench" / "ubi-online-esci"
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="distilrank-bench-ubi-") as tmp:
        work = Path(tmp)
        cfg = str(_ab_config(work, reg["model_id"], url))
        common = ["--queries-index", QUERIES, "--events-index", EVENTS, "--url", url, "--spacing-ms", "100"]
        t0 = time.perf_counter()
        ab = _cli(["ab", "simulate-ubi", cfg, "--searches", str(args.searches), "--users", str(args.users),
                   "--start", START, *common])
        simulate_s = time.perf_counter() - t0
        inter = _cli(["ab", "simulate-ubi", cfg, "--searches", str(args.interleaved), "--users", str(args.users // 2),
                      "--seed", "1", "--interleave", "bm25,student", "--start", INTERLEAVED_START, *common])
        t0 = time.perf_counter()
        online = _cli(["ab", "online", str(_online_config(work, run_out, url))])
        online_s = time.perf_counter() - t0
    for name in (QUERIES, EVENTS):
        index_api.delete_index(t, name)
    result = {"node": t.client.info()["version"]["number"], "url": url, "zip": args.zip, "model_id": reg["model_id"],
              "searches": args.searches, "users": args.users, "interleaved_searches": args.interleaved,
              "simulate_seconds": simulate_s, "ab_online_seconds": online_s, "simulated": ab, "simulated_interleaved": inter,
              "online": online, "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
              "cpus": os.cpu_count()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("searches", "users", "interleaved_searches", "simulate_seconds", "ab_online_seconds")}))
    print(json.dumps(online, indent=1)[:6000])
    print(f"results: {out}; report: {run_out}")


if __name__ == "__main__":
    main()
