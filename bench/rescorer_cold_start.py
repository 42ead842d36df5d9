"""The first rescored search after a model change and after a node restart, and where the model load's time goes.

Run: .venv/bin/python bench/rescorer_cold_start.py --zip runs/esci/final/export/distilrank-esci-student.zip [--repeats 5]

Starts its own tier-2 node (the offline assembly of ``integration/cluster``, a free port, its own run folder, removed
afterwards), indexes the first ``--products`` ESCI products as the catalogue indexer does and uploads the zip to the
rescorer. Then ``--repeats`` times each:

* ``model change``: a new model (the same zip with one extra file, so a new SHA-256, uploaded under a new id, as a
  promote to a freshly registered version does) named in a rescored search: the first search loads it;
* ``model change, warmed``: the same, but ``_warm`` (what ``plugin promote`` calls before the alias moves) runs first;
* ``restart``: stop the node, start it on its data, and rescore with the first model.

For each: the first rescored search's client wall time (the load happens inside it), the next (warm) one, and the
node's load steps for that model (``_stats`` ``load_steps_ms``: reading the zip's chunks from the system index,
verifying its SHA-256, unzipping, parsing tokenizer.json, creating the ONNX Runtime session, one warm-up batch).
Prints medians; writes ``bench/results/rescorer_cold_start.json`` with every measurement and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT))
INDEX = "distilrank-bench-cold"
QUERY = "usb c charger"


def _node(run_root: str, port: int, keep_data: bool) -> dict:
    import oscluster

    os.environ["DISTILRANK_OPENSEARCH_RUN"] = run_root
    return oscluster.start(tier=2, http_port=port, heap="1g", offline=True, keep_data=keep_data, timeout=300)


def _stop(run_root: str) -> None:
    import oscluster

    os.environ["DISTILRANK_OPENSEARCH_RUN"] = run_root
    oscluster.stop(name="dev")


def _body(model_id: str) -> dict:
    from distilrank.plugin.rescore import rescore_search_body

    return rescore_search_body(QUERY, model=model_id, fields=["distilrank_text"], window_size=100, size=10,
                               query={"match": {"title": QUERY}})


def _measure(t, model_id: str) -> dict:
    """First and second rescored search naming ``model_id`` (ms), and the node's load steps for it."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        t.request("POST", f"/{INDEX}/_search", _body(model_id), params={"search_pipeline": "_none"})
        times.append(1000 * (time.perf_counter() - t0))
    from distilrank.plugin import rescorer_api

    steps = next(m.get("load_steps_ms", {}) for m in rescorer_api.loaded_models(t) if m["model_id"] == model_id)
    return {"first_ms": times[0], "warm_ms": times[1], "load_steps_ms": steps}


def _runs(t, run_root: str, port: int, zip_path: Path, repeats: int, work: Path) -> dict[str, list[dict]]:
    from distilrank.plugin import rescore, rescorer_api
    from tests.zips import rezip

    runs: dict[str, list[dict]] = {"model change": [], "model change, warmed": [], "restart": []}
    for i in range(repeats):
        for mode in ("model change", "model change, warmed"):
            variant = rezip(zip_path, work / f"variant-{i}-{len(mode)}.zip", add=(("variant.txt", f"{mode} {i}"),))
            model_id = f"bench-cold-{os.getpid()}-{i}-{len(mode)}"
            rescore.upload_model(t, model_id, variant)
            warm = rescorer_api.warm(t, model_id, window_size=100) if mode.endswith("warmed") else None
            runs[mode].append({**_measure(t, model_id), "warm_call": warm})
        _stop(run_root)
        _node(run_root, port, keep_data=True)
        runs["restart"].append(_measure(t, "bench-cold-base"))
        for mode in runs:
            r = runs[mode][-1]
            print(f"{mode}: first rescored search {r['first_ms']:.0f} ms, then {r['warm_ms']:.1f} ms; load steps "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r["load_steps_ms"].items()), file=sys.stderr)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", required=True, help="the student zip to load")
    ap.add_argument("--repeats", type=int, default=5, help="model changes and restarts measured")
    ap.add_argument("--products", type=int, default=2000, help="ESCI products indexed (the first N)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rescorer_cold_start.json"), help="JSON results")
    args = ap.parse_args()
    import oscluster

    from distilrank.catalogue import DocumentText, read_catalogue
    from distilrank.data_root import require_data
    from distilrank.plugin import api, rescore
    from distilrank.plugin.catalogue_index import index_catalogue

    run_root, port = tempfile.mkdtemp(prefix="distilrank-cold-"), oscluster.free_node_port()
    try:
        state = _node(run_root, port, keep_data=False)
        t = api.connect(url=state["url"], timeout=300, retries=3)
        catalogue = read_catalogue(require_data("esci-shopping/products.jsonl"), id_field="asin", limit=args.products)
        index_catalogue(t, INDEX, catalogue, DocumentText(fields=["title", "brand", "color"], max_chars=0, index_field="distilrank_text"))
        rescore.upload_model(t, "bench-cold-base", args.zip)
        _measure(t, "bench-cold-base")
        load = list(os.getloadavg())
        runs = _runs(t, run_root, port, Path(args.zip), args.repeats, Path(run_root))
        _stop(run_root)
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
    result = {"zip": args.zip, "zip_bytes": Path(args.zip).stat().st_size, "products": args.products, "repeats": args.repeats,
              "runs": runs, "load_average": load, "load_average_after": list(os.getloadavg()), "cpus": os.cpu_count(),
              "median_first_ms": {m: float(np.median([r["first_ms"] for r in v])) for m, v in runs.items()},
              "median_warm_ms": {m: float(np.median([r["warm_ms"] for r in v])) for m, v in runs.items()},
              "median_load_steps_ms": {m: {k: float(np.median([r["load_steps_ms"].get(k, np.nan) for r in v]))
                                           for k in v[0]["load_steps_ms"]} for m, v in runs.items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median of {args.repeats} ({result['zip_bytes']:,}-byte zip, load {load[0]:.2f} on {os.cpu_count()} cores):")
    for m in runs:
        steps = ", ".join(f"{k} {v:.0f}" for k, v in result["median_load_steps_ms"][m].items())
        print(f"  {m}: first rescored search {result['median_first_ms'][m]:.0f} ms, warm {result['median_warm_ms'][m]:.1f} ms; "
              f"load steps (ms) {steps}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
