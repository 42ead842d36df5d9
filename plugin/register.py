"""Register a model zip with ML Commons: model group, ``_register_meta``, chunked upload, wait for REGISTERED.

Idempotent: a model whose ``model_content_hash_value`` equals the zip's SHA-256 in the same model group is
reused (no second upload). A registration that fails half-way (a chunk that keeps failing, a model that never
reaches ``REGISTERED``) is deleted before the error is raised, so nothing half-registered stays behind; a stale
half-registered model with the same hash (``REGISTERING``/``REGISTER_FAILED``, left by a killed run) is deleted
and registered again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from distilrank.plugin import ml_api, registry_store
from distilrank.plugin.model_package import ModelPackage, check_chunk_size
from distilrank.plugin.transport import ClusterError, Transport

REUSABLE_STATES = ("REGISTERED", "DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED", "UNDEPLOYED", "DEPLOY_FAILED")
STALE_STATES = ("REGISTERING", "REGISTER_FAILED")


@dataclass
class Registration:
    """Outcome of :func:`register_package`. ``reused`` is true when no bytes were uploaded."""

    model_id: str
    model_group_id: str
    model_group_created: bool
    reused: bool
    sha256: str
    name: str
    version: str | None = None
    chunks: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0
    cleaned_up: list[str] = field(default_factory=list)


def model_group(t: Transport, name: str, description: str = "distilrank students") -> tuple[str, bool]:
    """Id of the model group called ``name``, created if needed; ``(id, created)``."""
    found = ml_api.search_model_groups(t, name)
    if found:
        return found[0]["_id"], False
    return ml_api.register_model_group(t, name, description), True


def find_by_hash(t: Transport, sha256: str, group_id: str | None = None) -> list[dict]:
    """Model documents with this content hash (optionally in one group), newest first."""
    must: list[dict] = [{"term": {"model_content_hash_value": sha256}}]
    if group_id:
        must.append({"term": {"model_group_id": group_id}})
    return ml_api.search_models(t, {"bool": {"must": must}})


def _description(pkg: ModelPackage) -> str:
    card = pkg.card
    parts = [f"distilrank student {pkg.name()}", f"sha256 {pkg.sha256}"]
    metrics = card.get("metrics") or {}
    student = metrics.get("student") if isinstance(metrics.get("student"), dict) else None
    if student and "accuracy" in student:
        parts.append(f"accuracy {student['accuracy']:.4f}")
    if metrics.get("recovery") is not None:
        parts.append(f"recovery {metrics['recovery']}")
    if card.get("precision"):
        parts.append(card["precision"])
    return "; ".join(str(p) for p in parts)


def register_meta_body(pkg: ModelPackage, group_id: str, name: str, chunk_size: int) -> dict:
    """The ``_register_meta`` request for a TEXT_SIMILARITY ONNX cross-encoder.

    ML Commons requires a ``model_config`` (``model_type``, ``framework_type``). ``embedding_dimension`` is 1 (one
    logit per pair): a cross-encoder has no embedding, ML Commons 3.x ignores it for TEXT_SIMILARITY, but 2.19
    refuses the request without it ("embedding dimension is null", measured on the 2.19.1 secure node).
    ``all_config`` carries the zip's hash, ONNX member and truncation length for later inspection.
    """
    return {
        "name": name,
        "version": "1",
        "model_group_id": group_id,
        "description": _description(pkg),
        "model_format": "ONNX",
        "function_name": "TEXT_SIMILARITY",
        "model_content_hash_value": pkg.sha256,
        "model_content_size_in_bytes": pkg.size,
        "total_chunks": pkg.n_chunks(chunk_size),
        "model_config": {"model_type": "bert", "framework_type": "huggingface_transformers", "embedding_dimension": 1,
                         "all_config": json.dumps({"distilrank": {"sha256": pkg.sha256, "onnx": pkg.onnx_member,
                                                                  "max_length": pkg.tokenizer_max_length}})},
    }


def wait_model_state(t: Transport, model_id: str, states: tuple[str, ...], timeout: float, *,
                     fail_states: tuple[str, ...] = (), fix: str | None = None, poll: float = 0.5) -> dict:
    """Poll the model until its ``model_state`` is one of ``states`` and return the model document; raise
    :class:`ClusterError` on one of ``fail_states`` or after ``timeout`` s. A dry run returns at once."""
    deadline = time.monotonic() + timeout
    while True:
        model = ml_api.get_model(t, model_id) or {}
        state = model.get("model_state")
        if state in states or not t.live(f"wait for {model_id} to be {'/'.join(states)}"):
            return model
        if state in fail_states:
            raise ClusterError(f"model {model_id} ended {state}: {json.dumps(model)[:1500]}")
        if time.monotonic() > deadline:
            raise ClusterError(f"model {model_id} still {state} after {timeout:g} s (waiting for {'/'.join(states)})", fix=fix)
        time.sleep(poll)


def wait_registered(t: Transport, model_id: str, timeout: float) -> dict:
    """Poll until ``model_state`` is ``REGISTERED`` (or later); raise on ``REGISTER_FAILED`` or after ``timeout`` s."""
    return wait_model_state(t, model_id, REUSABLE_STATES, timeout, fail_states=("REGISTER_FAILED",),
                            fix="the cluster may still be merging chunks: raise --wait, or check the ML tasks")


def _cleanup(t: Transport, model_id: str, log: Callable[[str], None]) -> bool:
    try:
        ml_api.delete_model(t, model_id)
        log(f"deleted the partial registration {model_id}")
        return True
    except Exception as exc:  # noqa: BLE001 - report, never mask the original error
        log(f"could not delete the partial registration {model_id}: {exc}")
        return False


def register_package(
    t: Transport,
    pkg: ModelPackage,
    *,
    group: str = "distilrank",
    name: str | None = None,
    chunk_size: int = ml_api.MAX_CHUNK_BYTES,
    chunk_retries: int = 3,
    wait: float = 300.0,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: None,
) -> Registration:
    """Register ``pkg`` in model group ``group`` (created if needed) and wait until it is REGISTERED.

    ``chunk_size`` bytes per ``upload_chunk`` (at most 10,000,000); a failed chunk is re-sent up to
    ``chunk_retries`` times (on top of the transport's retries). Returns a :class:`Registration`.
    """
    check_chunk_size(chunk_size)
    t0 = time.monotonic()
    name = name or pkg.name()
    group_id, created = model_group(t, group)
    cleaned: list[str] = []
    existing = [] if created else find_by_hash(t, pkg.sha256, group_id)
    for hit in existing:
        state = hit["_source"].get("model_state")
        if state in REUSABLE_STATES:
            log(f"model with sha256 {pkg.sha256[:12]}... already registered as {hit['_id']} ({state}): reusing it")
            if registry_store.get_model_record(t, hit["_id"]) is None:
                registry_store.save_model(t, hit["_id"], pkg.sha256, name, pkg.card)
            return Registration(hit["_id"], group_id, created, True, pkg.sha256, hit["_source"].get("name", name),
                                hit["_source"].get("model_version"), seconds=time.monotonic() - t0)
        if state in STALE_STATES:
            log(f"deleting stale half-registered model {hit['_id']} ({state}) with the same hash")
            if _cleanup(t, hit["_id"], log):
                cleaned.append(hit["_id"])
    model_id = ml_api.register_meta(t, register_meta_body(pkg, group_id, name, chunk_size))
    n = pkg.n_chunks(chunk_size)
    sent = 0
    try:
        bar = None
        if progress:
            from distilrank.progress import progress_bar

            bar = progress_bar(total=pkg.size, progress=True, unit="B", unit_scale=True, desc=f"upload {pkg.path.name}", leave=False)
        for index, data in pkg.chunks(chunk_size):
            for attempt in range(chunk_retries + 1):
                try:
                    ml_api.upload_chunk(t, model_id, index, data)
                    break
                except ClusterError as exc:
                    if attempt == chunk_retries or exc.status in (400, 401, 403, 404):
                        raise ClusterError(f"upload of chunk {index + 1}/{n} of {pkg.path.name} failed "
                                           f"after {attempt + 1} tries: {exc}", status=exc.status, reason=exc.reason) from None
                    log(f"chunk {index + 1}/{n} failed ({exc.status}); sending it again")
            sent += len(data)
            if bar:
                bar.update(len(data))
        if bar:
            bar.close()
        model = wait_registered(t, model_id, wait)
    except BaseException:
        if _cleanup(t, model_id, log):
            cleaned.append(model_id)
        raise
    registry_store.save_model(t, model_id, pkg.sha256, name, pkg.card)
    return Registration(model_id, group_id, created, False, pkg.sha256, name, model.get("model_version"), n, sent,
                        time.monotonic() - t0, cleaned)
