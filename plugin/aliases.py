"""Stable names (``staging``, ``prod``, ...) that point to a model version through their search pipelines.

An alias ``A`` owns the search pipeline ``distilrank-A`` (or a name given at the first promote). Searches use the
pipeline; :func:`promote` points it at another deployed model in one ``PUT``, :func:`rollback` points it back at
the previous one. The history lives in :mod:`distilrank.plugin.registry_store`. :func:`safe_to_remove` says whether a model
can be undeployed or deleted without breaking a pipeline or a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from distilrank.errors import DistilRankError
from distilrank.plugin import ml_api, model_nodes, registry_store
from distilrank.plugin.pipelines import RerankSpec, put_rerank_pipeline, read_pipeline_spec
from distilrank.plugin.transport import Transport


def pipeline_name(alias: str) -> str:
    return f"distilrank-{alias}"


@dataclass
class AliasChange:
    alias: str
    pipeline: str
    model_id: str
    previous_model_id: str | None
    spec: dict
    history: list[dict] = field(default_factory=list)
    #: the rescorer's answer to warming the new model before the alias moved (``None``: no rescorer copy to warm)
    warmed: dict | None = None


def warm_rescorer(t: Transport, model_id: str, *, window_size: int = 100, alias: str | None = None) -> dict | None:
    """Load ``model_id`` into the rescorer of every data node and score one dummy window of ``window_size`` there, so the
    first rescored search after ``alias`` moves to it does not pay the load (about 2 s for a 73 MB zip) on any node; the
    models behind the other aliases stay loaded. ``None`` when the cluster has no rescorer plugin or the model was never
    uploaded to it (ML Commons-only models). Raises when a data node cannot warm it."""
    from distilrank.plugin import rescore, rescorer_api

    if not rescore.rescorer_installed(t) or not (rescorer_api.model_record(t, model_id) or {}).get("complete"):
        return None
    return rescorer_api.warm(t, model_id, window_size=window_size, alias=alias)


def warm_summary(warmed: dict) -> str:
    """One line: on how many nodes the rescorer warmed the model, loaded or already there, and the slowest times."""
    if warmed.get("skipped"):
        return f"rescorer not warmed: {warmed['skipped']}"
    nodes = list((warmed.get("nodes") or {}).values())
    loaded = [n for n in nodes if not n.get("already_loaded")]
    evicted = sorted({e for n in nodes for e in n.get("evicted", [])})
    parts = [f"loaded on {len(loaded)} (slowest {max(n.get('load_ms', 0) for n in loaded):.0f} ms)" if loaded else "",
             f"already loaded on {len(nodes) - len(loaded)}" if len(nodes) > len(loaded) else "",
             f"one window of {warmed.get('window_size')} in at most {max((n.get('warm_window_ms', 0) for n in nodes), default=0):.0f} ms",
             f"evicted {', '.join(evicted)}" if evicted else "",
             f"kept {len(warmed.get('protected') or [])} model(s) behind other aliases" if warmed.get("protected") else ""]
    return (f"rescorer warmed {warmed.get('model_id')} on {len(nodes)} data node(s) before the alias moved: "
            + ", ".join(p for p in parts if p))


#: How long promote/rollback wait for nodes that report the model DEPLOYING when its document is not DEPLOYED.
DEPLOYING_WAIT_S = 60.0


def _require_deployed(t: Transport, model_id: str, what: str) -> dict:
    """The model document, once the model serves: its document says DEPLOYED, or every eligible ML node holds it in
    memory (the document lags the nodes: it was seen saying DEPLOYING right after a completed deploy); nodes that
    report it DEPLOYING are waited for, at most :data:`DEPLOYING_WAIT_S`. Raises :class:`DistilRankError` otherwise."""
    model = ml_api.get_model(t, model_id)
    if model is None:
        raise DistilRankError(f"{what}: model {model_id} does not exist (see 'distilrank plugin list')")
    state = model.get("model_state")
    if state == "DEPLOYED" or not t.live(f"{what}: check that {model_id} is DEPLOYED"):
        return model
    eligible = model_nodes.eligible_nodes_now(t)
    missing, _ = model_nodes.wait_while_nodes_deploying(t, model_id, DEPLOYING_WAIT_S, eligible=eligible)
    if eligible and not missing:
        return model
    raise DistilRankError(f"{what}: model {model_id} is {state}, not DEPLOYED"
                          + (f" (not held by node(s) {missing})" if missing else " (no eligible ML node)")
                          + f"; run 'distilrank plugin deploy --model-id {model_id}' first")


#: A claim (``pending``) older than this many seconds is from an operator that died mid-change: it may be taken over.
PENDING_TIMEOUT_S = 120


def _operator() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(t: Transport, alias: str, op: str, model_id: str | None,
           pipeline: str | None = None) -> tuple[registry_store.Versioned, dict]:
    """Mark ``alias`` as being changed (compare-and-set); returns (the claim's version, the record before it).

    Raises :class:`registry_store.ConcurrentChangeError` when another operator holds a live claim or wins the race."""
    ver = registry_store.read_alias(t, alias)
    if ver.source is None and op == "rollback":
        raise DistilRankError(f"alias {alias!r} does not exist (promote a model to it first)")
    record = dict(ver.source or {})
    pending = record.get("pending")
    if pending and registry_store.now() - int(pending.get("since", 0)) < PENDING_TIMEOUT_S:
        raise registry_store.ConcurrentChangeError(
            f"alias {alias!r} is being changed by another operator ({pending.get('by')}: {pending.get('op')} to "
            f"{pending.get('model_id')}, {registry_store.now() - int(pending.get('since', 0))} s ago); nothing was changed: "
            "run the command again when it is done (see 'distilrank plugin list')")
    record.pop("pending", None)
    # In a dry run the claim, like every write, is planned (not sent) and answered with placeholder versions.
    claim = {"pipeline": pipeline or pipeline_name(alias), **record, "alias": alias,
             "pending": {"op": op, "model_id": model_id, "by": _operator(), "since": registry_store.now()}}
    return registry_store.write_alias(t, ver, claim), record


def _release(t: Transport, claim: registry_store.Versioned, before: dict) -> None:
    """Undo a claim after a failed change (the record as it was, or no record for a new alias)."""
    try:
        registry_store.write_alias(t, claim, before or None)
    except Exception:  # noqa: BLE001 - keep the original error; the claim expires after PENDING_TIMEOUT_S
        pass


def _commit(t: Transport, claim: registry_store.Versioned, record: dict) -> None:
    registry_store.write_alias(t, claim, record)


def promote(t: Transport, alias: str, model_id: str, *, document_fields: list[str] | None = None, depth: int | None = None,
            size: int | None = None, index: str | None = None, pipeline: str | None = None) -> AliasChange:
    """Point ``alias`` at ``model_id`` (which must be DEPLOYED). Unset parameters keep the alias's current ones
    (fields default ``["title"]``, depth 100, size 10 on a new alias). ``index`` checks the fields exist there.

    Safe against a second operator: the alias document is claimed by compare-and-set before the pipeline is
    changed, so of two concurrent promotes one wins and the other raises
    :class:`registry_store.ConcurrentChangeError` without touching the pipeline or the history."""
    _require_deployed(t, model_id, f"promote {alias}")
    warmed = warm_rescorer(t, model_id, window_size=depth or 100, alias=alias)  # before the alias moves: its first search is warm
    claim, record = _claim(t, alias, "promote", model_id, pipeline)
    try:
        name = pipeline or record.get("pipeline") or pipeline_name(alias)
        current = read_pipeline_spec(ml_api.get_search_pipeline(t, name))
        base = current or RerankSpec(model_id=model_id)
        spec = RerankSpec(model_id=model_id, document_fields=list(document_fields or base.document_fields),
                          depth=depth or base.depth, size=size or base.size, alias=alias)
        put_rerank_pipeline(t, name, spec, index=index)
    except BaseException:
        _release(t, claim, record)
        raise
    history = list(record.get("history", []))
    previous = current.model_id if current else None
    if current and current.model_id != model_id:
        history.append({"model_id": current.model_id, "spec": asdict(current), "at": registry_store.now()})
    _commit(t, claim, {"alias": alias, "pipeline": name, "model_id": model_id, "params": asdict(spec),
                       "history": history, "updated_at": registry_store.now()})
    return AliasChange(alias, name, model_id, previous, asdict(spec), history, warmed)


def rollback(t: Transport, alias: str) -> AliasChange:
    """Point ``alias`` back at the model it pointed to before the last promote (which must still be DEPLOYED).
    Compare-and-set like :func:`promote`."""
    claim, record = _claim(t, alias, "rollback", None)
    try:
        if not record:
            raise DistilRankError(f"alias {alias!r} does not exist (promote a model to it first)")
        history = list(record.get("history", []))
        if not history:
            raise DistilRankError(f"alias {alias!r} has no earlier model to roll back to (it points at {record.get('model_id')})")
        target = history.pop()
        _require_deployed(t, target["model_id"], f"rollback {alias}")
        spec = RerankSpec(**{**target["spec"], "alias": alias})
        warmed = warm_rescorer(t, spec.model_id, window_size=spec.depth, alias=alias)
        put_rerank_pipeline(t, record["pipeline"], spec)
    except BaseException:
        _release(t, claim, record)
        raise
    _commit(t, claim, {"alias": alias, "pipeline": record["pipeline"], "model_id": spec.model_id, "params": asdict(spec),
                       "history": history, "updated_at": registry_store.now(), "rolled_back_from": record["model_id"]})
    return AliasChange(alias, record["pipeline"], spec.model_id, record["model_id"], asdict(spec), history, warmed)


def aliases(t: Transport) -> list[dict]:
    """Every alias with its pipeline, current model (as the pipeline says) and history."""
    out = []
    for rec in registry_store.all_aliases(t):
        live = read_pipeline_spec(ml_api.get_search_pipeline(t, rec["pipeline"])) if rec.get("pipeline") else None
        out.append({**rec, "live_model_id": live.model_id if live else None,
                    "in_sync": bool(live and live.model_id == rec["model_id"])})
    return sorted(out, key=lambda r: r["alias"])


def references(t: Transport, model_id: str) -> dict[str, list[str]]:
    """Where ``model_id`` is used: search pipelines calling it, aliases pointing at it, aliases that could roll back to it."""
    return references_in(registry_store.all_aliases(t), ml_api.pipelines_using(t, model_id), model_id)


def references_in(records: list[dict], pipelines: list[str], model_id: str) -> dict[str, list[str]]:
    """:func:`references` from the alias records and the names of the pipelines calling ``model_id`` (pure)."""
    current = [a["alias"] for a in records if a.get("model_id") == model_id]
    rollback_targets = [a["alias"] for a in records if any(h.get("model_id") == model_id for h in a.get("history", []))]
    return {"pipelines": list(pipelines), "aliases": current, "rollback_of": rollback_targets}


def removal_problems(refs: dict[str, list[str]], action: str) -> list[str]:
    """Why ``action`` (``"undeploy"`` or ``"delete"``) would break something, one phrase per reason; ``[]`` = safe.
    Undeploying keeps a rollback target registered (it can be deployed again), so only deleting is blocked by it."""
    parts = []
    if refs["pipelines"]:
        parts.append(f"search pipelines {refs['pipelines']} call it")
    if refs["aliases"]:
        parts.append(f"aliases {refs['aliases']} point at it")
    if action != "undeploy" and refs["rollback_of"]:
        parts.append(f"aliases {refs['rollback_of']} would roll back to it")
    return parts


def safe_to_remove(t: Transport, model_id: str, action: str, force: bool = False) -> dict[str, list[str]]:
    """Raise unless ``model_id`` can be undeployed/deleted (``action``) without breaking searches or rollbacks."""
    refs = references(t, model_id)
    parts = removal_problems(refs, action)
    if parts and not force:
        raise DistilRankError(f"refusing to {action} {model_id}: " + "; ".join(parts)
                              + " (promote another model first, or pass --force)")
    return refs
