"""Teacher scoring on Ray Data: the transfer set's Parquet shards through an actor pool of teacher scorers.

``ray.data.read_parquet`` reads the shards, ``map_batches`` with :class:`TeacherScorer` (a callable class:
each actor loads the teacher once) scores them ``chunk_rows`` at a time, and the driver writes the logits
keyed by row id to Parquet part files (:mod:`distilrank.distill.teacher.logit_parts`).  Resumable: a killed driver
loses at most the rows it had not yet written; a lost worker is restarted by Ray and its batch retried; a
re-run scores only the rows no part holds.  Before the logits are accepted every row id must be there
exactly once.  With no address a local Ray instance is started (``num_cpus`` enough for the workers, a
small object store); with one, the same job runs on that cluster.  Logits are raw teacher logits (float32),
the same as :func:`distilrank.distill.teacher.scoring.score_transfer_set` gives for the same rows.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from distilrank.distill.config import TeacherConfig
from distilrank.distill.data.transfer import QUERY, ROW_ID, TEXT, TransferSet
from distilrank.distill.teacher.engine_config import EngineConfig
from distilrank.distill.teacher.logit_parts import PartWriter, accept_parts, is_accepted, open_parts, scored_mask
from distilrank.distill.teacher.scoring import teacher_digest
from distilrank.pairs import Pairs


class TeacherScorer:
    """Ray Data callable class: ``{"row_id", "query", "text"}`` numpy batch -> ``{"row_id", "logit"}`` of the
    rows not yet scored (``done[row_id]`` False)."""

    def __init__(self, teacher_path: str, max_length: int, batch_size: int, single_text: bool, done: np.ndarray,
                 device: str = "auto", precision: str = "auto", threads: int = 1):
        import torch

        from distilrank.distill.teacher.model import load_teacher

        torch.set_num_threads(max(1, threads))
        self.teacher = load_teacher(teacher_path, device=device, max_length=max_length, precision=precision)
        self.max_length, self.batch_size, self.single_text, self.done = max_length, batch_size, single_text, done

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch[ROW_ID], dtype=np.int64)
        keep = ~self.done[ids]
        ids = ids[keep]
        pairs = Pairs([str(q) for q in batch[QUERY][keep]], [str(t) for t in batch[TEXT][keep]])
        logits = self.teacher.score(pairs, batch_size=self.batch_size, max_length=self.max_length, single_text=self.single_text)
        return {ROW_ID: ids, "logit": logits.astype(np.float32)}


def ensure_ray(engine: EngineConfig) -> None:
    """Connect to ``engine.address``, or start a local instance sized for ``engine.workers`` (no-op when
    this process is already connected)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    ctx_kwargs = dict(logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
    if engine.address:
        ray.init(address=engine.address, **ctx_kwargs)
    else:
        cpus = max(2, math.ceil(engine.workers * engine.cpus_per_worker + 0.5))
        ray.init(num_cpus=cpus, num_gpus=None, object_store_memory=engine.object_store_mb << 20, **ctx_kwargs)


def _scoring_dataset(ts: TransferSet, teacher_path: str, engine: EngineConfig, done: np.ndarray, *, max_length: int,
                     batch_size: int, device: str, precision: str):
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # absolute paths: on a cluster the transfer set must be on a disk (or URI) every node sees. At most one read
    # task per scorer actor (unbounded, Ray Data started up to one read worker per 1M-row shard; the summed RSS of
    # the Ray processes at 1M / 4M pairs went 4.6 / 5.6 GB -> 4.4 / 5.3 GB with this bound, README)
    ds = ray.data.read_parquet([str(p.resolve()) for p in ts.shard_paths()], num_cpus=0.25, concurrency=engine.workers)
    # blocks of chunk_rows rows: results reach the driver (and its part files) one chunk at a time
    ds = ds.select_columns([ROW_ID, QUERY, TEXT]).repartition(target_num_rows_per_block=engine.chunk_rows)
    return ds.map_batches(
        TeacherScorer, batch_size=engine.chunk_rows, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=engine.workers),
        num_cpus=engine.cpus_per_worker, num_gpus=engine.gpus_per_worker or None,
        fn_constructor_kwargs=dict(teacher_path=teacher_path, max_length=max_length, batch_size=batch_size, single_text=ts.single_text,
                                   done=done, device=device, precision=precision, threads=math.ceil(engine.cpus_per_worker or 1)))


def score_transfer_set_ray(
    teacher_path: str | Path,
    transfer: TransferSet,
    out_dir: str | Path,
    engine: EngineConfig | None = None,
    *,
    batch_size: int = TeacherConfig.score_batch_size,
    max_length: int = TeacherConfig.max_length,
    device: str = "auto",
    precision: str = "auto",
    log=None,
) -> dict:
    """Score the rows of ``transfer`` not yet in ``out_dir``, then accept the logits (see the module doc).

    Returns a report: ``rows_scored`` (this call), ``rows_before`` (already there), ``seconds``,
    ``rows_per_second`` (this call; NaN when nothing was scored), ``workers``, ``complete`` (always True on
    return: an incomplete result raises) and ``logits`` (path of ``logits.npy``).
    """
    engine = engine or EngineConfig(engine="ray")
    engine.check()
    out = Path(out_dir)
    n = len(transfer)
    fp = {"data": transfer.digest, "teacher": teacher_digest(teacher_path), "max_length": int(max_length)}
    report = {"engine": "ray", "workers": engine.workers, "rows": n, "rows_before": n, "rows_scored": 0, "seconds": 0.0,
              "rows_per_second": float("nan"), "complete": True, "logits": str(out / "logits.npy")}
    if is_accepted(out, fp, n):
        return report
    parts = open_parts(out, fp, n)
    done = scored_mask(parts, n)
    report["rows_before"] = int(done.sum())
    t0 = time.perf_counter()
    if not done.all():
        ensure_ray(engine)
        writer = PartWriter(parts, engine.part_rows)
        ds = _scoring_dataset(transfer, str(teacher_path), engine, done, max_length=max_length, batch_size=batch_size,
                              device=device, precision=precision)
        next_log = engine.part_rows * 8
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            writer.add(batch[ROW_ID], batch["logit"])
            if log is not None and writer.rows_written >= next_log:  # a line per 8 part files off a terminal
                log(f"ray scoring: {report['rows_before'] + writer.rows_written}/{n} rows written")
                next_log += engine.part_rows * 8
        writer.close()
        report["rows_scored"] = writer.rows_written
    report["seconds"] = time.perf_counter() - t0
    if report["rows_scored"]:
        report["rows_per_second"] = report["rows_scored"] / report["seconds"]
    accept_parts(out, fp, n, {"engine": "ray", "teacher": str(teacher_path), "max_length": int(max_length)})
    return report
