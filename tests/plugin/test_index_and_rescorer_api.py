"""The OpenSearch core and rescorer REST modules (``distilrank.plugin.index_api``, ``distilrank.plugin.rescorer_api``) and what builds on
them (``distilrank.plugin.catalogue_index``, ``distilrank.plugin.rescore.upload_model``), over a real socket with the real opensearch-py client.

The server below keeps indices, documents and rescorer uploads in memory and answers with OpenSearch's (and the
rescorer plugin's) response shapes; every request is recorded so the tests check the paths and bodies sent. Its
"BM25" is a stand-in (the number of query words in a document's text), enough to check that hits are parsed, ids
filtered and failures named; the real scores are checked against a node in integration/test_ranking_serve.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from http.server import BaseHTTPRequestHandler

import pytest

from distilrank.catalogue import Catalogue, DocumentText
from distilrank.errors import DistilRankError
from distilrank.plugin import index_api, rescore, rescorer_api
from distilrank.plugin.blend import BlendSettings
from distilrank.plugin.catalogue_index import bm25_scores, bm25_top_k, index_catalogue
from distilrank.plugin.transport import Transport
from tests.plugin.json_http import reply_json, transport_to


class Cluster(BaseHTTPRequestHandler):
    indices: dict[str, dict] = {}  # name -> {"body": create body, "docs": {id: source}, "settings": [...]}
    uploads: dict[str, dict] = {}  # model id -> {"chunks": {n: bytes}, "sha256", "size", "total", "complete"}
    plugins: list[str] = ["distilrank"]
    seen: list[tuple[str, str, object]] = []

    def _reply(self, status: int, body: object = None) -> None:
        reply_json(self, status, body)

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] in ("_bulk", "_msearch"):
            body: object = [json.loads(line) for line in raw.splitlines() if line]
        else:
            body = json.loads(raw) if raw else None
        type(self).seen.append((self.command, path, body))
        self._reply(*self._route(self.command, parts, body))

    def _route(self, method: str, parts: list[str], body) -> tuple[int, object]:
        cls = type(self)
        if parts[:2] == ["_plugins", "distilrank"]:
            return self._rescorer(method, parts[2:], body)
        if parts == ["_nodes", "plugins"]:
            return 200, {"nodes": {n: {"name": n, "plugins": [{"name": p}] if p else []} for n, p in
                                   zip(("n1", "n2"), cls.plugins)}}
        if parts == ["_bulk"]:
            items = []
            for action, source in zip(body[::2], body[1::2]):
                cls.indices[action["index"]["_index"]]["docs"][action["index"]["_id"]] = source
                items.append({"index": {"_id": action["index"]["_id"], "result": "created", "status": 201}})
            return 200, {"errors": False, "items": items}
        if parts == ["_msearch"]:
            return 200, {"responses": [self._search(h["index"], b) for h, b in zip(body[::2], body[1::2])]}
        index = parts[0]
        if index not in cls.indices and not (method == "PUT" and len(parts) == 1):
            return 404, {"error": {"type": "index_not_found_exception", "reason": f"no such index [{index}]"}, "status": 404}
        if len(parts) == 1:
            if method == "PUT":
                cls.indices[index] = {"body": body, "docs": {}, "settings": []}
                return 200, {"acknowledged": True, "index": index}
            del cls.indices[index]
            return 200, {"acknowledged": True}
        if parts[1] == "_mapping":
            return 200, {index: {"mappings": cls.indices[index]["body"]["mappings"]}}
        if parts[1] == "_count":
            return 200, {"count": len(cls.indices[index]["docs"])}
        if parts[1] == "_settings":
            cls.indices[index]["settings"].append(body)
            return 200, {"acknowledged": True}
        if parts[1] == "_refresh":
            return 200, {"_shards": {"failed": 0}}
        if parts[1] == "_search":
            return 200, self._search(index, body)
        if parts[1] == "_mget":
            docs = cls.indices[index]["docs"]
            return 200, {"docs": [{"_id": d, "found": d in docs, "_source": docs.get(d)} for d in body["ids"]]}
        return 400, {"error": {"type": "unsupported", "reason": "/".join(parts)}}

    def _search(self, index: str, body: dict) -> dict:
        """Hits scored by how many query words the document's text holds (a stand-in for BM25)."""
        query = body["query"]
        ids = None
        if "bool" in query:
            ids = set(query["bool"]["filter"][0]["ids"]["values"])
            query = query["bool"]["must"][0]
        words = query["multi_match"]["query"].split()
        if words == ["boom"]:
            return {"error": {"type": "query_shard_exception", "reason": "boom"}, "status": 400}
        hits = []
        for doc_id, src in type(self).indices[index]["docs"].items():
            score = sum(w in src["distilrank_text"].split() for w in words)
            if score and (ids is None or doc_id in ids):
                hits.append({"_id": doc_id, "_score": float(score)})
        hits.sort(key=lambda h: (-h["_score"], h["_id"]))
        return {"hits": {"hits": hits[: body["size"]]}}

    def _rescorer(self, method: str, parts: list[str], body) -> tuple[int, object]:
        ups = type(self).uploads
        if parts == ["_stats"]:
            return 200, {"_nodes": {"total": 1, "successful": 1, "failed": 0}, "nodes": {"n0": {
                "name": "node-0", "models": [{"model_id": m, "bytes": u["size"]} for m, u in ups.items() if u["complete"]]}}}
        model_id = parts[1]
        if method == "GET":
            u = ups.get(model_id)
            if not u:
                return 404, {"error": "no such model"}
            return 200, {k: u[k] for k in ("sha256", "size", "complete", "blend") if u.get(k) is not None}
        if method == "DELETE":
            return (200, {"deleted": model_id}) if ups.pop(model_id, None) else (404, {"error": "no such model"})
        u = ups.setdefault(model_id, {"chunks": {}, "complete": False})
        u.update(sha256=body["sha256"], size=body["size"], total=body["total_chunks"])
        u["chunks"][int(parts[3])] = base64.b64decode(body["data"])
        if len(u["chunks"]) == u["total"]:
            data = b"".join(u["chunks"][i] for i in range(u["total"]))
            u["complete"] = len(data) == u["size"] and hashlib.sha256(data).hexdigest() == u["sha256"]
            u["blend"] = body.get("blend")  # the node writes the record (blend included) from the last chunk
        return 200, {"model_id": model_id, "complete": u["complete"]}

    do_GET = do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, *args):
        pass


