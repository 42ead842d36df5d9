"""The ``distilrank`` rescorer (the OpenSearch plugin in ``plugin/opensearch``): search bodies and model upload.

A search body that reranks with the student inside the engine::

    {"size": 10, "query": {...},
     "rescore": {"window_size": 100,
                 "distilrank": {"model": "prod", "query_text": "wireless mouse", "fields": ["title"],
                                "score_mode": "replace"}}}

Each shard scores its own top ``window_size`` hits in one batched ONNX Runtime call (so an index with ``S``
shards scores up to ``S * window_size`` hits, and the coordinator merges them by the new score). ``model`` is an
alias kept by ``distilrank plugin promote/rollback`` (resolved once per search from ``distilrank-registry``) or a
model id. ``score_mode``: ``replace`` (``_score`` = the student's logit) or ``blend``
(``query_weight * norm(first-pass score) + model_weight * norm(logit)``, ``normalization`` ``none`` | ``min_max`` |
``z_score`` over each shard's window: :mod:`distilrank.plugin.blend` computes the same offline). ``text_source``:
``auto`` (doc values when every field is a ``keyword`` with doc values, else stored fields when every field is
stored, else ``_source``), ``_source``, ``stored`` or ``doc_values``.

Blend settings stored with the model (:func:`upload_model` ``blend``, from the model card's ``blend`` entry at
``register``) apply to every search of that model (or of an alias pointing at it) that does not set them: the body
overrides field by field, and a body without ``score_mode`` blends when the model has stored settings (else
``replace``).

The rescorer loads the same zip that is registered with ML Commons, from the copy :func:`upload_model` sends in
chunks (``distilrank plugin register`` does it when the plugin is installed); the node verifies the SHA-256 and
caches the loaded model. The REST calls themselves are :mod:`distilrank.plugin.rescorer_api`'s (``model_record``,
``delete_model``, ``stats`` and ``loaded_models`` are re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from distilrank.errors import DistilRankError
from distilrank.plugin import ml_api, rescorer_api
from distilrank.plugin.blend import NORMALIZATIONS, BlendSettings
from distilrank.plugin.rescorer_api import delete_model as delete_model  # the rescorer's REST calls, re-exported for callers
from distilrank.plugin.rescorer_api import loaded_models as loaded_models
from distilrank.plugin.rescorer_api import model_record as model_record
from distilrank.plugin.rescorer_api import stats as stats
from distilrank.plugin.serving_contract import sha256_file
from distilrank.plugin.transport import Transport

PLUGIN = "distilrank"
UPLOAD_CHUNK_BYTES = 8_000_000  # base64 in JSON: ~10.7 MB per request, well under http.max_content_length (100 MB)
SCORE_MODES = ("replace", "blend")
TEXT_SOURCES = ("auto", "_source", "stored", "doc_values")


def rescore_clause(query_text: str, *, model: str, fields: list[str], window_size: int = 100, score_mode: str | None = None,
                   query_weight: float | None = None, model_weight: float | None = None,
                   text_source: str | None = None, normalization: str | None = None,
                   token_ids_field: str | None = None) -> dict:
    """The ``rescore`` element ``{"window_size": .., "distilrank": {...}}``; raises on a value the plugin refuses.

    A value left ``None`` is not sent: the node takes it from the blend settings stored with the model, else its
    default (``score_mode``: ``blend`` when the model has stored settings, else ``replace``; weights 1.0;
    ``normalization`` ``none``, one of :data:`distilrank.plugin.blend.NORMALIZATIONS`)."""
    params: dict = {"model": model, "query_text": query_text, "fields": list(fields)}
    if score_mode is not None:
        params["score_mode"] = score_mode
    if query_weight is not None:
        params["query_weight"] = float(query_weight)
    if model_weight is not None:
        params["model_weight"] = float(model_weight)
    if normalization is not None:
        params["normalization"] = normalization
    if text_source is not None:
        params["text_source"] = text_source
    if token_ids_field is not None:
        params["token_ids_field"] = token_ids_field
    clause = {"window_size": int(window_size), PLUGIN: params}
    check_rescore_clause(clause)
    return clause


def rescore_search_body(query_text: str, *, model: str, fields: list[str], window_size: int = 100, size: int = 10,
                        query: dict | None = None, score_mode: str | None = None, query_weight: float | None = None,
                        model_weight: float | None = None, text_source: str | None = None,
                        source: bool | list[str] | None = None, normalization: str | None = None,
                        token_ids_field: str | None = None) -> dict:
    """A search body whose hits are rescored by the student: ``query`` (default: ``match`` / ``multi_match`` of
    ``query_text`` on ``fields``) and one ``distilrank`` rescore clause (:func:`rescore_clause`: ``None`` values are
    left to the model's stored blend settings). Checked with :func:`check_rescore_body`."""
    if query is None:
        if not fields:
            raise DistilRankError("give either query= or fields= for the first-stage query")
        query = {"multi_match": {"query": query_text, "fields": list(fields)}} if len(fields) > 1 else \
            {"match": {fields[0]: query_text}}
    body: dict = {"size": size, "query": query,
                  "rescore": rescore_clause(query_text, model=model, fields=fields, window_size=window_size,
                                            score_mode=score_mode, query_weight=query_weight, model_weight=model_weight,
                                            text_source=text_source, normalization=normalization,
                                            token_ids_field=token_ids_field)}
    if source is not None:
        body["_source"] = source
    check_rescore_body(body)
    return body


def check_rescore_clause(clause: dict) -> None:
    """Raise :class:`DistilRankError` for a ``distilrank`` rescore clause the plugin would answer with HTTP 400."""
    params = clause.get(PLUGIN)
    if not isinstance(params, dict):
        raise DistilRankError(f"a rescore clause needs a {PLUGIN!r} object")
    window = clause.get("window_size", 10)
    if not isinstance(window, int) or window < 1:
        raise DistilRankError(f"window_size must be an integer >= 1, got {window!r}")
    if not params.get("model"):
        raise DistilRankError("model is required: an alias (staging, prod) or a model id")
    if not isinstance(params.get("query_text"), str):
        raise DistilRankError("query_text is required: the text the student pairs with each hit")
    fields = params.get("fields")
    if not fields or not all(isinstance(f, str) and f for f in (fields if isinstance(fields, list) else [fields])):
        raise DistilRankError("fields is required: the document fields the student was trained on, e.g. ['title']")
    if params.get("score_mode", "replace") not in SCORE_MODES:
        raise DistilRankError(f"score_mode must be one of {SCORE_MODES}, got {params.get('score_mode')!r}")
    if params.get("text_source", "auto") not in TEXT_SOURCES:
        raise DistilRankError(f"text_source must be one of {TEXT_SOURCES}, got {params.get('text_source')!r}")
    if params.get("normalization", "none") not in NORMALIZATIONS:
        raise DistilRankError(f"normalization must be one of {NORMALIZATIONS}, got {params.get('normalization')!r}")
    for name in ("query_weight", "model_weight"):
        value = params.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DistilRankError(f"{name} must be a finite number, got {value!r}")
    tif = params.get("token_ids_field")
    if tif is not None and (not isinstance(tif, str) or not tif.strip()):
        raise DistilRankError(f"token_ids_field must be a field name, got {tif!r}")
    unknown = set(params) - {"model", "query_text", "fields", "score_mode", "query_weight", "model_weight", "normalization",
                             "text_source", "token_ids_field"}
    if unknown:
        raise DistilRankError(f"unknown {PLUGIN} parameter(s) {sorted(unknown)}")


def check_rescore_body(body: dict) -> None:
    """Raise for a search body whose ``distilrank`` rescore would fail or silently not rescore what is asked."""
    clauses = body.get("rescore")
    clauses = clauses if isinstance(clauses, list) else [clauses] if clauses else []
    ours = [c for c in clauses if isinstance(c, dict) and PLUGIN in c]
    if not ours:
        raise DistilRankError(f"the body has no {PLUGIN!r} rescore clause")
    for c in ours:
        check_rescore_clause(c)
    if body.get("sort"):
        raise DistilRankError("rescore cannot be combined with sort (OpenSearch rejects it)")
    size, start = body.get("size", 10), body.get("from", 0)
    window = min(c.get("window_size", 10) for c in ours)
    if isinstance(size, int) and isinstance(start, int) and start + size > window:
        raise DistilRankError(f"from + size = {start + size} is larger than window_size {window}: hits past the window "
                              "would keep first-pass order below the rescored ones; raise window_size")


def rescorer_installed(t: Transport) -> bool:
    """Whether every node of the cluster has the distilrank plugin (``GET _nodes/plugins``)."""
    nodes = ml_api.nodes_plugins(t) or {}
    return bool(nodes) and all(any(p.get("name") == PLUGIN for p in n.get("plugins") or []) for n in nodes.values())


def _stored_blend(record: dict) -> BlendSettings | None:
    """The ``blend`` settings of an upload record, ``None`` when it has none (or ones this client cannot read)."""
    try:
        return BlendSettings.from_dict(record["blend"]) if isinstance(record.get("blend"), dict) else None
    except (TypeError, ValueError):
        return None


def upload_model(t: Transport, model_id: str, zip_path: str | Path, *, sha256: str | None = None,
                 chunk_size: int = UPLOAD_CHUNK_BYTES, log: Callable[[str], None] = lambda m: None,
                 blend: BlendSettings | None = None) -> dict:
    """Upload ``zip_path`` to the rescorer under the ML Commons ``model_id``, with the model's ``blend`` settings
    (stored in the upload record, field ``blend``; ``None``: none). Idempotent: nothing is sent when the same SHA-256
    and the same blend settings are already there; a different ``blend`` uploads again (the record is rewritten by
    the last chunk). The node checks the reassembled zip's hash before it marks it complete. Since the settings live
    with the model id, promoting an alias to the model moves model and settings together."""
    zip_path = Path(zip_path)
    sha = sha256 or sha256_file(zip_path)
    existing = model_record(t, model_id)
    wanted = blend.to_dict() if blend is not None else None
    if existing and existing.get("complete") and existing.get("sha256") == sha:
        if _stored_blend(existing) == blend and (blend is not None or "blend" not in existing):
            log(f"rescorer already has model {model_id} (sha256 {sha[:12]}...)")
            return {"model_id": model_id, "sha256": sha, "reused": True, "chunks": 0, "blend": wanted}
        log(f"rescorer has model {model_id} with blend settings {existing.get('blend')}; uploading it again with {wanted}")
    data = zip_path.read_bytes()
    n = max(1, math.ceil(len(data) / chunk_size))
    resp: dict = {}
    for i in range(n):
        resp = rescorer_api.upload_chunk(t, model_id, i, data[i * chunk_size:(i + 1) * chunk_size], sha256=sha,
                                         size=len(data), total_chunks=n, blend=wanted)
    if not resp.get("complete"):
        raise DistilRankError(f"upload of {zip_path.name} to the rescorer did not complete: {resp}")
    log(f"uploaded {zip_path.name} to the rescorer as {model_id} ({len(data):,} bytes, {n} chunk(s))")
    return {"model_id": model_id, "sha256": sha, "reused": False, "chunks": n, "bytes": len(data), "blend": wanted}
