"""``distilrank ab export-srw --push``: send an export (:mod:`distilrank.plugin.abtest.srw_export`) to a cluster with the
Search Relevance Workbench, and the REST calls that create SRW resources (one function per call).

The requests of ``manifest.json`` go in order -- query set, search configurations, judgments, experiment imports --;
each answer's new id (``query_set_id``, ``search_configuration_id``, ``judgment_id``, ``experiment_id``, the fields the
handlers of :mod:`distilrank.plugin.abtest.srw_schema` answer with) replaces its ``${...}`` placeholder in the bodies
that follow. Every create is sent once (``idempotent=False``: a retried create would make a second resource). The
cluster's refusals become messages that say what to do:

* HTTP 404, or 400 "no handler found for uri" (what OpenSearch 3.6 answers for a path no plugin serves): SRW is not
  installed -- install ``opensearch-search-relevance`` on every node;
* 403 "Search Relevance Workbench is disabled": turn ``plugins.search_relevance.workbench_enabled`` on;
  403 "Query Set Limit Exceeded.": raise ``plugins.search_relevance.query_set.maximum``;
  any other 403 (the security plugin): the user needs the SRW action (role ``search_relevance_full_access``);
* 409: the resource exists.

A failure names the resources already created (their ids), so a half-pushed export can be found and deleted in SRW.
``pushed.json`` in the export folder records the ids of a complete push (not in a dry run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distilrank.atomic import write_json
from distilrank.errors import DistilRankError
from distilrank.plugin.abtest import srw_schema as srw
from distilrank.plugin.abtest.srw_export import FORMAT
from distilrank.plugin.transport import ClusterError, Transport, dry_id


class SrwPushError(DistilRankError):
    """A push stopped; ``created`` holds the ids made before it (placeholder name -> id)."""

    def __init__(self, message: str, created: dict[str, str]):
        self.created = dict(created)
        done = (" Already created in SRW: " + ", ".join(f"{k} = {v}" for k, v in created.items())) if created else ""
        super().__init__(message + done)


def _text(reason: Any) -> str:
    return reason if isinstance(reason, str) else json.dumps(reason, default=str)


def explain_refusal(exc: ClusterError, kind: str, what: str, user: str | None) -> str:
    """What a refused SRW request means and what to do, from the cluster's status and reason (``what``: the file or
    resource sent)."""
    ep = srw.ENDPOINTS[kind]
    reason, status = _text(exc.reason), exc.status
    request = f"{ep.method} {ep.full_path} ({what})"
    if status == 404 or (status == 400 and "no handler found" in reason):
        return (f"{request}: the cluster has no Search Relevance Workbench (HTTP {status}: {reason}). Install the "
                f"{srw.PLUGIN} plugin on every node (bin/opensearch-plugin install {srw.PLUGIN}; it ships with the "
                f"OpenSearch 3.x distribution), restart the nodes, set {srw.WORKBENCH_SETTING} to true, and push again "
                f"(or send the exported files yourself)")
    plain = exc.reason in (None, "")  # SRW's own 403s are plain text (opensearch-py keeps no reason); security's are JSON
    disabled, limit = plain or "Workbench is disabled" in reason, (plain and kind == "query_set") or "Limit Exceeded" in reason
    if status == 403 and (disabled or limit):
        fixes = []
        if disabled:
            fixes.append(f"if the workbench is installed but disabled (SRW's answer 'Search Relevance Workbench is disabled'), "
                         f"turn it on: PUT _cluster/settings {{\"persistent\": {{\"{srw.WORKBENCH_SETTING}\": true}}}}")
        if limit:
            fixes.append(f"if the query set has more queries than the cluster allows (SRW's answer 'Query Set Limit "
                         f"Exceeded.'), raise {srw.QUERY_SET_MAX_SETTING} (default {srw.QUERY_SET_MAX_DEFAULT})")
        said = "a plain-text answer, SRW's own refusal" if plain else reason
        return f"{request}: SRW refused it (HTTP 403: {said}); " + "; ".join(fixes)
    if status == 403:
        who = f"user {user!r}" if user else "the user"
        return (f"{request}: {who} lacks the permission {ep.action} (HTTP 403: {reason}). Map the user to the security "
                f"plugin's {srw.SECURITY_ROLE} role, or give a role the cluster permission {srw.ACTION_PREFIX}*")
    if status == 409:
        return (f"{request}: SRW says it exists already (HTTP 409: {reason}). Delete the existing one in SRW "
                f"(DELETE {ep.full_path}/<id>) or export again with another --name")
    return f"{request}: SRW refused it (HTTP {status}: {reason})"


def create(t: Transport, kind: str, body: dict, *, what: str, id_name: str) -> str:
    """Send one SRW create (``kind``: a key of :data:`srw_schema.ENDPOINTS`) and return the id it answers; a dry run
    answers ``<dry-run:id_name>``. Raises :class:`DistilRankError` with :func:`explain_refusal`'s message."""
    ep = srw.ENDPOINTS[kind]
    try:
        resp = t.request(ep.method, f"/{ep.full_path}", body, idempotent=False, dry_response={ep.id_field: dry_id(id_name)})
    except ClusterError as exc:
        if exc.status is None:
            raise
        raise DistilRankError(explain_refusal(exc, kind, what, t.settings.user)) from None
    new_id = resp.get(ep.id_field) if isinstance(resp, dict) else None
    if not isinstance(new_id, str) or not new_id:
        raise DistilRankError(f"{ep.method} {ep.full_path} ({what}): the answer has no {ep.id_field!r}: {_text(resp)[:300]}")
    return new_id