@pytest.fixture()
def t():
    Cluster.indices, Cluster.uploads, Cluster.plugins, Cluster.seen = {}, {}, ["distilrank", "distilrank"], []
    with transport_to(Cluster) as t:
        yield t


def _zip(tmp_path, n: int = 2500):
    p = tmp_path / "student.zip"
    p.write_bytes(bytes(range(256)) * (n // 256) + b"x" * (n % 256))
    return p


# --- the rescorer -------------------------------------------------------------


def test_upload_sends_chunks_the_node_reassembles_and_is_idempotent(t, tmp_path):
    z = _zip(tmp_path)
    out = rescore.upload_model(t, "m1", z, chunk_size=1000)
    assert out["chunks"] == 3 and out["bytes"] == 2500 and not out["reused"]
    assert [p for m, p, _ in Cluster.seen if m == "POST"] == [f"/_plugins/distilrank/models/m1/_upload_chunk/{i}" for i in range(3)]
    assert rescorer_api.model_record(t, "m1") == {"sha256": out["sha256"], "size": 2500, "complete": True}
    before = len(Cluster.seen)
    assert rescore.upload_model(t, "m1", z, chunk_size=1000)["reused"] is True
    assert len(Cluster.seen) == before + 1  # one GET of the record, no chunk
    assert [m["model_id"] for m in rescore.loaded_models(t)] == ["m1"]
    rescore.delete_model(t, "m1")
    assert rescore.model_record(t, "m1") is None


def test_blend_settings_are_stored_with_the_model_and_a_change_uploads_again(t, tmp_path):
    z = _zip(tmp_path)
    settings = BlendSettings(0.3, 2.0, "z_score")
    out = rescore.upload_model(t, "m1", z, chunk_size=1000, blend=settings)
    assert out["blend"] == settings.to_dict() and not out["reused"]
    posts = [b for m, _, b in Cluster.seen if m == "POST"]
    assert len(posts) == 3 and all(b["blend"] == settings.to_dict() for b in posts)
    assert BlendSettings.from_dict(rescore.model_record(t, "m1")["blend"]) == settings
    assert rescore.upload_model(t, "m1", z, chunk_size=1000, blend=BlendSettings(0.3, 2.0, "z_score"))["reused"] is True
    other = rescore.upload_model(t, "m1", z, chunk_size=1000, blend=BlendSettings(0.3, 2.0, "min_max"))
    assert not other["reused"] and rescore.model_record(t, "m1")["blend"]["normalization"] == "min_max"
    cleared = rescore.upload_model(t, "m1", z, chunk_size=1000)  # no settings any more: the record loses them
    assert not cleared["reused"] and cleared["blend"] is None and "blend" not in rescore.model_record(t, "m1")
    assert all("blend" not in b for m, _, b in Cluster.seen[-3:] if m == "POST")
    assert rescore.upload_model(t, "m1", z, chunk_size=1000)["reused"] is True


def test_an_upload_the_node_does_not_complete_is_an_error(t, tmp_path):
    with pytest.raises(DistilRankError, match="did not complete"):
        rescore.upload_model(t, "m1", _zip(tmp_path), sha256="0" * 64, chunk_size=1000)  # the node's hash check fails


def test_a_dry_run_upload_reads_for_real_and_plans_every_chunk(t, tmp_path):
    dry = Transport(t.settings, dry_run=True)
    out = rescore.upload_model(dry, "m1", _zip(tmp_path), chunk_size=1000)
    assert out["chunks"] == 3 and not out["reused"]
    assert [(m, p) for m, p, _ in Cluster.seen] == [("GET", "/_plugins/distilrank/models/m1")]  # only the read was sent
    assert [r.path for r in dry.planned] == [f"/_plugins/distilrank/models/m1/_upload_chunk/{i}" for i in range(3)]
    result, human = dry.with_planned(out, "uploaded")
    assert result["dry_run"] is True and "3 write request(s) not sent" in human
    assert Cluster.uploads == {}


def test_rescorer_installed_needs_every_node(t):
    assert rescore.rescorer_installed(t)
    Cluster.plugins = ["distilrank", ""]
    assert not rescore.rescorer_installed(t)


# --- the catalogue index ------------------------------------------------------

PRODUCTS = Catalogue(["A1", "A2", "A3"], [{"asin": "A1", "title": "red usb cable", "brand": "Acme"},
                                          {"asin": "A2", "title": "usb charger", "brand": "Volt"},
                                          {"asin": "A3", "title": "garden hose", "brand": "Acme"}], "products.jsonl")


def test_index_catalogue_creates_bulk_indexes_and_reuses(t):
    doc = DocumentText(fields=["title", "brand"])
    res = index_catalogue(t, "cat", PRODUCTS, doc, batch=2)
    assert res == {"index": "cat", "docs": 3, "reused": False}
    assert sum(p == "/_bulk" for _, p, _ in Cluster.seen) == 2  # batches of 2
    created = Cluster.indices["cat"]
    assert created["body"]["mappings"]["properties"]["doc_id"] == {"type": "keyword"}
    assert created["docs"]["A1"] == {"asin": "A1", "title": "red usb cable", "brand": "Acme", "doc_id": "A1",
                                     "distilrank_text": "red usb cable Acme"}
    assert created["settings"] == [{"index": {"refresh_interval": "1s"}}] and ("POST", "/cat/_refresh", None) in Cluster.seen
    assert index_catalogue(t, "cat", PRODUCTS, doc)["reused"] is True


def test_index_catalogue_refuses_other_contents_unless_recreate(t):
    index_catalogue(t, "cat", PRODUCTS, DocumentText())
    other = DocumentText(fields=["title", "brand"])
    with pytest.raises(DistilRankError, match=r"'cat' exists with other contents \(3 docs"):
        index_catalogue(t, "cat", PRODUCTS, other)
    assert index_catalogue(t, "cat", PRODUCTS, other, recreate=True)["reused"] is False
    assert ("DELETE", "/cat", None) in Cluster.seen
    assert index_api.get_mapping(t, "cat")["cat"]["mappings"]["_meta"]["distilrank"]["document"]["fields"] == ["title", "brand"]
    assert index_api.get_mapping(t, "missing") is None


def test_bm25_top_k_and_scores_batch_queries_into_msearch(t):
    index_catalogue(t, "cat", PRODUCTS, DocumentText())
    batches: list[int] = []
    top = bm25_top_k(t, "cat", ["usb cable", "usb", "hose", "usb"], 5, batch=2, on_batch=batches.append)
    assert top == {"usb cable": [("A1", 2.0), ("A2", 1.0)], "usb": [("A1", 1.0), ("A2", 1.0)], "hose": [("A3", 1.0)]}
    assert batches == [2, 1]  # three distinct queries, two per _msearch
    scores = bm25_scores(t, "cat", {"usb": ["A2", "A3"], "hose": ["A3"]})
    assert scores == {"usb": {"A2": 1.0, "A3": 0.0}, "hose": {"A3": 1.0}}
    with pytest.raises(DistilRankError, match="BM25 search for 'boom' in 'cat' failed"):
        bm25_top_k(t, "cat", ["usb", "boom"], 5)


def test_search_and_mget_sources(t):
    index_catalogue(t, "cat", PRODUCTS, DocumentText())
    body = {"query": {"multi_match": {"query": "garden"}}, "size": 3}
    assert [h["_id"] for h in index_api.search(t, "cat", body)["hits"]["hits"]] == ["A3"]
    docs = index_api.mget_sources(t, "cat", ["A2", "nope"], source_includes="title")
    assert [(d["_id"], d["found"]) for d in docs] == [("A2", True), ("nope", False)]
    assert index_api.count(t, "cat") == 3


class Health(BaseHTTPRequestHandler):
    """``GET _cluster/health``: ``yellow`` with HTTP 408 (OpenSearch's answer when ``wait_for_status`` timed out) for
    the first ``yellow_answers`` requests, then ``green``; records each path and query."""

    yellow_answers = 2
    seen: list[str] = []

    def do_GET(self):
        cls = type(self)
        cls.seen.append(self.path)
        yellow = len(cls.seen) <= cls.yellow_answers
        timed_out = yellow and "wait_for_status=green" in self.path
        reply_json(self, 408 if timed_out else 200, {"status": "yellow" if yellow else "green", "timed_out": timed_out})

    def log_message(self, *args):
        pass


def test_wait_for_status_polls_through_408_until_the_status_is_met():
    Health.seen, Health.yellow_answers = [], 2
    with transport_to(Health) as t:
        seconds, health = index_api.wait_for_status(t, "green", index="products", timeout=60)
        assert health["status"] == "green" and seconds >= 0
        assert len(Health.seen) >= 3 and all(p.startswith("/_cluster/health/products?") for p in Health.seen)
        assert "wait_for_status=green" in Health.seen[0] and "timeout=10s" in Health.seen[0]
        Health.seen, Health.yellow_answers = [], 5
        _, health = index_api.wait_for_status(t, "yellow", timeout=60)
        assert health["status"] == "yellow" and len(Health.seen) == 1, Health.seen  # yellow is met at once
        assert Health.seen[0].startswith("/_cluster/health?")


def test_wait_for_status_names_the_index_and_status_after_the_timeout():
    Health.seen, Health.yellow_answers = [], 10**6
    with transport_to(Health) as t, pytest.raises(DistilRankError, match="products did not reach green within 0.5 s"):
        index_api.wait_for_status(t, "green", index="products", timeout=0.5)
