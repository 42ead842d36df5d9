"""What the Search Relevance Workbench (SRW) accepts, pinned from its backend plugin's sources (no code copied).

SRW is the OpenSearch 3.x plugin ``opensearch-search-relevance`` (repository ``opensearch-project/search-relevance``),
REST base ``/_plugins/_search_relevance``. Read for the 3.x line up to 3.6 (its release notes
``release-notes/opensearch-search-relevance.release-notes-3.6.0.0.md``: Recall@K, MRR, DCG@K and the dynamic relevance
threshold arrive in 3.6):

* ``common/PluginConstants.java``: the URIs, the request field names, the query-text placeholder ``%SearchText%``
  (releases after 3.6 add ``%queryText%`` and keep ``%SearchText%`` as a deprecated alias), the transport action
  prefix;
* ``rest/RestPutQuerySetAction.java`` (``PUT query_sets``: ``name``, ``description``, ``sampling`` default
  ``manual``, ``querySetQueries[] = {queryText, other keys kept as strings}``; more entries than
  ``plugins.search_relevance.query_set.maximum`` (default 1000) answer 403 "Query Set Limit Exceeded.");
  ``rest/RestCreateQuerySetAction.java`` is ``POST query_sets``, which samples UBI queries instead;
* ``rest/RestPutSearchConfigurationAction.java`` (``PUT search_configurations``: ``name``, ``description``,
  ``index``, ``query`` -- a *string* holding the search body's JSON --, ``searchPipeline`` default ``""``);
* ``model/builder/SearchRequestBuilder.java``: the placeholder is replaced *textually* in that string, the whole
  body (``rescore``, ``ext`` ...) is parsed with the node's registry, ``size`` is overridden by the experiment's;
* ``rest/RestPutJudgmentAction.java`` + ``judgments/ImportJudgmentsProcessor.java`` (``PUT judgments``,
  ``type: IMPORT_JUDGMENT``, ``judgmentRatings[] = {query, ratings[] = {docId, rating}}``; ``rating`` is read as a
  string and must parse as a float);
* ``rest/RestPostExperimentAction.java`` + ``transport/experiment/PostExperimentTransportAction.java`` (``POST
  experiments`` imports results: ``type`` ``POINTWISE_EVALUATION`` with exactly one search configuration and one
  judgment list and ``evaluationResultList[] = {searchText, documentIds, metrics[] = {metric, value}}``, stored
  as given; ``PAIRWISE_COMPARISON`` takes two configurations and ``results``); ``PUT experiments`` runs an
  experiment on the cluster instead (``rest/RestPutExperimentAction.java``);
* ``utils/TextValidationUtil.java``: names at most 50 characters, descriptions 250, query texts 2000; none may
  hold ``"``, ``\\``, ``<`` or ``>``; query texts no line break (some 3.x releases also refuse ``#`` and ``:``);
* ``metrics/calculator/Evaluation.java`` and ``metrics/EvaluationMetrics.java``: the metric names SRW writes
  (``Coverage@k``, ``Precision@k``, ``Recall@k``, ``MAP@k``, ``MRR``, ``DCG@k``, ``NDCG@k``), rounded to 2 decimals,
  and ``metrics/calculator/JudgmentThresholdCalculator.java`` (relevant: rating ``>= max(0.5 * max, P90)`` of the
  query's ratings and ``> 0``); the conventions are compared with distilrank's in ``plugin/abtest/README.md``;
* ``settings/SearchRelevanceSettings.java``: ``plugins.search_relevance.workbench_enabled`` (default false: every
  handler answers 403 "Search Relevance Workbench is disabled"); the security plugin's ``roles.yml`` has
  ``search_relevance_full_access`` (``cluster:admin/opensearch/search_relevance/*``).

:func:`body_problems` checks a body against these lists; :mod:`distilrank.plugin.abtest.srw_export` builds the bodies
and its tests check them here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the backend plugin's name (``bin/opensearch-plugin install opensearch-search-relevance``)
PLUGIN = "opensearch-search-relevance"
#: REST base, without the leading slash (the REST functions of :mod:`.srw_push` prefix it)
BASE = "_plugins/_search_relevance"
#: the query-text placeholder of a search configuration's ``query`` string (every 3.x release reads it)
PLACEHOLDER = "%SearchText%"
#: the dynamic setting that turns the workbench on (default false)
WORKBENCH_SETTING = "plugins.search_relevance.workbench_enabled"
#: the setting capping a query set's size (default 1000)
QUERY_SET_MAX_SETTING = "plugins.search_relevance.query_set.maximum"
QUERY_SET_MAX_DEFAULT = 1000
#: the security plugin's role that allows every SRW action
SECURITY_ROLE = "search_relevance_full_access"
ACTION_PREFIX = "cluster:admin/opensearch/search_relevance/"

NAME_MAX = 50
DESCRIPTION_MAX = 250
TEXT_MAX = 2000
#: refused in names, descriptions and query texts
FORBIDDEN_CHARS = '"\\<>'
#: also refused in query texts
QUERY_TEXT_FORBIDDEN = "\r\n"
#: refused in query texts by the 3.x releases whose query-set format used them as delimiters
QUERY_TEXT_RESERVED_IN_SOME = "#:"

SAMPLING_MANUAL = "manual"
JUDGMENT_IMPORT = "IMPORT_JUDGMENT"
EXPERIMENT_TYPES = ("PAIRWISE_COMPARISON", "POINTWISE_EVALUATION", "HYBRID_OPTIMIZER")
#: the experiment type that imports one configuration's precomputed per-query results
EXPERIMENT_IMPORT = "POINTWISE_EVALUATION"

#: metric names as SRW writes them: ``NDCG@`` + k etc.; ``MRR`` has no k (it is still cut at the experiment's size)
METRIC_PREFIXES = ("Coverage@", "Precision@", "Recall@", "MAP@", "DCG@", "NDCG@")
METRIC_MRR = "MRR"
#: SRW rounds every metric value to this many decimals
ROUNDING_DECIMALS = 2


@dataclass(frozen=True)
class Endpoint:
    """One SRW write: HTTP method, path under :data:`BASE`, the response field holding the new id, the transport
    action (the permission a secured cluster checks)."""

    method: str
    path: str
    id_field: str
    action: str

    @property
    def full_path(self) -> str:
        return f"{BASE}/{self.path}"


ENDPOINTS: dict[str, Endpoint] = {
    "query_set": Endpoint("PUT", "query_sets", "query_set_id", ACTION_PREFIX + "queryset/put"),
    "search_configuration": Endpoint("PUT", "search_configurations", "search_configuration_id",
                                     ACTION_PREFIX + "search_configuration/create"),
    "judgment": Endpoint("PUT", "judgments", "judgment_id", ACTION_PREFIX + "judgment/create"),
    "experiment": Endpoint("POST", "experiments", "experiment_id", ACTION_PREFIX + "experiment/import"),
}


@dataclass(frozen=True)
class Fields:
    """The fields of one JSON object: required and optional names with their JSON types (``str``, ``int``,
    ``list``, ``dict``, ``float``)."""

    required: Mapping[str, type]
    optional: Mapping[str, type]

    @property
    def names(self) -> set[str]:
        return set(self.required) | set(self.optional)


#: body fields per endpoint kind, and of the objects nested in them
FIELDS: dict[str, Fields] = {
    "query_set": Fields({"name": str, "querySetQueries": list}, {"description": str, "sampling": str}),
    "query_set_query": Fields({"queryText": str}, {}),
    "search_configuration": Fields({"name": str, "index": str, "query": str}, {"description": str, "searchPipeline": str}),
    "judgment": Fields({"name": str, "type": str, "judgmentRatings": list}, {"description": str}),
    "judgment_rating": Fields({"query": str, "ratings": list}, {}),
    "rating": Fields({"docId": str, "rating": str}, {}),
    "experiment": Fields({"type": str, "querySetId": str, "searchConfigurationList": list, "judgmentList": list,
                          "evaluationResultList": list}, {"size": int}),
    "evaluation_result": Fields({"searchText": str, "documentIds": list, "metrics": list}, {}),
    "metric": Fields({"metric": str, "value": float}, {}),
}
#: the nested objects each kind holds: field -> kind of its elements
NESTED: dict[str, dict[str, str]] = {
    "query_set": {"querySetQueries": "query_set_query"},
    "judgment": {"judgmentRatings": "judgment_rating"},
    "judgment_rating": {"ratings": "rating"},
    "experiment": {"evaluationResultList": "evaluation_result"},
    "evaluation_result": {"metrics": "metric"},
}


def _type_ok(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def text_problem(text: str, *, limit: int, query_text: bool = False) -> str | None:
    """Why SRW refuses ``text`` as a name (``limit`` :data:`NAME_MAX`), description or query text, or ``None``."""
    if not text:
        return "empty"
    if len(text) > limit:
        return f"longer than {limit} characters"
    bad = sorted({c for c in text if c in FORBIDDEN_CHARS + (QUERY_TEXT_FORBIDDEN if query_text else "")})
    if bad:
        return "holds " + ", ".join(repr(c) for c in bad) + " (SRW refuses quotes, backslashes, < and >" + \
            (" and line breaks" if query_text else "") + ")"
    return None


def body_problems(kind: str, body: Any, where: str = "") -> list[str]:
    """Every way ``body`` differs from the pinned fields of ``kind`` (a key of :data:`FIELDS`): a missing or unknown
    field, a wrong JSON type, a name/description/query text SRW refuses, a type value SRW does not know; nested
    objects are checked too. Empty when the body is as SRW expects."""
    where = where or kind
    if not isinstance(body, dict):
        return [f"{where}: expected a JSON object, got {type(body).__name__}"]
    spec, out = FIELDS[kind], []
    out += [f"{where}: missing field {f!r}" for f in spec.required if f not in body]
    out += [f"{where}: unknown field {f!r} (SRW reads {sorted(spec.names)})" for f in body if f not in spec.names]
    for f, want in {**spec.required, **spec.optional}.items():
        if f in body and not _type_ok(body[f], want):
            out.append(f"{where}.{f}: expected {want.__name__}, got {type(body[f]).__name__}")
    for f, limit in (("name", NAME_MAX), ("description", DESCRIPTION_MAX)):
        if isinstance(body.get(f), str) and (why := text_problem(body[f], limit=limit)):
            out.append(f"{where}.{f}: {why}")
    if kind == "query_set_query" and isinstance(body.get("queryText"), str):
        if why := text_problem(body["queryText"], limit=TEXT_MAX, query_text=True):
            out.append(f"{where}.queryText: {why}")
    if kind == "judgment" and body.get("type") != JUDGMENT_IMPORT:
        out.append(f"{where}.type: {body.get('type')!r}, expected {JUDGMENT_IMPORT!r}")
    if kind == "experiment" and body.get("type") != EXPERIMENT_IMPORT:
        out.append(f"{where}.type: {body.get('type')!r}, expected {EXPERIMENT_IMPORT!r} (the type SRW imports results of)")
    if kind == "experiment":
        for f in ("searchConfigurationList", "judgmentList"):
            if isinstance(body.get(f), list) and len(body[f]) != 1:
                out.append(f"{where}.{f}: SRW imports exactly one entry, got {len(body[f])}")
    if kind == "rating" and isinstance(body.get("rating"), str):
        try:
            float(body["rating"])
        except ValueError:
            out.append(f"{where}.rating: {body['rating']!r} is not a number")
    for f, sub in NESTED.get(kind, {}).items():
        items = body.get(f) if isinstance(body.get(f), list) else []
        for i, item in enumerate(items):
            out += body_problems(sub, item, f"{where}.{f}[{i}]")
    return out


def srw_metric_name(name: str) -> bool:
    """Whether ``name`` is spelled like a metric SRW writes (``NDCG@10``, ``MRR``, ...)."""
    if name == METRIC_MRR:
        return True
    return any(name.startswith(p) and name[len(p):].isdigit() for p in METRIC_PREFIXES)
