"""Sticky hash router: determinism, stickiness, salt, balance, validation; search_with_assignment over real HTTP."""

import json
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.router import Arm, Experiment, search_with_assignment
from tests.paths import REPO_ROOT

N = 100_000
ROOT = REPO_ROOT


def exp(*weights, salt="s1", name="rerank"):
    return Experiment(name, salt, [Arm(f"arm{i}", None if i == 0 else f"pipe{i}", w) for i, w in enumerate(weights)])


def shares(e, n=N):
    c = Counter(e.assign(f"user-{i}").arm for i in range(n))
    return {a.name: c[a.name] / n for a in e.arms}


@pytest.mark.parametrize("weights", [(50, 50), (90, 10), (20, 30, 50), (33.3, 33.3, 33.4)])
def test_balance_within_one_percent(weights):
    got = shares(exp(*weights))
    for (name, share), w in zip(got.items(), weights):
        assert share == pytest.approx(w / 100, abs=0.01), (name, share)


def test_deterministic_sticky_and_salted():
    a, b = exp(50, 50), exp(50, 50)
    ids = [f"session-{i}" for i in range(2000)]
    first = [a.assign(i) for i in ids]
    assert first == [b.assign(i) for i in ids] == [a.assign(i) for i in ids]
    x = first[0]
    assert x.experiment == "rerank" and x.variant_tag == f"rerank:{x.arm}" and 0 <= x.bucket < 1
    assert x.search_pipeline == (None if x.arm == "arm0" else "pipe1")
    other = exp(50, 50, salt="s2")
    changed = sum(first[n].arm != other.assign(i).arm for n, i in enumerate(ids))
    assert 0.4 < changed / len(ids) < 0.6  # a new salt reshuffles about half the users of a 50/50 split
    assert a.assign(123) == a.assign(123)


def test_sticky_across_processes():
    code = ("from distilrank.plugin.abtest.router import Arm, Experiment;"
            "e = Experiment('rerank', 's1', [Arm('arm0', None, 50), Arm('arm1', 'pipe1', 50)]);"
            "print(','.join(e.assign(f'u{i}').arm for i in range(50)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=str(ROOT))
    e = exp(50, 50)
    assert out.stdout.strip() == ",".join(e.assign(f"u{i}").arm for i in range(50))


def test_zero_weight_arm_never_assigned_and_single_arm():
    e = exp(0, 100)
    assert {e.assign(f"u{i}").arm for i in range(3000)} == {"arm1"}
    assert {exp(100).assign(f"u{i}").arm for i in range(100)} == {"arm0"}


@pytest.mark.parametrize("arms, words", [
    ([Arm("a", None, 60), Arm("b", "p", 30)], "sum to 90"),
    ([Arm("a", None, 110), Arm("b", "p", -10)], "'b' weight_percent must be a finite number >= 0"),
    ([Arm("a", None, 50), Arm("a", "p", 50)], "duplicate arm name 'a'"),
    ([], "at least one arm"),
    ([Arm("", None, 100)], "arm #0 name"),
    ([Arm("a:b", None, 100)], "must not contain ':'"),
    ([Arm("a", "", 100)], "search_pipeline"),
    ([Arm("a", None, float("nan")), Arm("b", None, 100)], "finite"),
])
def test_validation_errors_name_the_arm(arms, words):
    with pytest.raises(DistilRankError) as err:
        Experiment("exp1", "salt", arms)
    assert "exp1" in str(err.value) and words in str(err.value)


def test_bad_salt_and_ids():
    with pytest.raises(DistilRankError, match="salt"):
        Experiment("e", "", [Arm("a", None, 100)])
    e = exp(100)
    for bad in ("", None, 1.5, True):
        with pytest.raises(DistilRankError, match="id"):
            e.assign(bad)


class _Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": self.command, "path": self.path, "opaque": self.headers.get("X-Opaque-Id"),
                          "body": json.loads(body) if body else None})
        payload = json.dumps({"took": 3, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    _Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_search_with_assignment_real_client(http_server):
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[{"host": "127.0.0.1", "port": http_server.server_port}], use_ssl=False, timeout=5)
    e = Experiment("rerank", "s1", [Arm("control", None, 50), Arm("student", "student-rerank", 50)])
    ids = [f"u{i}" for i in range(200)]
    student = next(e.assign(i) for i in ids if e.assign(i).arm == "student")
    control = next(e.assign(i) for i in ids if e.assign(i).arm == "control")
    body = {"query": {"match": {"title": "red shoes"}}, "size": 10}

    resp, got = search_with_assignment(client, "products", body, student, size=10, track_total_hits=True)
    assert got is student and resp["took"] == 3
    req = _Recorder.seen[-1]
    assert req["path"].startswith("/products/_search?")
    assert "search_pipeline=student-rerank" in req["path"] and "track_total_hits=true" in req["path"]
    assert req["opaque"] == "rerank:student" and req["body"] == body

    search_with_assignment(client, "products", body, control, opaque_id=False)
    req = _Recorder.seen[-1]
    assert "search_pipeline" not in req["path"] and req["opaque"] is None
    with pytest.raises(DistilRankError, match="search_pipeline"):
        search_with_assignment(client, "products", body, control, search_pipeline="other")


def test_router_module_is_stdlib_only():
    code = ("import sys; import distilrank.plugin.abtest.router;"
            "bad = [m for m in ('numpy', 'opensearchpy', 'matplotlib') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(ROOT))
    assert out.stdout.strip() == "[]"
