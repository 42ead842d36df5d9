"""Connection settings and the REST transport (retries, backoff, error messages, dry runs).

The transport is exercised with the real opensearch-py client against a small local HTTP server that answers
with scripted statuses (a real socket, no mocks); everything against a real OpenSearch is in integration/.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from distilrank.errors import ConfigError, DistilRankError
from distilrank.plugin.connection import load_connection
from distilrank.plugin.transport import ClusterError, Transport
from tests.plugin.json_http import reply_json, serving


class Scripted(BaseHTTPRequestHandler):
    script: list[tuple[int, dict]] = []
    seen: list[tuple[str, str]] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append((self.command, self.path))
        status, body = type(self).script.pop(0) if type(self).script else (200, {"ok": True})
        reply_json(self, status, body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    Scripted.script, Scripted.seen = [], []
    with serving(Scripted) as url:
        yield url


def transport(url: str, **kw) -> tuple[Transport, list[float]]:
    sleeps: list[float] = []
    t = Transport(load_connection(env={}, url=url, retries=kw.pop("retries", 3), backoff=0.1), sleep=sleeps.append, **kw)
    return t, sleeps


# --- connection ---------------------------------------------------------------------------------------------

def test_precedence_flags_env_file(tmp_path):
    cfg = tmp_path / "conn.toml"
    cfg.write_text('[opensearch]\nurl = "https://file:9200"\nuser = "fileuser"\ntimeout = 5\npassword_env = "MY_PW"\n')
    env = {"MY_PW": "s3cret", "OPENSEARCH_USER": "envuser"}
    s = load_connection(cfg, env=env)
    assert (s.url, s.user, s.password, s.timeout) == ("https://file:9200", "envuser", "s3cret", 5.0)
    s = load_connection(cfg, env=env, user="flaguser", url="http://flag:1", timeout=None)
    assert (s.url, s.user, s.timeout) == ("http://flag:1", "flaguser", 5.0)


def test_password_never_shown(tmp_path):
    s = load_connection(env={"OPENSEARCH_PASSWORD": "Hunter2-secret"}, url="https://h:9200", user="admin", verify_certs=False)
    assert "Hunter2" not in repr(s) and "Hunter2" not in s.describe() and "Hunter2" not in json.dumps(s.redacted())
    assert s.describe() == "https://admin:***@h:9200 (TLS, verification OFF)"


def test_bad_settings_name_the_field(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[opensearch]\nurll = "http://x:1"\n')
    with pytest.raises(ConfigError, match=r"c.toml: field 'opensearch.urll': unknown key"):
        load_connection(cfg, env={})
    cfg.write_text('[opensearch]\ntimeout = "soon"\n')
    with pytest.raises(ConfigError, match=r"field 'opensearch.timeout'.*positive number"):
        load_connection(cfg, env={})
    with pytest.raises(DistilRankError, match="environment variable OPENSEARCH_VERIFY_CERTS: expected true/false"):
        load_connection(env={"OPENSEARCH_VERIFY_CERTS": "maybe"})
    with pytest.raises(DistilRankError, match="must look like http"):
        load_connection(env={}, url="localhost:9200")
    with pytest.raises(DistilRankError, match="CA bundle .*missing.pem does not exist"):
        load_connection(env={}, url="https://h:1", ca_certs=str(tmp_path / "missing.pem"))


# --- transport ----------------------------------------------------------------------------------------------

def test_retries_429_with_backoff(server):
    Scripted.script = [(429, {"error": "busy"}), (429, {"error": "busy"}), (200, {"answer": 42})]
    t, sleeps = transport(server)
    assert t.request("GET", "/x") == {"answer": 42}
    assert sleeps == [0.1, 0.2] and len(Scripted.seen) == 3


def test_gives_up_after_retries_with_the_reason(server):
    Scripted.script = [(503, {"error": {"type": "unavailable", "reason": "node leaving"}})] * 3
    t, sleeps = transport(server, retries=2)
    with pytest.raises(ClusterError, match=r"GET /x failed with HTTP 503: unavailable: node leaving") as e:
        t.request("GET", "/x")
    assert e.value.status == 503 and sleeps == [0.1, 0.2]


def test_non_idempotent_post_not_retried_on_502(server):
    Scripted.script = [(502, {"error": "bad gateway"}), (200, {})]
    t, sleeps = transport(server)
    with pytest.raises(ClusterError, match="HTTP 502"):
        t.request("POST", "/_plugins/_ml/models/_register_meta", {"a": 1})
    assert sleeps == [] and len(Scripted.seen) == 1


def test_auth_errors_explained(server):
    Scripted.script = [(401, {"error": "unauthorized"})]
    t = Transport(load_connection(env={}, url=server, user="alice", password="pw"))
    with pytest.raises(ClusterError, match=r"authentication failed .*user 'alice'.*\n  fix: check --user/--password"):
        t.request("GET", "/")
    Scripted.script = [(403, {"error": {"type": "security_exception", "reason": "no permissions for [cluster:admin/opensearch/ml/predict]"}})]
    with pytest.raises(ClusterError, match=r"(?s)lacks permission: security_exception: no permissions.*ml_full_access"):
        t.request("GET", "/")


def test_unreachable_cluster(server):
    t, sleeps = transport("http://127.0.0.1:1", retries=1)
    with pytest.raises(ClusterError, match=r"cannot reach the cluster at http://127.0.0.1:1.*\n  fix: check --url"):
        t.request("GET", "/")
    assert sleeps == [0.1]


def test_ok_statuses_return_instead_of_raising(server):
    Scripted.script = [(404, {"error": "missing"})]
    t, _ = transport(server)
    assert t.request("GET", "/nope", ok_statuses=(404,)) == {"status": 404, "error": {"error": "missing"}}


def test_dry_run_sends_reads_and_records_writes(server):
    t, _ = transport(server, dry_run=True)
    t.request("GET", "/_cluster/health")
    t.request("POST", "/idx/_search", {"query": {"match_all": {}}})
    out = t.request("POST", "/_plugins/_ml/models/_register_meta", {"name": "m"}, dry_response={"model_id": "<dry-run:model_id>"})
    t.request("POST", "/_plugins/_ml/models/<dry-run:model_id>/upload_chunk/0", b"\x00" * 1000)
    assert out == {"model_id": "<dry-run:model_id>"}
    assert Scripted.seen == [("GET", "/_cluster/health"), ("POST", "/idx/_search")]
    planned = [r.to_dict() for r in t.planned]
    assert [p["path"] for p in planned] == ["/_plugins/_ml/models/_register_meta", "/_plugins/_ml/models/<dry-run:model_id>/upload_chunk/0"]
    assert planned[1]["body"].startswith("<1,000 bytes, sha256 ")


# --- overload (HTTP 429): retried with backoff, then a message naming what is full ----------------------------

ML_POOL_REJECTION = {"error": {"root_cause": [{"type": "rejected_execution_exception", "reason": (
    "rejected execution of org.opensearch.ml.task.MLPredictTaskRunner$$Lambda/0x1@2 on OpenSearchThreadPoolExecutor"
    "[name = node-1/opensearch_ml_predict, queue capacity = 10000, org.opensearch.common.util.concurrent."
    "OpenSearchThreadPoolExecutor@3[Running, pool size = 2, active threads = 2, queued tasks = 10000]]")}],
    "type": "rejected_execution_exception", "reason": "rejected execution of ..."}, "status": 429}
ML_BREAKER = {"error": {"type": "m_l_limit_exceeded_exception", "reason": "Memory Circuit Breaker is open, please check your "
                                                                          "resources!"}, "status": 429}


def test_search_429_retried_then_answered(server):
    Scripted.script = [(429, ML_POOL_REJECTION), (200, {"hits": {"hits": []}})]
    logged: list[str] = []
    t, sleeps = transport(server, log=logged.append)
    assert t.request("POST", "/idx/_search", {"query": {"match_all": {}}}) == {"hits": {"hits": []}}
    assert sleeps == [0.1] and len(Scripted.seen) == 2
    assert "ML Commons thread pool 'opensearch_ml_predict' is full" in logged[0]


def test_search_429_gives_up_naming_the_ml_thread_pool(server):
    Scripted.script = [(429, ML_POOL_REJECTION)] * 3
    t, sleeps = transport(server, retries=2)
    with pytest.raises(ClusterError, match=r"(?s)HTTP 429.*fix: the cluster rejected the request after the retries: ML Commons "
                                           r"thread pool 'opensearch_ml_predict' is full \(queue capacity 10000\)") as e:
        t.request("POST", "/idx/_search", {"query": {"match_all": {}}}, params={"search_pipeline": "p"})
    assert e.value.status == 429 and sleeps == [0.1, 0.2]


def test_search_429_names_the_ml_memory_breaker(server):
    Scripted.script = [(429, ML_BREAKER)]
    t, _ = transport(server, retries=0)
    with pytest.raises(ClusterError, match=r"(?s)Memory Circuit Breaker is open.*fix: an ML Commons memory breaker is open"):
        t.request("POST", "/idx/_search", {})


def test_overload_cause_names_core_pools_and_breakers():
    from distilrank.plugin.transport import overload_cause

    search_pool = "rejected execution of x on OpenSearchThreadPoolExecutor[name = n/search, queue capacity = 1000, y]"
    assert overload_cause(search_pool) == "thread pool 'search' is full (queue capacity 1000)"
    parent = {"error": {"type": "circuit_breaking_exception", "reason": "[parent] Data too large"}}
    assert overload_cause(parent).startswith("an OpenSearch circuit breaker tripped (circuit_breaking_exception: [parent]")
    assert overload_cause({"error": "busy"}) == "overloaded (busy)"


# --- several nodes ------------------------------------------------------------------------------------------

class OtherNode(Scripted):
    script: list[tuple[int, dict]] = []
    seen: list[tuple[str, str]] = []


def _dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_several_node_urls_from_flags_env_and_toml(tmp_path):
    s = load_connection(env={"OPENSEARCH_URL": "http://a:9200, http://b:9200,http://c:9200"})
    assert s.urls == ["http://a:9200", "http://b:9200", "http://c:9200"] and "http://b:9200" in s.describe()
    cfg = tmp_path / "c.toml"
    cfg.write_text('[opensearch]\nurl = ["https://a:9200", "https://b:9200"]\nuser = "u"\npassword = "pw"\n')
    s = load_connection(cfg, env={})
    assert s.urls == ["https://a:9200", "https://b:9200"] and "pw" not in s.describe()
    with pytest.raises(DistilRankError, match="mix http and https"):
        load_connection(env={}, url="http://a:9200,https://b:9200")
    with pytest.raises(DistilRankError, match="'b:9200' must look like"):
        load_connection(env={}, url="http://a:9200,b:9200")


def test_a_read_fails_over_to_another_node_at_once(server):
    lines: list[str] = []
    t, sleeps = transport(f"{_dead_url()},{server}", log=lines.append)
    for _ in range(4):  # round-robin: the dead node is tried once, then set aside
        assert t.request("GET", "/_cluster/health") == {"ok": True}
    assert sleeps == [] and len(Scripted.seen) == 4
    assert sum("retrying on another node" in line for line in lines) == 1


def test_a_503_node_is_set_aside_and_the_read_retried_on_another():
    Scripted.script, Scripted.seen, OtherNode.script, OtherNode.seen = [], [], [], []
    from tests.plugin.json_http import serving

    with serving(Scripted) as a, serving(OtherNode) as b:
        Scripted.script = [(503, {"error": "node shutting down"})]
        OtherNode.script = [(503, {"error": "node shutting down"})]
        t, sleeps = transport(f"{a},{b}")
        assert t.request("GET", "/idx/_search") == {"ok": True}  # one node 503, the other 503 once, then served
        assert len(Scripted.seen) + len(OtherNode.seen) == 3 and sleeps == [0.2]  # the first retry at once, then backoff


def test_a_single_node_keeps_the_backoff(server):
    Scripted.script = [(503, {"error": "busy"})]
    t, sleeps = transport(server)
    assert t.request("GET", "/idx/_search") == {"ok": True} and sleeps == [0.1]


def test_the_apis_timeout_parameter_reaches_the_node_and_not_the_client():
    """OpenSearch's own ``timeout`` (e.g. ``_cluster/health?wait_for_status=green&timeout=60s``) goes into the URL; opensearch-py
    would otherwise take the string as its read timeout and fail before sending anything."""
    from tests.plugin.json_http import transport_to

    seen: list[str] = []

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            reply_json(self, 200, {"status": "green"})

        def log_message(self, *args):
            pass

    with transport_to(Health) as t:
        assert t.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "60s"})["status"] == "green"
    assert len(seen) == 1 and "timeout=60s" in seen[0] and "wait_for_status=green" in seen[0]


def _partial(reason_type: str) -> dict:
    return {"_shards": {"total": 3, "successful": 2, "failed": 1, "failures": [
        {"shard": 1, "index": "i", "reason": {"type": reason_type, "reason": "[node-0][indices:data/read/search[phase/fetch/id]]"}}]},
        "hits": {"hits": []}}


def test_a_search_that_lost_shards_to_a_leaving_node_is_sent_again(server):
    full = {"_shards": {"total": 3, "successful": 3, "failed": 0}, "hits": {"hits": [{"_id": "a"}]}}
    lost_all = {"error": {"type": "search_phase_execution_exception", "root_cause": [{"type": "node_disconnected_exception"}]},
                "status": 500}
    Scripted.script = [(200, _partial("node_disconnected_exception")), (500, lost_all), (200, full)]
    lines: list[str] = []
    t, _ = transport(server, log=lines.append)
    assert t.request("POST", "/i/_search", {"query": {"match_all": {}}}) == full
    assert len(Scripted.seen) == 3 and sum("a node left" in line or "lost to a node" in line for line in lines) == 2


def test_other_shard_failures_and_writes_are_not_sent_again(server):
    Scripted.script = [(200, _partial("query_shard_exception"))]
    t, _ = transport(server)
    assert t.request("POST", "/i/_search", {})["_shards"]["failed"] == 1 and len(Scripted.seen) == 1
    Scripted.script = [(200, _partial("node_disconnected_exception"))]
    assert t.request("POST", "/i/_doc", {})["_shards"]["failed"] == 1 and len(Scripted.seen) == 2
