"""``distilrank ab export-srw``: an ``ab run`` report as Search Relevance Workbench (SRW) request bodies.

From ``report.json`` (schema ``distilrank.abtest/2``, written by :func:`distilrank.plugin.abtest.runner.run_ab`) it
builds, with the field lists pinned in :mod:`distilrank.plugin.abtest.srw_schema`:

* ``query_set.json``: ``PUT _plugins/_search_relevance/query_sets`` with every query of the report (``sampling``
  ``manual``, ``querySetQueries[] = {queryText}``);
* ``search_configurations/<arm>.json``: ``PUT .../search_configurations`` per arm: the search body the arm sent
  (``arms_config.<arm>.search_body``) as a JSON string with SRW's placeholder ``%SearchText%`` where the query text
  went -- the ``rescore.distilrank`` block of a rescorer arm and the ``ext.rerank`` of a rerank pipeline arm
  included -- and ``searchPipeline`` for a pipeline arm. A ``rescore.distilrank`` configuration only runs on a cluster
  with the distilrank rescorer plugin, a pipeline arm only where its search pipeline exists: the configuration's
  description and the manifest's notes say so;
* ``judgments.json``: ``PUT .../judgments`` ``IMPORT_JUDGMENT`` with the grades the report's metrics used
  (``judgments.grades``) on the 0-3 scale, as strings like SRW's own (``"3.000"``); a report on another scale
  (ESCI's raw 100/10/1/0) is refused, because SRW turns a rating g into a ``2^g - 1`` gain;
* ``experiments/<arm>.json``: ``POST .../experiments`` ``POINTWISE_EVALUATION`` import per arm (SRW imports one
  configuration per experiment): ``evaluationResultList[] = {searchText, documentIds, metrics[] = {metric, value}}``
  with the arm's top-k ids and its per-query metrics under SRW's names, at full precision; undefined metrics are
  left out. The ids SRW gives the query set, configurations and judgment are unknown until they are created, so
  these bodies hold placeholders ``${query_set_id}``, ``${search_configuration_id:<arm>}``, ``${judgment_id}``;
* ``manifest.json``: the requests in order (kind, arm, file, method, path, the response field with the new id and the
  placeholder it fills), the notes, the queries left out (SRW refuses query texts with ``"``, ``\\``, ``<``, ``>`` or
  line breaks) and the round-trip check.

The round trip: ``judgments.json`` is read back with :func:`distilrank.judgments.load_judgments` (no grade map) and
the report's runs are evaluated again with :func:`distilrank.plugin.abtest.offline.evaluate_runs`; every per-query
metric must come out identical, else the export fails. :mod:`distilrank.plugin.abtest.srw_push` sends the files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilrank.atomic import write_json
from distilrank.errors import DistilRankError
from distilrank.grades import GRADE_MAX
from distilrank.plugin.abtest import srw_schema as srw

FORMAT = "distilrank.srw-export/1"
#: the query placeholder of reports that do not name theirs (``experiment.query_placeholder``)
REPORT_PLACEHOLDER = "{{query}}"
RESCORER_NOTE = ("a rescore.distilrank search configuration runs only on a cluster where the distilrank rescorer plugin "
                 "is installed (and the model or alias it names is uploaded there); SRW stores it anywhere, its searches fail elsewhere")
NO_PIPELINE_NOTE = ("ab run searched arms without a pipeline with search_pipeline=_none; their SRW configurations have no "
                    "searchPipeline, so an index default search pipeline, if any, applies in SRW")


def placeholder(name: str, arm: str | None = None) -> str:
    """The placeholder an experiment body holds for an id SRW assigns: ``${query_set_id}``,
    ``${search_configuration_id:bm25}``, ``${judgment_id}``."""
    return "${" + name + (f":{arm}" if arm else "") + "}"


@dataclass
class SrwExport:
    """The bodies of one export (see the module docstring), keyed by arm where there is one per arm."""

    query_set: dict
    search_configurations: dict[str, dict]
    judgments: dict
    experiments: dict[str, dict]
    skipped_queries: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- reading the report ---------------------------------------------------------------------------------------


def load_report(path: str | Path) -> dict:
    """The results dict of an ``ab run`` ``report.json``; :class:`DistilRankError` for a missing or unreadable file
    or another schema."""
    from distilrank.plugin.abtest.offline import SCHEMAS

    p = Path(path)
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DistilRankError(f"{p}: no such report (give the report.json 'distilrank ab run' wrote)") from None
    except (OSError, ValueError) as exc:
        raise DistilRankError(f"{p}: not a readable JSON report ({exc})") from None
    if not isinstance(report, dict) or report.get("schema") not in SCHEMAS:
        got = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise DistilRankError(f"{p}: schema {got!r} is not an A/B report (expected one of {', '.join(SCHEMAS)})")
    return report


def _need(where: str, value: Any) -> Any:
    if value is None:
        raise DistilRankError(f"the report has no {where}: it was written by an older 'distilrank ab run' (or not by "
                              f"'ab run'); run 'distilrank ab run CONFIG' again to get a report export-srw can read")
    return value


def report_queries(report: dict) -> list[str]:
    """The queries of the report, in run order (the baseline arm's)."""
    return list(report["arms"][report["baseline"]]["queries"])


def report_grades(report: dict) -> dict[str, dict[str, float]]:
    """The grades the report's metrics used, checked to be on the 0-3 scale SRW's ``2^g - 1`` gains expect."""
    grades = _need("'judgments.grades' (the grades its metrics used)", (report.get("judgments") or {}).get("grades"))
    top = max((g for docs in grades.values() for g in docs.values()), default=0.0)
    if top > GRADE_MAX:
        raise DistilRankError(
            f"the report's grades go up to {top:g}; SRW computes a 2^rating - 1 gain, so ratings must be on the 0-3 "
            f"scale (ESCI's raw 100/10/1/0 would become gains of 2^100): set grade_map = \"esci\" in the config's "
            f"[experiment] and run 'distilrank ab run' again")
    return grades


# --- names, texts, grades -------------------------------------------------------------------------------------


def srw_text(text: str, limit: int) -> str:
    """``text`` as SRW accepts a name or description: its refused characters replaced by ``_``, cut to ``limit``."""
    clean = "".join("_" if c in srw.FORBIDDEN_CHARS + srw.QUERY_TEXT_FORBIDDEN else c for c in text).strip()
    return (clean[:limit - 3].rstrip() + "...") if len(clean) > limit else clean


def srw_name(base: str, suffix: str = "") -> str:
    """``base`` and ``suffix`` (after a space) within SRW's 50 characters; the base is cut, the suffix kept (up to
    25 characters)."""
    suffix = srw_text(suffix, srw.NAME_MAX // 2)
    sep = " " if suffix else ""
    return srw_text(base, srw.NAME_MAX - len(suffix) - len(sep)) + sep + suffix


def rating_text(grade: float) -> str:
    """A grade as the rating string SRW's importer reads: ``"3.000"`` like SRW's examples, the full ``repr`` when
    three decimals would change it."""
    short = f"{float(grade):.3f}"
    return short if float(short) == float(grade) else repr(float(grade))


def file_stem(arm: str, taken: set[str]) -> str:
    """A file name for ``arm`` (letters, digits, ``._-``), unique among ``taken`` (which it joins)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", arm).strip("._") or "arm"
    out, i = stem, 2
    while out in taken:
        out, i = f"{stem}-{i}", i + 1
    taken.add(out)
    return out


# --- the bodies -----------------------------------------------------------------------------------------------


def _query_plan(queries: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """``(kept queries, {left-out query: why}, notes)``."""
    kept, skipped = [], {}
    for q in queries:
        why = srw.text_problem(q, limit=srw.TEXT_MAX, query_text=True)
        if why:
            skipped[q] = why
        else:
            kept.append(q)
    notes = []
    reserved = [q for q in kept if any(c in q for c in srw.QUERY_TEXT_RESERVED_IN_SOME)]
    if reserved:
        notes.append(f"{len(reserved)} query texts hold '#' or ':', which some SRW 3.x releases refuse in query sets "
                     f"(e.g. {reserved[0]!r}); SRW 3.6 answers 400 'Invalid queryText' if it is one of them")
    if len(kept) > srw.QUERY_SET_MAX_DEFAULT:
        notes.append(f"{len(kept)} queries: more than SRW's default {srw.QUERY_SET_MAX_SETTING} "
                     f"({srw.QUERY_SET_MAX_DEFAULT}); raise that cluster setting before pushing")
    return kept, skipped, notes


def search_configuration_body(name: str, index: str, arm: str, config: dict, placeholder_in_report: str) -> dict:
    """The ``PUT search_configurations`` body of one arm (``config``: the report's ``arms_config.<arm>``)."""
    body = _need(f"'arms_config.{arm}.search_body' (the body its searches sent)", config.get("search_body"))
    text = json.dumps(body, ensure_ascii=False).replace(placeholder_in_report, srw.PLACEHOLDER)
    if srw.PLACEHOLDER not in text:
        raise DistilRankError(f"arm {arm!r}: its search body holds no {placeholder_in_report!r} for the query text")
    what = [f"distilrank ab run arm {arm}"]
    if config.get("rescore"):
        what.append(f"rescore.distilrank with model {config['rescore'].get('model')} (model id {config.get('model_id')}): "
                    f"runs only where the distilrank rescorer plugin is installed")
    if config.get("pipeline"):
        what.append(f"search pipeline {config['pipeline']} (must exist on the cluster)")
    out = {"name": name, "description": srw_text("; ".join(what), srw.DESCRIPTION_MAX), "index": index, "query": text}
    if config.get("pipeline"):
        out["searchPipeline"] = config["pipeline"]
    return out


def judgments_body(name: str, description: str, grades: dict[str, dict[str, float]], queries: list[str]) -> dict:
    """The ``PUT judgments`` ``IMPORT_JUDGMENT`` body of ``grades`` for the judged ``queries`` (in that order)."""
    ratings = [{"query": q, "ratings": [{"docId": str(d), "rating": rating_text(g)} for d, g in grades[q].items()]}
               for q in queries if grades.get(q)]
    return {"name": name, "description": srw_text(description, srw.DESCRIPTION_MAX), "type": srw.JUDGMENT_IMPORT,
            "judgmentRatings": ratings}


def experiment_body(report: dict, arm: str, queries: list[str]) -> dict:
    """The ``POST experiments`` import body of one arm: its top-k ids and defined per-query metrics, SRW's names."""
    from distilrank.plugin.abtest.metrics import canonical_metric_name

    k, per_query = report["k"], report["arms"][arm]["queries"]
    results = []
    for q in queries:
        pq = per_query[q]
        metrics = [{"metric": canonical_metric_name(m, k), "value": float(v)} for m, v in pq["metrics"].items() if v is not None]
        results.append({"searchText": q, "documentIds": [str(d) for d in pq["doc_ids"]], "metrics": metrics})
    return {"type": srw.EXPERIMENT_IMPORT, "querySetId": placeholder("query_set_id"),
            "searchConfigurationList": [placeholder("search_configuration_id", arm)],
            "judgmentList": [placeholder("judgment_id")], "size": int(k), "evaluationResultList": results}


def build_export(report: dict, *, name: str | None = None) -> SrwExport:
    """Every body of the export of ``report`` (see the module docstring); nothing is written."""
    exp = report.get("experiment") or {}
    index = _need("'experiment.index' (the index its arms searched)", exp.get("index"))
    arms_config = _need("'arms_config' (what each arm sent)", report.get("arms_config"))
    base = name or exp.get("name") or "distilrank ab run"
    kept, skipped, notes = _query_plan(report_queries(report))
    if not kept:
        raise DistilRankError("no query of the report is a query text SRW accepts: " + "; ".join(f"{q!r}: {w}" for q, w in skipped.items()))
    grades = report_grades(report)
    marker = exp.get("query_placeholder") or REPORT_PLACEHOLDER
    configs = {arm: search_configuration_body(srw_name(base, arm), index, arm, arms_config.get(arm) or {}, marker)
               for arm in report["arm_names"]}
    if any((arms_config.get(a) or {}).get("rescore") for a in report["arm_names"]):
        notes.append(RESCORER_NOTE)
    if any(not (arms_config.get(a) or {}).get("pipeline") for a in report["arm_names"]):
        notes.append(NO_PIPELINE_NOTE)
    notes.append(f"metric values are distilrank's at full precision (gain {report.get('gain')}, relevant = grade >= "
                 f"{report.get('relevance_threshold')}), not SRW's recomputation; see plugin/abtest/README.md")
    source = f"{report.get('judgment_source', 'human')} judgments of distilrank ab run {base}"
    return SrwExport(
        query_set={"name": srw_name(base), "description": srw_text(f"queries of distilrank ab run {base}", srw.DESCRIPTION_MAX),
                   "sampling": srw.SAMPLING_MANUAL, "querySetQueries": [{"queryText": q} for q in kept]},
        search_configurations=configs,
        judgments=judgments_body(srw_name(base, "judgments"), source, grades, kept),
        experiments={arm: experiment_body(report, arm, kept) for arm in report["arm_names"]},
        skipped_queries=skipped, notes=notes)


# --- files and the round trip ---------------------------------------------------------------------------------


def _request(kind: str, file: str, fills: str, arm: str | None = None) -> dict:
    ep = srw.ENDPOINTS[kind]
    return {"kind": kind, "arm": arm, "file": file, "method": ep.method, "path": ep.full_path, "id_field": ep.id_field,
            "fills": placeholder(fills, arm)}


def write_bodies(export: SrwExport, out_dir: str | Path, *, report_path: str | Path | None = None) -> dict:
    """Write the bodies into ``out_dir`` (each file atomically) and return the manifest that lists them;
    :func:`export_srw` writes it, as the last file, once the round trip holds."""
    out = Path(out_dir)
    stems: set[str] = set()
    files = {arm: file_stem(arm, stems) for arm in export.search_configurations}
    requests = [_request("query_set", "query_set.json", "query_set_id")]
    write_json(out / "query_set.json", export.query_set)
    for arm, body in export.search_configurations.items():
        write_json(out / "search_configurations" / f"{files[arm]}.json", body)
        requests.append(_request("search_configuration", f"search_configurations/{files[arm]}.json", "search_configuration_id", arm))
    write_json(out / "judgments.json", export.judgments)
    requests.append(_request("judgment", "judgments.json", "judgment_id"))
    for arm, body in export.experiments.items():
        write_json(out / "experiments" / f"{files[arm]}.json", body)
        requests.append(_request("experiment", f"experiments/{files[arm]}.json", "experiment_id", arm))
    manifest = {"format": FORMAT, "report": None if report_path is None else str(report_path),
                "srw": {"plugin": srw.PLUGIN, "placeholder": srw.PLACEHOLDER, "sources": "opensearch-project/search-relevance 3.x (3.6)"},
                "requests": requests,
                "placeholders": "each '${...}' string in a body stands for the id SRW answers to the request whose 'fills' names it",
                "notes": export.notes, "skipped_queries": export.skipped_queries,
                "counts": {"queries": len(export.query_set["querySetQueries"]), "judged_queries": len(export.judgments["judgmentRatings"]),
                           "judgments": sum(len(r["ratings"]) for r in export.judgments["judgmentRatings"]),
                           "arms": len(export.search_configurations)}}
    return manifest


def runs_from_report(report: dict, queries: list[str] | None = None) -> dict:
    """The report's runs as :func:`distilrank.plugin.abtest.offline.evaluate_runs` takes them (``{arm: {query:
    SearchRecord}}``), for ``queries`` (default all)."""
    from distilrank.plugin.abtest.offline import SearchRecord

    out = {}
    for arm in report["arm_names"]:
        per_query = report["arms"][arm]["queries"]
        out[arm] = {q: SearchRecord(list(per_query[q]["doc_ids"]), float(per_query[q].get("took_ms") or 0.0),
                                    int(per_query[q].get("n_returned", len(per_query[q]["doc_ids"]))))
                    for q in (queries if queries is not None else per_query)}
    return out


def round_trip(report: dict, judgments_file: str | Path, queries: list[str]) -> dict:
    """Evaluate the report's runs on ``queries`` again with the judgments read back from ``judgments_file`` (no grade
    map); ``{"queries", "arms", "values", "mismatches": [(arm, query, metric, report's, again)]}``."""
    from distilrank.judgments import load_judgments
    from distilrank.plugin.abtest.metrics import canonical_metric_name, parse_metric_name
    from distilrank.plugin.abtest.offline import evaluate_runs

    k = report["k"]
    judged = load_judgments(judgments_file, queryset=queries)
    metrics = [p[0] for m in report["metrics"] if (p := parse_metric_name(m)) is not None]
    again = evaluate_runs(runs_from_report(report, queries), judged, k=k, metrics=metrics, baseline=report["baseline"],
                          gain=report.get("gain", "exponential"), threshold=report.get("relevance_threshold", 1.0),
                          n_permutations=100, bootstrap_resamples=100, click_model=None)
    mismatches, n = [], 0
    for arm in report["arm_names"]:
        for q in queries:
            mine = {canonical_metric_name(m, k): v for m, v in report["arms"][arm]["queries"][q]["metrics"].items()}
            for m, v in again["arms"][arm]["queries"][q]["metrics"].items():
                n += 1
                if mine.get(m) != v:
                    mismatches.append((arm, q, m, mine.get(m), v))
    return {"queries": len(queries), "arms": len(report["arm_names"]), "values": n, "mismatches": mismatches}


def export_srw(report_path: str | Path, out_dir: str | Path, *, name: str | None = None) -> dict:
    """Export the report at ``report_path`` into ``out_dir`` and check the round trip; return the manifest (with
    ``round_trip``). Raises :class:`DistilRankError` when the re-read judgments do not reproduce every metric."""
    report = load_report(report_path)
    export = build_export(report, name=name)
    manifest = write_bodies(export, out_dir, report_path=report_path)
    queries = [e["queryText"] for e in export.query_set["querySetQueries"]]
    check = round_trip(report, Path(out_dir) / "judgments.json", queries)
    if check["mismatches"]:
        arm, q, m, a, b = check["mismatches"][0]
        raise DistilRankError(f"round trip failed: {len(check['mismatches'])} metric values differ when judgments.json is "
                              f"read back, e.g. arm {arm!r} query {q!r} {m}: report {a} vs {b}")
    manifest["round_trip"] = {k: v for k, v in check.items() if k != "mismatches"} | {"identical": True}
    write_json(Path(out_dir) / "manifest.json", manifest)
    return manifest
