"""Teacher scoring on a local Ray instance (2 logical CPUs, 256 MiB object store) on tiny data: the same logits
as the single-process engine, resumable after the driver is killed, refusing incomplete or duplicated rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from distilrank.distill.data.transfer import transfer_set_from_pairs
from distilrank.distill.teacher.engine_config import EngineConfig
from distilrank.distill.teacher.logit_parts import PARTS, accept_parts
from distilrank.distill.teacher.scoring import load_logits, score_transfer_set, teacher_digest
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs
from tests.conftest import sentiment_pairs
from tests.paths import REPO_ROOT

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the scorer actors (1 thread each): the same float sums


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory) -> Path:
    """A one-logit cross-encoder checkpoint (its head saved, so every actor loads the same weights)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("teacher")
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=1)
    torch.nn.init.normal_(model.classifier.weight, std=3.0)  # logits that differ visibly from row to row
    model.save_pretrained(str(d))
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def local_ray():
    from distilrank.distill.teacher.ray_scoring import ensure_ray

    ensure_ray(EngineConfig(engine="ray", workers=2, object_store_mb=256))
    yield
    ray.shutdown()


def _pairs(n: int) -> Pairs:
    p = sentiment_pairs(n, seed=4)
    return Pairs([f"red shoes {i % 5}" for i in range(n)], p.texts)


KW = dict(batch_size=1, max_length=32, device="cpu")  # batch 1: no padding, so logits do not depend on the batching


def test_ray_and_local_engines_give_identical_logits(teacher, local_ray, tmp_path):
    from distilrank.distill.teacher.ray_scoring import score_transfer_set_ray

    pairs = _pairs(300)
    score_transfer_set(teacher, pairs, tmp_path / "local", chunk_size=64, **KW)
    ts = transfer_set_from_pairs(pairs, tmp_path / "ts", rows_per_shard=100)
    rep = score_transfer_set_ray(teacher, ts, tmp_path / "ray", EngineConfig(engine="ray", workers=2, chunk_rows=40, part_rows=50), **KW)
    assert rep["rows_scored"] == 300 and rep["complete"]
    np.testing.assert_array_equal(load_logits(tmp_path / "ray"), load_logits(tmp_path / "local"))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ray" / "logits.parquet")
    np.testing.assert_array_equal(table.column("row_id").to_numpy(), np.arange(300))
    again = score_transfer_set_ray(teacher, ts, tmp_path / "ray", EngineConfig(engine="ray"), **KW)
    assert again["rows_scored"] == 0  # accepted: nothing to do
    # batched scoring (padding) agrees to float rounding
    rep = score_transfer_set_ray(teacher, ts, tmp_path / "ray64", EngineConfig(engine="ray", workers=1), **{**KW, "batch_size": 64})
    np.testing.assert_allclose(load_logits(tmp_path / "ray64"), load_logits(tmp_path / "local"), atol=1e-5)
    with pytest.raises(DistilRankError, match="other data, another teacher or max_length"):
        score_transfer_set_ray(teacher, ts, tmp_path / "ray", EngineConfig(engine="ray"), **{**KW, "max_length": 16})


