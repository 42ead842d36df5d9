"""A real distilrank student for the integration tests: trained on the vendored Icecat sample, exported with
``distilrank export``'s code path (parity check included) into an ML Commons zip.

Training pairs: for each product a query made of 1-3 words of its own title (label 1) and the same query
against a random other title (label 0), so the student learns query/title matching in a few seconds. The
student's scores differ from BM25's, which the rerank tests rely on.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def products() -> list[dict]:
    """The vendored sample: ``[{"id", "title", "supplier", "short_description"}]``."""
    return [json.loads(line) for line in (DATA / "icecat-sample.jsonl").read_text(encoding="utf-8").splitlines()]


def training_pairs(items: list[dict], seed: int = 0):
    from distilrank.pairs import Pairs

    rng = np.random.default_rng(seed)
    queries, texts, labels = [], [], []
    titles = [p["title"] for p in items]
    for title in titles:
        words = [w for w in title.lower().split() if w.isalpha() and len(w) > 2] or title.lower().split()[:1]
        k = int(rng.integers(1, min(3, len(words)) + 1))
        q = " ".join(rng.choice(words, size=k, replace=False))
        queries += [q, q]
        texts += [title, titles[int(rng.integers(len(titles)))]]
        labels += [1.0, 0.0]
    return Pairs(queries, texts, np.array(labels, np.float32), source="icecat-sample")


@dataclass
class ExportedStudent:
    zip: Path
    sha256: str
    out_dir: Path
    student_dir: Path


def build_icecat_student(work: Path, *, seed: int = 0, name: str = "icecat-student", epochs: int = 2,
                         hidden: tuple[int, ...] = (64, 32), blend=None) -> ExportedStudent:
    """Train and export a small student; different ``seed`` values give different models (and zips). ``blend``
    (``BlendSettings``) goes into the model card, so ``register`` stores it with the model for the rescorer."""
    from distilrank.distill.config import StudentSection
    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.distill.student.train import fit_student

    items = products()
    pairs = training_pairs(items, seed)
    tok = build_student_tokenizer(pairs.queries + pairs.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=4093, embedding_dim=16, hidden=list(hidden))
    student_dir = work / f"{name}-student"
    fit_student(pairs, pairs.labels, tok, student_dir, model_config=cfg,
                  config=StudentSection(epochs=epochs, batch_size=128, seed=seed), progress=False)
    res = export_student(student_dir, work / f"{name}-export", name=name,
                         metrics={"student": {"accuracy": 0.0}, "note": "integration-test student"}, blend=blend)
    return ExportedStudent(Path(res.zip), res.sha256, Path(res.out_dir), student_dir)


@contextmanager
def uploaded_student(t, work: Path, model_id: str, *, seed: int, name: str) -> Iterator[ExportedStudent]:
    """:func:`build_icecat_student` uploaded to the rescorer as ``model_id`` (``POST _plugins/distilrank/models``) for
    the ``with`` block, deleted from every node after it."""
    from distilrank.plugin import rescore

    s = build_icecat_student(work, seed=seed, name=name)
    rescore.upload_model(t, model_id, s.zip)
    try:
        yield s
    finally:
        rescore.delete_model(t, model_id)


def index_products(client, index: str, extra: list[dict] | None = None, *, shards: int = 1) -> int:
    """(Re)create ``index`` (``shards`` primaries, title/supplier/short_description) with the vendored products (+
    ``extra`` documents, each with an ``id``); returns how many documents it holds."""
    if client.indices.exists(index=index):
        client.indices.delete(index=index)
    client.indices.create(index=index, body={
        "settings": {"number_of_shards": shards, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "supplier": {"type": "keyword"},
                                    "short_description": {"type": "text"}}}})
    lines = []
    for p in products() + list(extra or []):
        lines.append(json.dumps({"index": {"_index": index, "_id": p["id"]}}))
        lines.append(json.dumps({k: v for k, v in p.items() if k != "id"}))
    resp = client.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})
    assert not resp["errors"], [i for i in resp["items"] if i["index"].get("error")][:3]
    return client.count(index=index)["count"]