def fill(body: Any, ids: dict[str, str]) -> Any:
    """``body`` with every string that is a known placeholder (``${query_set_id}``) replaced by its id; an unknown
    ``${...}`` string raises."""
    if isinstance(body, dict):
        return {k: fill(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, ids) for v in body]
    if isinstance(body, str) and body.startswith("${") and body.endswith("}"):
        if body not in ids:
            raise DistilRankError(f"placeholder {body} has no id: the request that fills it is not earlier in manifest.json")
        return ids[body]
    return body


def read_manifest(out_dir: str | Path) -> dict:
    """``manifest.json`` of an export folder, checked to be one and complete (the round trip held)."""
    p = Path(out_dir) / "manifest.json"
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DistilRankError(f"{p}: missing: export the report first ('distilrank ab export-srw REPORT --out {out_dir}')") from None
    except ValueError as exc:
        raise DistilRankError(f"{p}: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not (manifest.get("round_trip") or {}).get("identical"):
        raise DistilRankError(f"{p}: not a complete distilrank SRW export (format {FORMAT}, round trip checked)")
    return manifest


def push(t: Transport, out_dir: str | Path, *, log: Callable[[str], None] = lambda m: None) -> dict:
    """Create the export's resources in SRW in manifest order; return ``{"ids": {placeholder: id}, "experiments":
    {arm: experiment id}, "requests": n}`` and (unless a dry run) write it to ``pushed.json``. Raises
    :class:`SrwPushError` naming what was already created."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    ids: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for req in manifest["requests"]:
        body = json.loads((out / req["file"]).read_text(encoding="utf-8"))
        try:
            new_id = create(t, req["kind"], fill(body, ids), what=req["file"], id_name=req["fills"].strip("${}"))
        except DistilRankError as exc:
            raise SrwPushError(str(exc), ids) from None
        ids[req["fills"]] = new_id
        if req["kind"] == "experiment":
            experiments[req["arm"]] = new_id
        log(f"{req['method']} {req['path']} ({req['file']}): {req['id_field']} {new_id}")
    result = {"ids": ids, "experiments": experiments, "requests": len(manifest["requests"])}
    if t.live("record the new ids in pushed.json"):
        write_json(out / "pushed.json", result)
    return result
