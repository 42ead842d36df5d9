"""End to end: `distilrank run CONFIG` with two tiny BERT teachers, then a resumed re-run."""

import json
import re

import numpy as np
import pytest

from distilrank.distill.config import load_config
from distilrank.distill.pipeline import run_pipeline
from distilrank.errors import ConfigError
from distilrank.formats.pairs import write_pairs
from tests.conftest import sentiment_pairs

CONFIG = """
out_dir = "out"
seed = 0
[data]
stack_holdout = 0.2
[data.train]
path = "train.tsv"
[data.dev]
path = "dev.jsonl"
[[data.transfer]]
path = "unlabeled.jsonl"
label_field = ""
[[data.transfer]]
use = "train"
[augment]
n_per_example = 1
[[teachers]]
name = "big"
base = "{bert}"
epochs = 3
batch_size = 16
lr = 3e-3
max_length = 16
[[teachers]]
name = "small"
base = "{bert}"
num_layers = 1
epochs = 3
batch_size = 16
lr = 3e-3
max_length = 16
seed = 1
[distill]
temperature = 2.0
combine = "stack"
temperatures = [1.0, 2.0]
[student]
embedding_dim = 16
hidden = [32, 16]
bigram_buckets = 1009
epochs = 3
batch_size = 64
lr = 3e-3
embedding_lr = 3e-2
"""


@pytest.fixture()
def config_path(tmp_path, tiny_bert):
    write_pairs(sentiment_pairs(300), tmp_path / "train.tsv")
    write_pairs(sentiment_pairs(120, seed=1), tmp_path / "dev.jsonl")
    write_pairs(sentiment_pairs(200, seed=2).without_labels(), tmp_path / "unlabeled.jsonl")
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(bert=tiny_bert))
    return path


def test_run_pipeline_end_to_end_and_resume(config_path, tmp_path):
    logs: list[str] = []
    summary = run_pipeline(load_config(config_path), progress=False, log=logs.append)
    out = tmp_path / "out"
    assert summary["data"]["stack_holdout"] == 60 and summary["data"]["teacher_train"] == 240
    assert summary["data"]["transfer_unlabeled"] == 500
    students = {r["student"]: r for r in summary["students"]}
    assert set(students) == {"main", "gold-labels-only", "T=1", "combine=big", "combine=small", "combine=mean", "interactions"}
    teacher_acc = summary["main"]["teacher"]["accuracy"]
    assert teacher_acc > 0.9
    assert students["main"]["dev_accuracy"] > 0.85
    assert summary["main"]["recovery"]["accuracy"] == pytest.approx(students["main"]["dev_accuracy"] / teacher_acc)
    assert len(summary["stacker"]["weights"]) == 2
    assert [r["temperature"] for r in summary["temperature"]] == [1.0, 2.0]
    # speed is a measurement (bench/ compares it side by side), not a pass/fail: check what was recorded
    speed = summary["speed"]
    assert speed["teacher"] == "big" and speed["student_ms_per_100_pairs"] > 0 and speed["teacher_ms_per_100_pairs"] > 0
    assert speed["teacher_over_student"] == pytest.approx(speed["teacher_ms_per_100_pairs"] / speed["student_ms_per_100_pairs"])
    for name in ("report.html", "report.md", "eval.json", "scatter.png"):
        assert (out / "report" / name).exists()
    assert json.loads((out / "run.json").read_text())["students"] == summary["students"]
    assert (out / "students" / "main" / "tokenizer.json").exists()

    # second run: every stage is found done and reused, same numbers; no model file is written again, and the
    # teacher scores keep their content (score_transfer_set re-writes a complete split's logits.npy/meta.json)
    model_dirs = [out / "teachers", out / "students"]
    before, scores_before = _mtimes(model_dirs), _contents(out / "scores")
    assert scores_before and any(p.endswith("logits.npy") for p in scores_before)
    trained = re.compile(r"(student|teacher) \S+: trained[ ,]")
    assert len([line for line in logs if trained.match(line)]) == 2 + len(students)  # the first run trained every model
    logs2: list[str] = []
    again = run_pipeline(load_config(config_path), progress=False, log=logs2.append)
    assert again["students"] == summary["students"]
    assert sum("already trained" in line for line in logs2) == 2  # both teachers
    assert not [line for line in logs2 if trained.match(line)]  # nothing trained again
    assert _mtimes(model_dirs) == before
    assert _contents(out / "scores") == scores_before


def _mtimes(dirs) -> dict:
    """``{path: (size, mtime_ns)}`` of every file under ``dirs``."""
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for d in dirs for f in sorted(d.rglob("*")) if f.is_file()}


