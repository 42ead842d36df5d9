"""The transfer pool's dense neighbours: a real bi-encoder's nearest catalogue products, in the run's document text."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from distilrank.catalogue import Catalogue  # noqa: E402
from distilrank.distill.config import TeacherConfig  # noqa: E402
from distilrank.distill.ranking.config import load_ranking_config  # noqa: E402
from distilrank.distill.ranking.data import dense_neighbours  # noqa: E402
from distilrank.distill.ranking.teachers import embedding_store  # noqa: E402
from tests.distill.ranking.test_ranking_config import BASE  # noqa: E402

TITLES = ["red wool socks", "blue cotton socks", "red lamp", "blue mug", "good great movie", "awful boring film",
          "nice cotton shoes", "poor wool lamp"]


def test_dense_neighbours_rank_the_catalogue_by_the_teachers_cosine(tmp_path, tiny_bert):
    (tmp_path / "run.toml").write_text(BASE)
    cfg = load_ranking_config(tmp_path / "run.toml")  # the run's document text: title brand color
    ids = [f"P{i}" for i in range(len(TITLES))]
    catalogue = Catalogue(ids, [{"asin": d, "title": t, "brand": "acme" if i % 2 else "", "color": ""}
                                for i, (d, t) in enumerate(zip(ids, TITLES))], "mem")
    store = embedding_store(TeacherConfig(name="bi", kind="bi-encoder", base=str(tiny_bert), max_length=32), tmp_path)
    texts = catalogue.texts(cfg.document)
    queries = [texts[5], "red socks", "cotton"]  # the first is one product's exact text
    lines: list[str] = []
    near = dense_neighbours(store, catalogue, cfg.document, queries, 3, progress=False, log=lines.append)

    assert list(near) == queries and all(len(v) == 3 and len(set(v)) == 3 for v in near.values())
    assert near[texts[5]][0] == "P5"  # identical text: cosine 1, first
    qv, dv = store.vectors(queries), store.vectors(texts)
    for q, v in zip(queries, qv):
        cos = dv @ v
        assert [cos[ids.index(d)] for d in near[q]] == sorted(cos, reverse=True)[:3]
    assert len(lines) == 1 and "3 nearest products" in lines[0] and "3 queries" in lines[0]
