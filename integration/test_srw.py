"""``ab export-srw`` of a real ``ab run`` on the node, and ``--push`` to a node without the Search Relevance Workbench.

The run: BM25, a student behind a rerank pipeline (alias) and the same student through the distilrank rescorer, on
the Icecat sample with its human judgments (0-3). The export's search configurations are replayed on the node the way
SRW runs them (``%SearchText%`` replaced textually, the configuration's search pipeline, the experiment's size): each
returns the ids the experiment import holds. The exported judgments, given to ``ab run`` as its judgment file (no
grade map), give the same per-query metrics. The dev node has no SRW plugin, so ``--push`` gets OpenSearch's
"no handler found" and must say which plugin to install.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import icecat_student
import pytest

from distilrank.cli import main
from distilrank.errors import DistilRankError
from distilrank.plugin import api, ml_api, registry_store
from distilrank.plugin.abtest import srw_schema as srw
from distilrank.plugin.cli import ab_srw

PID = os.getpid()
INDEX = f"t24s-{PID}-icecat"
ALIAS = f"t24s-{PID}-staging"
GROUP = f"t24s-{PID}-students"
QUOTED = 'monitor 24"'  # SRW refuses quotes in query texts: left out of the export
QUERIES = ["notebook", "laptop", "hp laptop", "wireless mouse", QUOTED]
JUDGMENTS = Path(icecat_student.DATA) / "icecat-judgments.csv"


@pytest.fixture(scope="module")
def setup(cluster, t, tmp_path_factory):
    if "distilrank" not in cluster.plugins:
        pytest.fail("the distilrank rescorer plugin is not installed on the dev node", pytrace=False)
    c = cluster.client
    c.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                        "mappings": {"properties": {"title": {"type": "text"}}}})
    lines = []
    for p in icecat_student.products():
        lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}), json.dumps({"title": p["title"]})]
    assert not c.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})["errors"]
    work = tmp_path_factory.mktemp("srw")
    try:
        student = icecat_student.build_icecat_student(work, seed=0, name="t24s-student")
        reg = api.register(t, student.zip, group=GROUP, deploy=True, promote_alias=ALIAS, index=INDEX,
                           document_fields=["title"], depth=30, size=10, progress=False)
        yield {"work": work, "model_id": reg["model_id"]}
    finally:
        _cleanup(t, c)


def _cleanup(t, c) -> None:
    """Delete what the fixture made, also after a registration that failed half way: the alias, its pipeline, every
    model of the group, the group, the index."""
    ml_api.delete_search_pipeline(t, f"distilrank-{ALIAS}")
    registry_store.delete_alias(t, ALIAS)
    for group in ml_api.search_model_groups(t, GROUP):
        for model in ml_api.search_models(t, {"term": {"model_group_id": group["_id"]}}):
            api.delete(t, model["_id"], force=True)
        assert ml_api.delete_model_group(t, group["_id"]), f"model group {group['_id']} still has versions"
    c.indices.delete(index=INDEX, ignore_unavailable=True)


def _config(work: Path, cluster, name: str, judgments: Path) -> Path:
    (work / "queries.txt").write_text("\n".join(QUERIES) + "\n")
    cfg = work / f"{name}.toml"
    cfg.write_text(f"""
[opensearch]
url = "{cluster.url}"

[experiment]
name = "t24s {name}"
index = "{INDEX}"
k = 10
judgments = "{judgments}"
queryset = "queries.txt"
out = "{work / name}"
primary_metric = "ndcg@10"
n_permutations = 500
bootstrap_resamples = 500

[[arm]]
name = "bm25"
query = {{ match = {{ title = "{{{{query}}}}" }} }}

[[arm]]
name = "student"
alias = "{ALIAS}"
query = {{ match = {{ title = "{{{{query}}}}" }} }}