def _contents(root) -> dict:
    """``{path: bytes}`` of every ``.npy`` file under ``root`` (the scores themselves)."""
    return {str(f): f.read_bytes() for f in sorted(root.rglob("*.npy"))}


def test_config_errors_name_the_field(tmp_path, config_path):
    text = config_path.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('combine = "stack"', 'combine = "median"'))
    with pytest.raises(ConfigError, match=r"bad.toml: field 'distill.combine'"):
        load_config(bad)
    bad.write_text(text.replace("epochs = 3\nbatch_size = 64", "epochs = \"three\"\nbatch_size = 64"))
    with pytest.raises(ConfigError, match=r"field 'student.epochs': expected int"):
        load_config(bad)
    bad.write_text(text.replace('path = "train.tsv"', 'path = "missing.tsv"'))
    with pytest.raises(ConfigError, match=r"field 'data.train.path': .*missing.tsv does not exist"):
        load_config(bad)
    bad.write_text(text + "\n[extra]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"field 'extra': unknown field"):
        load_config(bad)
    bad.write_text("out_dir = [")
    with pytest.raises(ConfigError, match=r"<syntax>"):
        load_config(bad)


SELECT_CONFIG = """
out_dir = "out2"
seed = 0
[data]
select_sentences = 60
[data.train]
path = "train.tsv"
[data.dev]
path = "dev.jsonl"
[[data.transfer]]
path = "unlabeled.jsonl"
label_field = ""
[augment]
n_per_example = 1
[[teachers]]
name = "big"
base = "{bert}"
epochs = 3
batch_size = 16
lr = 3e-3
max_length = 16
[distill]
combine = "big"
experiments = ["gold", "loss", "init", "gold-init"]
scale_curve = [150]
ablation_rows = 200
[student]
embedding_dim = 16
hidden = [32, 16]
bigram_buckets = 1009
epochs = 2
batch_size = 64
lr = 3e-3
embedding_lr = 3e-2
"""


def test_select_split_experiments_and_paired_tests(config_path, tmp_path, tiny_bert):
    path = tmp_path / "select.toml"  # config_path: the data files beside it
    path.write_text(SELECT_CONFIG.format(bert=tiny_bert))
    summary = run_pipeline(load_config(path), progress=False, log=lambda line: None)
    out = tmp_path / "out2"
    assert summary["data"]["select"] == 60 and summary["data"]["train"] <= 240
    students = {r["student"]: r for r in summary["students"]}
    assert set(students) == {"main", "gold-labels-only", "gold-labels-only+init=teacher", "loss=mse@200", "init=teacher@200",
                             "main@200", "main@150"}
    assert students["loss=mse@200"]["loss"] == "mse" and students["loss=mse@200"]["T"] == "-"
    assert students["main@150"]["train_rows"] == 150 and students["init=teacher@200"]["train_rows"] == 200
    teachers = {(t["teacher"], t["split"]): t["accuracy"] for t in summary["teachers"]}
    for r in students.values():
        for split in ("select", "dev"):
            lo, hi = r[f"{split}_ci95"]
            assert lo <= r[f"{split}_accuracy"] <= hi
            assert r[f"{split}_recovery_own"] == pytest.approx(r[f"{split}_accuracy"] / teachers[("big", split)])
        assert r["onnx_ms_per_pair"] > 0
    # paired rows: every student minus the gold-label baseline, each ablation minus main@200, on both splits; the delta
    # is the accuracy difference
    paired = {(p["student"], p["baseline"], p["split"]): p for p in summary["paired"]}
    expected = {(s, "gold-labels-only") for s in students if s != "gold-labels-only"}
    expected |= {("loss=mse@200", "main@200"), ("init=teacher@200", "main@200")}
    assert set(paired) == {(s, b, split) for s, b in expected for split in ("select", "dev")}
    for (s, b, split), p in paired.items():
        assert p["delta_accuracy"] == pytest.approx(students[s][f"{split}_accuracy"] - students[b][f"{split}_accuracy"])
        assert p["ci_low"] <= p["delta_accuracy"] <= p["ci_high"] and 0 < p["p_value"] <= 1
    init = np.load(out / "students" / "init-16.npy")
    assert init.shape[1] == 16 and np.isfinite(init).all()
    assert [r["transfer_rows"] for r in summary["scale_curve"]] == [150, 200, summary["data"]["transfer_total"]]
    assert (out / "report" / "scale_curve.png").exists()
    assert "the teacher it learned from (big)" in summary["summary"]
    # a changed student setting never silently reuses the old student
    path.write_text(path.read_text().replace("epochs = 2\n", "epochs = 3\n"))
    with pytest.raises(ConfigError, match=r"students/main\S*: field 'train.epochs': this student was trained with other settings"):
        run_pipeline(load_config(path), progress=False, log=lambda line: None)
