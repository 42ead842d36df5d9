"""A thin REST transport over opensearch-py: retries with backoff, errors that say what to fix, and dry runs.

Every request of the plugin goes through :meth:`Transport.request`. It

* retries 429/502/503/504 and connection errors with exponential backoff (``backoff * 2**attempt``, at most
  30 s, ``retries`` times); requests that are not idempotent are retried only on 429/503 and on connection
  refusals, where the cluster cannot have acted on them; with several node URLs the first retry of a node-level
  failure goes to another node at once;
* sends a search again when it lost shards only because a node left during it (:func:`lost_a_node`: a partial answer,
  or a 500/503 ``search_phase_execution_exception``, whose failures are all disconnected or closed nodes), which a
  rolling restart causes in the fetch phase;
* turns failures into :class:`ClusterError`, whose message names the request, the cluster's own reason
  (verbatim) and a fix: unreachable cluster, TLS problems, wrong credentials (401), missing permissions (403);
* in ``dry_run`` mode sends read-only requests (GET, ``_search``) for real but only *records* writes, answering
  them with placeholders (ids such as ``<dry-run:model_id>``), so a command prints exactly what it would do.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from distilrank.errors import DistilRankError
from distilrank.plugin.connection import ConnectionSettings

RETRY_STATUS = (429, 502, 503, 504)
SAFE_RETRY_STATUS = (429, 503)
DRY_PREFIX = "<dry-run:"


def dry_id(what: str) -> str:
    """The placeholder a dry run answers instead of a real id."""
    return f"{DRY_PREFIX}{what}>"


class ClusterError(DistilRankError):
    """A request failed. ``status`` is the HTTP status (``None`` when the cluster could not be reached)."""

    def __init__(self, message: str, *, status: int | None = None, reason: Any = None, fix: str | None = None):
        self.status = status
        self.reason = reason
        self.fix = fix
        super().__init__(message + (f"\n  fix: {fix}" if fix else ""))


@dataclass
class PlannedRequest:
    """A request as sent (or, in a dry run, as it would be sent). ``body`` is JSON, or a size note for bytes."""

    method: str
    path: str
    body: Any = None
    params: dict | None = None
    sent: bool = True

    def to_dict(self) -> dict:
        return {"method": self.method, "path": self.path, "params": self.params, "body": self.body, "sent": self.sent}

    def __str__(self) -> str:
        q = ("?" + "&".join(f"{k}={v}" for k, v in self.params.items())) if self.params else ""
        body = "" if self.body is None else "\n" + (self.body if isinstance(self.body, str) else json.dumps(self.body, indent=2))
        return f"{self.method} {self.path}{q}{body}"


def _describe_body(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        import hashlib

        return f"<{len(body):,} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}...>"
    return body


#: shard failures that mean a node left or restarted mid-search (OpenSearch retries the query phase on another copy,
#: not the fetch phase, and a restarted node has lost the query phase's search context): a search that lost shards
#: only to them is sent again instead of answering part of the hits
LOST_NODE_FAILURES = ("node_disconnected_exception", "node_not_connected_exception", "node_closed_exception",
                      "connect_transport_exception", "send_request_transport_exception", "no_shard_available_action_exception",
                      "search_context_missing_exception")


def lost_a_node(answer: Any) -> bool:
    """True when a search answer (or error body) failed shards only because a node went away during it."""
    if not isinstance(answer, dict):
        return False
    shards = answer.get("_shards") or {}
    if isinstance(shards, dict) and shards.get("failed"):
        reasons = [json.dumps(f.get("reason")) for f in shards.get("failures") or []]
        return bool(reasons) and all(any(k in r for k in LOST_NODE_FAILURES) for r in reasons)
    text = json.dumps(answer)
    return "search_phase_execution_exception" in text and any(k in text for k in LOST_NODE_FAILURES)


def _is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or (method == "POST" and path.rstrip("/").endswith("/_search"))


@dataclass
class Transport:
    """Sends requests to one cluster. ``log`` receives one line per retry."""

    settings: ConnectionSettings
    dry_run: bool = False
    log: Callable[[str], None] = lambda m: None
    sleep: Callable[[float], None] = time.sleep
    requests: list[PlannedRequest] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    _client: Any = None

    @property
    def client(self):
        """The underlying ``opensearchpy.OpenSearch`` client (created on first use)."""
        if self._client is None:
            self._client = self.settings.client()
        return self._client

    @property
    def planned(self) -> list[PlannedRequest]:
        """The write requests a dry run skipped."""
        return [r for r in self.requests if not r.sent]

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None, *,
                idempotent: bool | None = None, ok_statuses: tuple[int, ...] = (), dry_response: Any = None) -> Any:
        """Perform one request and return the decoded JSON response.

        ``ok_statuses``: statuses returned as ``{"status": code, "error": ...}`` instead of raising (e.g. 404).
        ``dry_response``: what a dry run answers for a skipped write (default ``{}``).
        """
        method = method.upper()
        if params and "timeout" in params:  # opensearch-py would take it as its own read timeout: send the API's in the URL
            path, params = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}", None
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE") or _is_read(method, path)
        record = PlannedRequest(method, path, _describe_body(body), dict(params) if params else None)
        if self.dry_run and (not _is_read(method, path) or DRY_PREFIX in path):
            record.sent = False
            self.requests.append(record)
            return {} if dry_response is None else dry_response
        self.requests.append(record)
        from opensearchpy.exceptions import (
            AuthenticationException,
            AuthorizationException,
            ConnectionError,
            ConnectionTimeout,
            SSLError,
            TransportError,
        )

        attempt = 0
        while True:
            try:
                answer = self.client.transport.perform_request(method, path, body=body, params=params)
                if _is_read(method, path) and attempt < self.settings.retries and lost_a_node(answer):
                    attempt = self._backoff(attempt, method, path, "shards lost to a node that left", failover=True)
                    continue
                return answer
            except (AuthenticationException, AuthorizationException) as exc:
                raise self._auth_error(exc, method, path) from None
            except SSLError as exc:
                raise ClusterError(
                    f"TLS handshake with {self.settings.describe()} failed: {exc.info or exc}",
                    fix="pass the cluster's CA bundle with --ca-certs (or OPENSEARCH_CA_CERT); "
                        "--no-verify-certs turns verification off (development only)") from None
            except ConnectionTimeout as exc:
                if idempotent and attempt < self.settings.retries:
                    attempt = self._backoff(attempt, method, path, "timed out")
                    continue
                raise ClusterError(f"{method} {path}: no answer from {self.settings.describe()} within "
                                   f"{self.settings.timeout:g} s ({exc.info or exc})",
                                   fix="raise --timeout, or check the cluster's load (GET _cat/thread_pool)") from None
            except ConnectionError as exc:
                if attempt < self.settings.retries:
                    attempt = self._backoff(attempt, method, path, "connection failed", failover=True)
                    continue
                raise ClusterError(f"cannot reach the cluster at {self.settings.describe()}: {exc.info or exc}",
                                   fix="check --url (or OPENSEARCH_URL): scheme http/https, host and port; is the node running?") from None
            except TransportError as exc:
                status = exc.status_code if isinstance(exc.status_code, int) else None
                retry_on = RETRY_STATUS if idempotent else SAFE_RETRY_STATUS
                if _is_read(method, path) and status in (500, 503) and lost_a_node(exc.info) and attempt < self.settings.retries:
                    attempt = self._backoff(attempt, method, path, f"HTTP {status}: a node left during the search", failover=True)
                    continue
                if status in retry_on and attempt < self.settings.retries:
                    why = f"HTTP {status}" + (f" ({overload_cause(exc.info)})" if status == 429 else "")
                    attempt = self._backoff(attempt, method, path, why, failover=status in (502, 503, 504))
                    continue
                if status in ok_statuses:
                    return {"status": status, "error": exc.info}
                raise ClusterError(f"{method} {path} failed with HTTP {status}: {_reason(exc.info)}", status=status,
                                   reason=exc.info, fix=_fix_for(status, exc.info)) from None

    def live(self, step: str) -> bool:
        """Whether ``step`` (a wait on the cluster's state, a smoke test: something a write must have happened for)
        can run: True unless this is a dry run, which records ``step`` as skipped (shown by :meth:`with_planned`)."""
        if self.dry_run:
            self.skipped_steps.append(step)
        return not self.dry_run

    def with_planned(self, result: dict, human: str) -> tuple[dict, str]:
        """``result`` and ``human`` plus, in a dry run, the write requests that were not sent (``planned_requests``
        and one indented block per request); unchanged otherwise."""
        if not self.dry_run:
            return result, human
        result = {**result, "dry_run": True, "planned_requests": [r.to_dict() for r in self.planned],
                  "skipped_steps": list(self.skipped_steps)}
        human = (human + "\n" if human else "") + f"dry run: {len(self.planned)} write request(s) not sent:\n" + \
            "\n".join(f"  {str(r)}".replace("\n", "\n  ") for r in self.planned)
        if self.skipped_steps:
            human += "\nnot run (they need those writes): " + "; ".join(self.skipped_steps)
        return result, human

    def _backoff(self, attempt: int, method: str, path: str, why: str, *, failover: bool = False) -> int:
        """Sleep before retry ``attempt + 1``. With several node URLs and a node-level failure (``failover``: refused
        connection, 502/503/504; opensearch-py has set that node aside), the first retry goes to another node at once."""
        if failover and attempt == 0 and len(self.settings.urls) > 1:
            self.log(f"{method} {path}: {why}; retrying on another node")
            return attempt + 1
        delay = min(30.0, self.settings.backoff * (2 ** attempt))
        self.log(f"{method} {path}: {why}; retry {attempt + 1}/{self.settings.retries} in {delay:g} s")
        self.sleep(delay)
        return attempt + 1

    def _auth_error(self, exc, method: str, path: str) -> ClusterError:
        if exc.status_code == 401:
            who = f"user {self.settings.user!r}" if self.settings.user else "no credentials"
            return ClusterError(f"{method} {path}: authentication failed at {self.settings.describe()} ({who})", status=401,
                                reason=exc.info, fix="check --user/--password (or OPENSEARCH_USER/OPENSEARCH_PASSWORD)")
        return ClusterError(f"{method} {path}: user {self.settings.user!r} lacks permission: {_reason(exc.info)}", status=403,
                            reason=exc.info, fix="map the user to the ml_full_access role (and search pipeline permissions)")


def _reason(info: Any) -> str:
    """The cluster's error reason, verbatim, without the stack of nested causes."""
    if isinstance(info, dict):
        err = info.get("error", info)
        if isinstance(err, dict):
            root = (err.get("root_cause") or [{}])[0]
            reason = err.get("reason") or root.get("reason")
            kind = err.get("type") or root.get("type")
            text = f"{kind}: {reason}" if kind else str(reason)
            if root.get("reason") and root.get("reason") != reason:  # "all shards failed" says nothing by itself
                text += f" (root cause {root.get('type')}: {root['reason']})"
            return text
        return str(err)
    return str(info)[:2000]


def _fix_for(status: int | None, info: Any) -> str | None:
    text = json.dumps(info) if not isinstance(info, str) else info
    if "allow_registering_model_via_local_file" in text or "Model upload via local file is disabled" in text:
        return "set plugins.ml_commons.allow_registering_model_via_local_file=true (distilrank plugin preflight shows it)"
    if "circuit" in text.lower() and "breaker" in text.lower():
        return ("an ML Commons memory breaker is open: raise plugins.ml_commons.native_memory_threshold / "
                "jvm_heap_memory_threshold or free memory (distilrank plugin preflight shows the breakers)")
    if status == 404 and "Failed to find model" in text:
        return ("the search pipeline calls an ML model that does not exist (deleted?): 'distilrank plugin list' flags it; "
                "promote a deployed model to the alias (distilrank plugin promote ALIAS --model-id ...)")
    if "maxClauseCount" in text:
        return "the query has more terms than indices.query.bool.max_clause_count (1024 by default): shorten the query text"
    if status == 429:
        return (f"the cluster rejected the request after the retries: {overload_cause(info)}; lower the number of "
                "concurrent searches or the rerank depth, or raise --retries")
    return None


_POOL = re.compile(r"OpenSearchThreadPoolExecutor\[name = (?:[^/\],]*/)?([\w.-]+)(?:, queue capacity = (\d+))?")


def overload_cause(info: Any) -> str:
    """What a 429 says is full: an ML Commons thread pool (``opensearch_ml_*``), an ML Commons memory circuit
    breaker, another thread pool (``search``, ``write``...) or a parent/request circuit breaker; from the
    cluster's own reason text (OpenSearch 2.x/3.x wording)."""
    text = info if isinstance(info, str) else json.dumps(info)
    pool = _POOL.search(text)
    if pool:
        name, capacity = pool.group(1), pool.group(2)
        owner = "ML Commons thread pool" if name.startswith("opensearch_ml") else "thread pool"
        return f"{owner} {name!r} is full" + (f" (queue capacity {capacity})" if capacity else "")
    low = text.lower()
    if "memory circuit breaker" in low or ("ml" in low and "circuit" in low and "breaker" in low):
        return "an ML Commons memory circuit breaker is open (plugins.ml_commons.native_memory_threshold / jvm_heap_memory_threshold)"
    if "circuit_breaking_exception" in low:
        return "an OpenSearch circuit breaker tripped (" + _reason(info)[:300] + ")"
    return "overloaded (" + _reason(info)[:300] + ")"