def test_accepting_refuses_missing_and_twice_scored_rows(teacher, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fp = {"data": "d", "teacher": teacher_digest(teacher), "max_length": 32}
    parts = tmp_path / PARTS
    parts.mkdir()
    pq.write_table(pa.table({"row_id": np.arange(0, 6), "logit": np.zeros(6, np.float32)}), parts / "part-a.parquet")
    with pytest.raises(DistilRankError, match=r"4 of 10 rows missing \(rows 6, 7, 8, 9\)"):
        accept_parts(tmp_path, fp, 10)
    pq.write_table(pa.table({"row_id": np.arange(4, 10), "logit": np.zeros(6, np.float32)}), parts / "part-b.parquet")
    with pytest.raises(DistilRankError, match=r"2 rows scored more than once \(rows 4, 5\)"):
        accept_parts(tmp_path, fp, 10)
    assert not (tmp_path / "logits.npy").exists()


DRIVER = """
import sys
from distilrank.distill.data.transfer import TransferSet
from distilrank.distill.teacher.engine_config import EngineConfig
from distilrank.distill.teacher.ray_scoring import score_transfer_set_ray
score_transfer_set_ray(sys.argv[1], TransferSet.open(sys.argv[2]), sys.argv[3],
                       EngineConfig(engine="ray", workers=1, chunk_rows=20, part_rows=20, object_store_mb=256),
                       batch_size=1, max_length=32, device="cpu")
"""


def test_a_killed_driver_resumes_and_ends_with_the_uninterrupted_logits(teacher, local_ray, tmp_path):
    from distilrank.distill.teacher.ray_scoring import score_transfer_set_ray

    pairs = _pairs(900)
    ts = transfer_set_from_pairs(pairs, tmp_path / "ts", rows_per_shard=300)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(teacher), str(ts.path), str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not list((out / PARTS).glob("part-*.parquet")):
        time.sleep(0.2)
    assert proc.poll() is None, f"the driver ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    parts_before = len(list((out / PARTS).glob("part-*.parquet")))
    assert parts_before >= 1 and not (out / "logits.npy").exists()
    rep = score_transfer_set_ray(teacher, ts, out, EngineConfig(engine="ray", workers=2, chunk_rows=50), **KW)
    assert 0 < rep["rows_before"] < 900 and rep["rows_before"] + rep["rows_scored"] == 900
    score_transfer_set(teacher, pairs, tmp_path / "uninterrupted", **KW)
    np.testing.assert_array_equal(load_logits(out), load_logits(tmp_path / "uninterrupted"))


def test_the_engine_section_of_a_run_config(tmp_path, tiny_bert):
    from distilrank.distill.config import load_config
    from distilrank.errors import ConfigError
    from distilrank.formats.pairs import write_pairs

    write_pairs(sentiment_pairs(20), tmp_path / "train.tsv")
    base = (f'[data.train]\npath = "train.tsv"\n[data.dev]\npath = "train.tsv"\n[[teachers]]\nname = "t"\nbase = "{tiny_bert}"\n'
            '[distill]\ncombine = "mean"\n')
    (tmp_path / "run.toml").write_text(base + '[engine]\nengine = "ray"\naddress = "auto"\nworkers = 4\ngpus_per_worker = 1\n')
    cfg = load_config(tmp_path / "run.toml")
    assert cfg.engine == EngineConfig(engine="ray", address="auto", workers=4, gpus_per_worker=1.0)
    assert load_config(_write(tmp_path / "plain.toml", base)).engine.engine == "local"
    with pytest.raises(ConfigError, match=r"field 'engine.engine': must be one of \['local', 'ray'\]"):
        load_config(_write(tmp_path / "bad.toml", base + '[engine]\nengine = "spark"\n'))
    with pytest.raises(ConfigError, match=r"field 'engine.workers': must be >= 1"):
        load_config(_write(tmp_path / "bad.toml", base + '[engine]\nworkers = 0\n'))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_scores_a_transfer_set_on_ray(teacher, local_ray, tmp_path, capsys):
    import json

    from distilrank.cli import main
    from distilrank.formats.pairs import write_pairs

    pairs = _pairs(120)
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    assert main(["transfer-set", "--input", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "ts"), "--label-field", "",
                 "--rows-per-shard", "50"]) == 0
    assert "3 Parquet shards" in capsys.readouterr().out
    assert main(["teacher", "score", "--json", "--teacher", str(teacher), "--input", str(tmp_path / "ts"), "--out", str(tmp_path / "s"),
                 "--engine", "ray", "--workers", "2", "--chunk-rows", "32", "--batch-size", "1", "--max-length", "32", "--device", "cpu"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["engine"] == "ray" and rep["rows_scored"] == 120 and rep["workers"] == 2
    score_transfer_set(teacher, pairs, tmp_path / "local", **KW)
    np.testing.assert_array_equal(load_logits(tmp_path / "s"), load_logits(tmp_path / "local"))
    assert main(["teacher", "score", "--teacher", str(teacher), "--input", str(tmp_path / "ts"), "--out", str(tmp_path / "x"),
                 "--engine", "ray", "--shard", "0/2"]) == 2
    assert "drop --shard" in capsys.readouterr().err


def _scorer_worker_pids() -> list[int]:
    """Processes of this machine's Ray scorer actors (their title is ``ray::MapWorker(MapBatches(TeacherScorer))``)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::MapWorker") and b"TeacherScorer" in cmd:
                pids.append(int(d))
    return pids


def test_a_killed_scorer_worker_is_replaced_and_no_row_is_lost_or_doubled(teacher, local_ray, tmp_path):
    import threading

    from distilrank.distill.teacher.ray_scoring import score_transfer_set_ray

    pairs = _pairs(600)
    ts = transfer_set_from_pairs(pairs, tmp_path / "ts", rows_per_shard=200)
    out, killed = tmp_path / "scores", []

    def kill_a_worker_mid_job() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            pids = _scorer_worker_pids() if list((out / PARTS).glob("part-*.parquet")) else []
            if pids:
                os.kill(pids[0], signal.SIGKILL)  # a scorer actor this test's Ray instance started
                killed.append(pids[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_worker_mid_job)
    killer.start()
    rep = score_transfer_set_ray(teacher, ts, out, EngineConfig(engine="ray", workers=1, chunk_rows=20, part_rows=20), **KW)
    killer.join()
    assert killed and rep["rows_scored"] == 600
    score_transfer_set(teacher, pairs, tmp_path / "uninterrupted", **KW)
    np.testing.assert_array_equal(load_logits(out), load_logits(tmp_path / "uninterrupted"))


def test_score_with_engine_takes_pairs_on_either_engine(teacher, local_ray, tmp_path):
    from distilrank.distill.teacher.engines import score_with_engine

    pairs = _pairs(80)
    local = score_with_engine(EngineConfig(), teacher, pairs, tmp_path / "local", **KW)
    on_ray = score_with_engine(EngineConfig(engine="ray", workers=1, chunk_rows=40), teacher, pairs, tmp_path / "ray", **KW)
    assert (local["engine"], on_ray["engine"]) == ("local", "ray") and local["complete"] and on_ray["complete"]
    assert (tmp_path / "ray" / "transfer-set" / "manifest.json").exists()  # the pairs were written as a transfer set first
    np.testing.assert_array_equal(load_logits(tmp_path / "ray"), load_logits(tmp_path / "local"))
