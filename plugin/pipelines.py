"""Rerank search pipelines and the search requests that use them.

Pipeline (neural-search ``rerank`` with ``ml_opensearch``, between search-pipeline-common processors)::

    oversample(sample_factor = depth / size)  ->  first-stage query (BM25, ...)  ->
    rerank(ml_opensearch: model_id, document_fields)  ->  truncate_hits  ->  top `size` hits

so a request with ``size = S`` reranks the top ``depth`` first-stage hits when ``S`` is the pipeline's page
size, and ``S * sample_factor`` hits in general. ``_score`` of the returned hits is the model's raw logit; the
first-stage score is not kept (neural-search's ``ml_opensearch`` rerank has no blending option, and a logit and a
BM25 score live on unrelated scales, so no blending is offered). This path cannot blend: the blend settings stored
with a model (model card ``blend``) and ``normalization`` apply only to the ``distilrank`` rescorer
(:mod:`distilrank.plugin.rescore`, ``score_mode: blend``), never to these pipelines.

Hazards measured on OpenSearch 3.6.0 + neural-search 3.6.0.0, and how the helpers guard against them:

* no ``ext.rerank.query_context`` in the request: HTTP 500 ``null_pointer_exception``. :func:`rerank_search_body`
  always sets it; :func:`check_search_body` rejects a body without it.
* ``size: 0``: HTTP 400 "No text documents were provided" (as does a query matching nothing). Rejected.
* ``track_total_hits: false``: HTTP 500 ``null_pointer_exception``. Rejected (``true`` or a number is fine).
* a ``document_fields`` entry the index does not have: *no error*, every document is scored on an empty text
  (all scores equal). :func:`put_rerank_pipeline` with ``index=`` checks the mapping first.
* a query text with more than 1024 terms (e.g. 10,000 characters): HTTP 400 ``too_many_clauses`` from the match
  query. :func:`rerank_search_body` refuses it when it builds the query.
* a query matching nothing (e.g. emoji only): no error, zero hits.
* a document field holding an array: *no error*, the model scores Java's rendering of the list (``[a, b]``); a
  number is scored as its text (``42``).
* a pipeline calling a deleted model: HTTP 404 "Failed to find model"; ``plugin list`` flags such pipelines.
* ``from > 0``: the window ``[from, from + size*factor)`` is reranked, so pages are not a partition of one
  reranked list; paginate by asking for a larger ``size`` instead.

The pipeline's ``description`` carries a ``distilrank:`` JSON tag (model id, depth, size, fields, alias) that
:func:`read_pipeline_spec` reads back.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from distilrank.errors import DistilRankError
from distilrank.plugin import ml_api
from distilrank.plugin.transport import Transport

TAG = "distilrank:"
#: OpenSearch's default ``indices.query.bool.max_clause_count``: a match query with more terms fails (HTTP 400).
MAX_CLAUSES = 1024


@dataclass
class RerankSpec:
    """What a rerank pipeline does. ``depth``: first-stage hits reranked per request of ``size`` hits."""

    model_id: str
    document_fields: list[str] = field(default_factory=lambda: ["title"])
    depth: int = 100
    size: int = 10
    alias: str | None = None

    def sample_factor(self) -> float:
        if self.size < 1:
            raise DistilRankError(f"pipeline size must be >= 1, got {self.size}")
        if self.depth < self.size:
            raise DistilRankError(f"rerank depth {self.depth} is smaller than the page size {self.size}")
        return self.depth / self.size


def rerank_pipeline_body(spec: RerankSpec) -> dict:
    """The ``PUT _search/pipeline/<name>`` body for ``spec``: ``_score`` = the logit only (the ML Commons rerank
    cannot blend; the model's stored blend settings are ignored here, see the module docstring)."""
    if not spec.document_fields:
        raise DistilRankError("document_fields must name at least one field of the index (e.g. title)")
    tag = TAG + json.dumps(asdict(spec), sort_keys=True)
    return {
        "description": f"distilrank rerank: top {spec.depth} hits by model {spec.model_id} on {','.join(spec.document_fields)} "
                       f"{tag}",
        "request_processors": [{"oversample": {"sample_factor": spec.sample_factor()}}],
        "response_processors": [
            {"rerank": {"ml_opensearch": {"model_id": spec.model_id}, "context": {"document_fields": list(spec.document_fields)}}},
            {"truncate_hits": {}},
        ],
    }


def read_pipeline_spec(body: dict | None) -> RerankSpec | None:
    """The :class:`RerankSpec` tagged in a pipeline made by :func:`rerank_pipeline_body`; ``None`` for others."""
    if not body:
        return None
    desc = body.get("description") or ""
    if TAG not in desc:
        return None
    try:
        return RerankSpec(**json.loads(desc.split(TAG, 1)[1]))
    except (json.JSONDecodeError, TypeError):
        return None


def check_fields(t: Transport, index: str, fields: list[str]) -> None:
    """Raise unless ``index`` exists and maps every one of ``fields`` (rerank would silently score empty text)."""
    mapping = ml_api.index_mapping_fields(t, index)
    if mapping is None:
        raise DistilRankError(f"index {index!r} does not exist")
    missing = [f for f in fields if f not in mapping]
    if missing:
        known = ", ".join(sorted(k for k, v in mapping.items() if v in ("text", "keyword"))[:20])
        raise DistilRankError(f"index {index!r} has no field {', '.join(map(repr, missing))}: rerank would score every "
                              f"document on an empty text (text fields there: {known or 'none'})")


def put_rerank_pipeline(t: Transport, name: str, spec: RerankSpec, *, index: str | None = None) -> dict:
    """Create or update pipeline ``name``; with ``index``, check the document fields exist there first.

    The model must exist; returns the body sent.
    """
    if index:
        check_fields(t, index, spec.document_fields)
    model = ml_api.get_model(t, spec.model_id)
    if model is None:
        raise DistilRankError(f"model {spec.model_id} does not exist (see 'distilrank plugin list')")
    body = rerank_pipeline_body(spec)
    ml_api.put_search_pipeline(t, name, body)
    return body


def rerank_search_body(query_text: str, *, size: int = 10, query: dict | None = None, fields: list[str] | None = None,
                       track_total_hits: bool | int | None = None, source: bool | list[str] | None = None,
                       inline: bool = False, model_id: str | None = None, depth: int = 100,
                       document_fields: list[str] | None = None) -> dict:
    """A search body for a rerank pipeline: ``query`` (default: ``multi_match`` of ``query_text`` on ``fields``),
    explicit ``size``, and ``ext.rerank.query_context.query_text`` = ``query_text``.

    ``inline=True`` puts a temporary pipeline (``oversample(depth/size) -> rerank(model_id) -> truncate_hits`` on
    ``document_fields``, default ``fields``) into the body's ``search_pipeline``, so the ML Commons rerank is
    configured per query with no stored pipeline (for clusters where the ``distilrank`` rescorer plugin cannot be
    installed); send such a body without the ``search_pipeline`` URL parameter."""
    if query is None:
        if not fields:
            raise DistilRankError("give either query= or fields= for the first-stage query")
        terms = len(re.findall(r"\w+", query_text))  # the match query has one clause per token (repeats included)
        if terms * len(fields) > MAX_CLAUSES:
            raise DistilRankError(f"query text of {len(query_text):,} characters has {terms:,} terms: the first-stage match query "
                                  f"would exceed OpenSearch's indices.query.bool.max_clause_count ({MAX_CLAUSES} by default, HTTP 400 "
                                  "too_many_clauses); shorten it (the model reads only its first max_length tokens anyway)")
        query = {"multi_match": {"query": query_text, "fields": list(fields)}} if len(fields) > 1 else \
            {"match": {fields[0]: query_text}}
    body: dict = {"size": size, "query": query, "ext": {"rerank": {"query_context": {"query_text": query_text}}}}
    if track_total_hits is not None:
        body["track_total_hits"] = track_total_hits
    if source is not None:
        body["_source"] = source
    if inline:
        if not model_id:
            raise DistilRankError("inline=True needs model_id= (the ML Commons model the temporary pipeline calls)")
        spec = RerankSpec(model_id=model_id, document_fields=list(document_fields or fields or []), depth=depth, size=size)
        body["search_pipeline"] = {k: v for k, v in rerank_pipeline_body(spec).items() if k != "description"}
    check_search_body(body)
    return body


def check_search_body(body: dict) -> None:
    """Raise :class:`DistilRankError` for a body the rerank pipeline would fail on (see the module docstring)."""
    size = body.get("size", 10)
    if not isinstance(size, int) or size < 1:
        raise DistilRankError(f"size must be >= 1 for a rerank pipeline (got {size!r}: the rerank processor fails with "
                              "'No text documents were provided')")
    if body.get("track_total_hits") is False:
        raise DistilRankError("track_total_hits: false makes neural-search's rerank fail (HTTP 500); leave it out or set a number")
    qc = ((body.get("ext") or {}).get("rerank") or {}).get("query_context") or {}
    if not (qc.get("query_text") or qc.get("query_text_path")):
        raise DistilRankError("ext.rerank.query_context.query_text (or query_text_path) is required: without it the rerank "
                              "processor fails with HTTP 500")