[[arm]]
name = "student-rescorer"
query = {{ match = {{ title = "{{{{query}}}}" }} }}
rescore = {{ model = "{ALIAS}", fields = ["title"], window_size = 30 }}
""")
    return cfg


def _export_srw(*argv: str) -> None:
    """``distilrank ab export-srw ...`` through :func:`distilrank.plugin.cli.ab_srw.add_commands`."""
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    ab_srw.add_commands(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["--json", "export-srw", *argv])
    args.func(args)


@pytest.fixture(scope="module")
def exported(cluster, setup, tmp_path_factory):
    cfg = _config(setup["work"], cluster, "run", JUDGMENTS)
    assert main(["--json", "ab", "run", str(cfg)]) == 0
    report = setup["work"] / "run" / "report.json"
    out = setup["work"] / "srw"
    _export_srw(str(report), "--out", str(out))
    return json.loads(report.read_text()), out, json.loads((out / "manifest.json").read_text())


def test_export_of_a_real_run(exported):
    report, out, manifest = exported
    assert report["primary_metric"] == "NDCG@10" and report["metrics"] == ["NDCG@10", "MRR", "Precision@10", "Recall@10"]
    assert manifest["round_trip"]["identical"] and list(manifest["skipped_queries"]) == [QUOTED]
    for r in manifest["requests"]:
        assert srw.body_problems(r["kind"], json.loads((out / r["file"]).read_text())) == [], r["file"]
    files = {r["arm"]: json.loads((out / r["file"]).read_text()) for r in manifest["requests"] if r["kind"] == "search_configuration"}
    assert files["student"]["searchPipeline"] == f"distilrank-{ALIAS}"
    block = json.loads(files["student-rescorer"]["query"])["rescore"]["distilrank"]
    assert block["model"] == ALIAS and block["query_text"] == srw.PLACEHOLDER
    assert "rescorer plugin is installed" in files["student-rescorer"]["description"]
    ratings = json.loads((out / "judgments.json").read_text())["judgmentRatings"]
    assert {e["query"] for e in ratings} == {"notebook", "laptop"}
    assert {r["rating"] for e in ratings for r in e["ratings"]} <= {"0.000", "1.000", "2.000", "3.000"}


def test_search_configurations_replayed_as_srw_runs_them_return_the_imported_ids(cluster, exported):
    _, out, manifest = exported
    configs = {r["arm"]: json.loads((out / r["file"]).read_text()) for r in manifest["requests"] if r["kind"] == "search_configuration"}
    for r in (r for r in manifest["requests"] if r["kind"] == "experiment"):
        exp, cfg = json.loads((out / r["file"]).read_text()), configs[r["arm"]]
        for e in exp["evaluationResultList"]:
            body = {**json.loads(cfg["query"].replace(srw.PLACEHOLDER, e["searchText"])), "size": exp["size"]}
            hits = cluster.client.search(index=cfg["index"], body=body,
                                         params={"search_pipeline": cfg.get("searchPipeline") or "_none"})["hits"]["hits"]
            assert [h["_id"] for h in hits] == e["documentIds"], (r["arm"], e["searchText"])


def test_ab_run_reads_the_exported_judgments_and_gets_the_same_metrics(cluster, setup, exported, capsys):
    report, out, _ = exported
    capsys.readouterr()
    cfg = _config(setup["work"], cluster, "again", out / "judgments.json")
    assert main(["--json", "ab", "run", str(cfg)]) == 0
    again = json.loads((setup["work"] / "again" / "report.json").read_text())
    kept = [q for q in QUERIES if q != QUOTED]
    for arm in report["arm_names"]:
        for q in kept:
            first, second = report["arms"][arm]["queries"][q], again["arms"][arm]["queries"][q]
            assert second["doc_ids"] == first["doc_ids"], (arm, q)
            assert second["metrics"] == first["metrics"], (arm, q)
    assert again["judgments"]["grades"] == {q: g for q, g in report["judgments"]["grades"].items() if q in kept}


def test_push_to_a_node_without_srw_says_which_plugin_to_install(cluster, exported):
    if srw.PLUGIN in cluster.plugins:
        pytest.skip(f"the node has {srw.PLUGIN}: the no-SRW answer cannot be seen here")
    report, out, _ = exported
    with pytest.raises(DistilRankError) as err:
        _export_srw(str(out.parent / "run" / "report.json"), "--out", str(out), "--push", "--url", cluster.url)
    msg = str(err.value)
    assert msg.startswith("PUT _plugins/_search_relevance/query_sets (query_set.json): the cluster has no Search Relevance "
                          "Workbench (HTTP 400: ")
    assert "no handler found for uri" in msg and f"bin/opensearch-plugin install {srw.PLUGIN}" in msg
    assert srw.WORKBENCH_SETTING in msg and not (out / "pushed.json").exists()
