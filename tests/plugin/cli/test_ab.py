"""``distilrank ab ...`` (:mod:`distilrank.plugin.cli.ab`): the commands that need no cluster."""

from __future__ import annotations

import json

from distilrank.cli import main


def test_ab_assign_cli(capsys):
    assert main(["--json", "ab", "assign", "--experiment", "e", "--salt", "s", "--arm", "control::50", "--arm",
                 "student:distilrank-staging:50", "u1", "u2", "u1"]) == 0
    rows = json.loads(capsys.readouterr().out)["assignments"]
    assert rows[0] == rows[2] and {r["arm"] for r in rows} <= {"control", "student"}
    assert all((r["search_pipeline"] is None) == (r["arm"] == "control") for r in rows)
    assert main(["ab", "assign", "--experiment", "e", "--salt", "s", "--arm", "control:90", "u1"]) == 2
