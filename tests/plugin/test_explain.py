"""distilrank.plugin.explain: printing an explanation tree (explain_hit itself runs on the node: integration/test_rescorer_blend.py)."""

from __future__ import annotations

from distilrank.plugin.explain import _rescores, format_explanation


def test_the_tree_prints_one_node_per_line_children_indented():
    tree = {"value": 1.25, "description": "distilrank blend", "details": [
        {"value": 0.5, "description": "z_score(first pass)", "details": [{"value": 7.0, "description": "weight(title:usb)"}]},
        {"value": 0.7, "description": "z_score(logit)"}]}
    lines = format_explanation(tree)
    assert [[part.strip() for part in line.strip().split("  ", 1)] for line in lines] == [
        ["1.25", "distilrank blend"], ["0.5", "z_score(first pass)"], ["7", "weight(title:usb)"], ["0.7", "z_score(logit)"]]
    assert {len(line[:12].rstrip()) for line in lines} == {12}  # values right-aligned in one column of 12
    assert [len(line[14:]) - len(line[14:].lstrip()) for line in lines] == [0, 2, 4, 2]  # descriptions indented by depth
    assert format_explanation(None) == ["(no explanation)"]


def test_the_window_comes_from_one_or_several_rescore_clauses():
    assert _rescores({"rescore": {"window_size": 50}}) == [{"window_size": 50}]
    assert _rescores({"rescore": [{"window_size": 5}, {"window_size": 9}]}) == [{"window_size": 5}, {"window_size": 9}]
    assert _rescores({}) == []
