"""Why did this product move: one hit's explanation from a rescored search.

OpenSearch's ``_explain`` API does not run rescorers, so :func:`explain_hit` runs the search itself with
``"explain": true`` and ``size`` at least the rescore window, and returns the requested document's rank, score and
Lucene explanation: the first-pass score, the model's logit, the window normalisation with the statistics it used, the
weights and the combined score, and the model id with the alias it was resolved from (the ``distilrank`` rescorer's
explanation).  :func:`format_explanation` prints the tree one node per line."""

from __future__ import annotations

from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.transport import Transport


def explain_hit(t: Transport, index: str, body: dict, doc_id: str) -> dict[str, Any]:
    """``{"doc", "rank", "score", "explanation", "hits"}`` of document ``doc_id`` in the search ``body`` on ``index``
    (``rank`` 1-based among the hits returned; ``hits`` how many were returned).  ``body["size"]`` is raised to the
    rescore window so a rescored document is found.  Raises :class:`DistilRankError` when the document is not among
    the hits (it is outside the first pass's top ``window_size``, or does not match the query)."""
    window = max((int(r.get("window_size", 10)) for r in _rescores(body)), default=0)
    search = {**body, "explain": True, "size": max(int(body.get("size", 10)), window)}
    hits = index_api.search(t, index, search).get("hits", {}).get("hits", [])
    for rank, hit in enumerate(hits, 1):
        if hit.get("_id") == doc_id:
            return {"doc": doc_id, "rank": rank, "score": hit.get("_score"), "explanation": hit.get("_explanation"), "hits": len(hits)}
    raise DistilRankError(f"document {doc_id!r} is not among the {len(hits)} hits of this search on {index!r}: it does not match "
                          "the first-stage query, or ranks below the rescore window")


def _rescores(body: dict) -> list[dict]:
    r = body.get("rescore") or []
    return [r] if isinstance(r, dict) else list(r)


def format_explanation(node: dict | None, indent: int = 0) -> list[str]:
    """The explanation tree, one ``value  description`` line per node: values right-aligned in one column, each
    child's description indented under its parent's."""
    if not node:
        return ["(no explanation)"]
    value = node.get("value")
    shown = f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
    lines = [f"{shown:>12}  {' ' * indent}{node.get('description', '')}"]
    for child in node.get("details") or []:
        lines += format_explanation(child, indent + 2)
    return lines
