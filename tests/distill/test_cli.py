"""The `distilrank` command line: each stage as a subcommand, --json output, clear errors."""

import json
import shutil
import subprocess
import sys

from distilrank.cli import main
from distilrank.formats.pairs import write_pairs
from tests.conftest import sentiment_pairs


def run_json(capsys, *argv):
    assert main(["--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_stage_by_stage_cli(tmp_path, tiny_bert, capsys):
    write_pairs(sentiment_pairs(240), tmp_path / "train.csv")
    write_pairs(sentiment_pairs(80, seed=1), tmp_path / "dev.csv")
    write_pairs(sentiment_pairs(60, seed=2), tmp_path / "holdout.csv")
    teacher = run_json(capsys, "teacher", "train", "--base", str(tiny_bert), "--train", str(tmp_path / "train.csv"),
                       "--dev", str(tmp_path / "dev.csv"), "--out", str(tmp_path / "teacher"), "--epochs", "3",
                       "--batch-size", "16", "--lr", "3e-3", "--max-length", "16")
    assert teacher["best"]["accuracy"] > 0.9

    aug = run_json(capsys, "augment", str(tmp_path / "train.csv"), "--out", str(tmp_path / "aug.jsonl"), "--n-per-example", "4")
    assert aug["output_rows"] > 100
    best = str(tmp_path / "teacher" / "best")
    for split in ("aug", "dev", "holdout"):
        suffix = "jsonl" if split == "aug" else "csv"
        for shard in ("0/2", "1/2"):
            rep = run_json(capsys, "teacher", "score", "--teacher", best, "--input", str(tmp_path / f"{split}.{suffix}"),
                           "--out", str(tmp_path / "scores" / split), "--shard", shard, "--chunk-size", "32", "--max-length", "16")
        assert rep["complete"]
    sweep = run_json(capsys, "targets", "sweep", "--scores", str(tmp_path / "scores" / "dev"), "--data", str(tmp_path / "dev.csv"))
    assert [r["temperature"] for r in sweep["sweep"]] == [1.0, 2.0, 4.0]
    stack = run_json(capsys, "targets", "stack", "--scores", str(tmp_path / "scores" / "holdout"), "--names", "t1",
                     "--data", str(tmp_path / "holdout.csv"), "--out", str(tmp_path / "stacker.json"))
    assert stack["teachers"] == ["t1"] and stack["weights"][0] > 0

    student = run_json(capsys, "student", "train", "--data", str(tmp_path / "aug.jsonl"), "--scores", str(tmp_path / "scores" / "aug"),
                       "--stacker", str(tmp_path / "stacker.json"), "--temperature", "2", "--out", str(tmp_path / "student"),
                       "--embedding-dim", "16", "--hidden", "32,16", "--bigram-buckets", "1009", "--epochs", "6",
                       "--batch-size", "32", "--lr", "3e-3", "--embedding-lr", "3e-2")
    assert student["epochs_run"] == 6
    listwise = run_json(capsys, "student", "train", "--data", str(tmp_path / "aug.jsonl"), "--scores", str(tmp_path / "scores" / "aug"),
                        "--loss", "listwise", "--match-features", "--out", str(tmp_path / "listwise"), "--embedding-dim", "8",
                        "--hidden", "8", "--bigram-buckets", "1009", "--epochs", "1", "--batch-size", "32")
    assert listwise["epochs_run"] == 1  # rows grouped by their query string
    ev = run_json(capsys, "eval", "--student", str(tmp_path / "student"), "--data", str(tmp_path / "dev.csv"),
                  "--teacher-scores", str(tmp_path / "scores" / "dev"), "--out", str(tmp_path / "eval"))
    assert ev["result"]["student"]["accuracy"] > 0.85
    assert ev["result"]["recovery"]["accuracy"] > 0.85
    assert (tmp_path / "eval" / "report.html").exists()

    # human-readable mode ends with a short report
    assert main(["teacher", "merge", "--out", str(tmp_path / "scores" / "dev")]) == 0
    assert "merged 80 logits" in capsys.readouterr().out


def test_errors_exit_2_with_location(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "text": "t", "label": 1}\n{"query": "q"}\n')
    assert main(["augment", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "bad.jsonl:2: missing field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    assert main(["student", "train", "--data", str(bad), "--out", str(tmp_path / "s")]) == 2


def test_console_script_is_installed():
    exe = shutil.which("distilrank") or str(__import__("pathlib").Path(sys.executable).parent / "distilrank")
    out = subprocess.run([exe, "--json", "ab", "assign", "--experiment", "e", "--salt", "s", "--arm", "only::100", "u1"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["assignments"][0]["arm"] == "only"


def test_every_subcommand_dispatches_to_its_own_function():
    """``set_defaults(func=...)`` on every leaf subcommand, one function each (no if/elif dispatch on the name)."""
    from distilrank.cli import build_parser

    def leaves(parser, path=()):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield path, parser.get_default("func")
        for action in subs:
            for name, sub in action.choices.items():
                yield from leaves(sub, (*path, name))

    funcs = dict(leaves(build_parser()))
    assert {p[0] for p in funcs} == {"run", "augment", "transfer-set", "teacher", "targets", "student", "eval", "export", "plugin", "ab"}
    assert {p[1] for p in funcs if p[0] == "plugin"} == {"preflight", "register", "deploy", "predict", "pipeline", "promote",
                                                         "rescore-body", "explain", "rollback", "ensure", "list", "undeploy", "delete",
                                                         "tokenize-index", "ubi-init"}
    assert {p[1] for p in funcs if p[0] == "ab"} == {"run", "promote", "assign", "online", "coec", "export-srw", "simulate-ubi"}
    assert all(callable(f) for f in funcs.values())
    assert len(set(funcs.values())) == len(funcs)


def test_model_ids_starting_with_a_dash_are_values():
    from distilrank.cli import _glue_ids

    assert _glue_ids(["plugin", "deploy", "--model-id", "-pgNKIB", "--json"]) == ["plugin", "deploy", "--model-id=-pgNKIB", "--json"]
    assert _glue_ids(["plugin", "deploy", "--model-id"]) == ["plugin", "deploy", "--model-id"]


def test_a_broken_serving_import_is_an_error_not_a_missing_command(monkeypatch):
    import pytest

    from distilrank.cli import build_parser

    monkeypatch.setitem(sys.modules, "distilrank.plugin.cli", None)  # what a syntax or import error inside distilrank.plugin.cli amounts to
    with pytest.raises(ImportError):
        build_parser()
    with pytest.raises(ImportError):
        main(["teacher", "merge", "--out", "x"])
