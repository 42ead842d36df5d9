"""``distilrank plugin ...`` (:mod:`distilrank.plugin.cli.models`): argument handling that needs no cluster."""

from __future__ import annotations

import json

from distilrank.cli import main
from tests.zips import rezip


def test_cli_rejects_bad_zip_before_contacting_the_cluster(exported, tmp_path, capsys):
    bad = rezip(exported.zip, tmp_path / "bad.zip", drop=("tokenizer.json",))
    assert main(["plugin", "register", str(bad), "--url", "http://127.0.0.1:1", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json missing" in err and "cannot reach" not in err


def test_cli_rescore_body(capsys):
    assert main(["--json", "plugin", "rescore-body", "--query-text", "hp toner", "--model", "staging", "--fields", "title,brand",
                 "--window-size", "50", "--size", "5", "--score-mode", "blend", "--model-weight", "3", "--normalization", "min_max"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["size"] == 5 and body["rescore"]["window_size"] == 50
    assert body["rescore"]["distilrank"] == {"model": "staging", "query_text": "hp toner", "fields": ["title", "brand"],
                                             "score_mode": "blend", "model_weight": 3.0, "normalization": "min_max"}
    assert main(["plugin", "rescore-body", "--query-text", "x", "--window-size", "5"]) == 2
    assert "larger than window_size 5" in capsys.readouterr().err
