"""The product-search pipeline's folds on a small real sample (no cluster: BM25 pools and scores are given): every
fitted choice (stacker, recipe, blends) sees only the fold's training queries, and the report pools the folds."""

import json
from pathlib import Path

import numpy as np
import pytest

from distilrank.catalogue import id_pairs, judged_pairs, read_catalogue
from distilrank.distill.data.folds import query_folds
from distilrank.distill.ranking import pipeline
from distilrank.distill.ranking.config import load_ranking_config
from distilrank.distill.ranking.data import RankingData
from distilrank.distill.ranking.pools import read_queries, weak_negatives
from distilrank.distill.ranking.report import summarize, write_ranking_report
from distilrank.distill.variants import StudentVariant
from distilrank.judgments import load_judgments
from tests.paths import REPO_ROOT as ROOT

SAMPLE = ROOT / "examples" / "esci-small"

TOML = f"""
task = "ranking"
out_dir = "out"
[catalogue]
path = "{SAMPLE}/products.jsonl"
[document]
fields = ["title", "brand", "color"]
[judgments]
path = "{SAMPLE}/judgments.jsonl"
folds = 3
[transfer]
queries = "{SAMPLE}/queries-unlabeled.tsv"
[[teachers]]
name = "bm25"
kind = "bm25"
[distill]
targets = ["bm25"]
losses = ["listwise", "bce"]
match_features = [true]
inner_folds = 2
temperature = 1.0
scale_curve = [100]
seeds = [1]
[student]
vocab_size = 3000
bigram_buckets = 1009
embedding_dim = 8
hidden = [8]
epochs = 1
gold_epochs = 1
batch_size = 64
[eval]
k = 10
rerank_depth = 15
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> RankingData:
    d = tmp_path_factory.mktemp("ranking")
    (d / "run.toml").write_text(TOML)
    cfg = load_ranking_config(d / "run.toml")
    rng = np.random.default_rng(0)
    catalogue = read_catalogue(cfg.catalogue.path)
    j = load_judgments(cfg.judgments.path)
    queries = list(j.queries)[:9]
    grades = {q: dict(j[q]) for q in queries}
    ids = catalogue.ids
    judged_pool = {q: (list(grades[q])[:10] + [ids[i] for i in rng.choice(len(ids), 5, replace=False)])[:15] for q in queries}
    transfer_pool = {q: [ids[i] for i in rng.choice(len(ids), 8, replace=False)] for q in read_queries(cfg.transfer.queries)[:40]}
    judged = judged_pairs(grades, catalogue, cfg.document, queries=queries)
    tables = {"judged": judged, "rerank": id_pairs(judged_pool, catalogue, cfg.document), "transfer": id_pairs(transfer_pool, catalogue, cfg.document)}
    # a first pass that knows a little about the grades
    bm25 = {"judged": (judged.labels + rng.normal(0, 1.5, len(judged))).astype(np.float32) + 5,
            "rerank": np.concatenate([np.sort(rng.gamma(2, 2, len(judged_pool[q])))[::-1] for q in queries]).astype(np.float32),
            "transfer": rng.gamma(2, 2, len(tables["transfer"])).astype(np.float32)}
    negatives = weak_negatives(judged_pool, grades, catalogue, n_bm25=3, n_random=2, seed=0)
    return RankingData(cfg, catalogue, queries, grades, judged_pool, transfer_pool, tables, bm25, negatives, {}, {})


def test_folds_fit_only_on_training_queries_and_pool_into_the_report(data, monkeypatch):
    seen: dict[str, list[set]] = {"blend": [], "inner": [], "stacker": []}
    fit_blend, inner_cv, fit_stacker = pipeline.fit_blend, pipeline.inner_cv_blend_score, pipeline._fit_stacker
    monkeypatch.setattr(pipeline, "fit_blend", lambda pool, f, m, g, queries, k: seen["blend"].append(set(queries)) or fit_blend(pool, f, m, g, queries, k))
    monkeypatch.setattr(pipeline, "inner_cv_blend_score",
                        lambda pool, f, m, g, queries, **kw: seen["inner"].append(set(queries)) or inner_cv(pool, f, m, g, queries, **kw))
    monkeypatch.setattr(pipeline, "_fit_stacker", lambda d, s, queries: seen["stacker"].append(set(queries)) or fit_stacker(d, s, queries))
    out = Path(data.cfg.out_dir)
    shared = pipeline.shared_teacher_scores(data, out, progress=False)
    trainer = pipeline.student_trainer(data, out, progress=False, log=lambda m: None)
    results = []
    for fold in query_folds(data.queries, 3, seed=0):
        for v in seen.values():
            v.clear()
        fdir = out / "folds" / f"fold-{fold.index}"
        results.append(pipeline.run_fold(data, trainer, shared, fold, fdir, evaluate=True, progress=False, log=lambda m: None))
        fitted = [s for v in seen.values() for s in v]
        assert fitted and all(s <= set(fold.train) for s in fitted), "a fitted choice saw a test query"
        assert len(seen["inner"]) == 2  # both candidate recipes, each scored by nested inner folds
        split = json.loads((fdir / "split.json").read_text())
        assert set(split["test"]) == set(fold.test) and not set(split["stacker"]) & set(fold.test)
        choice = json.loads((fdir / "choice.json").read_text())
        assert len(choice["variants"]) == 2 and all(v["inner_score"] is not None for v in choice["variants"])
        assert (fdir / "students" / "distilled").resolve().is_dir()
        systems = set(results[-1]["eval"]["rerank"])
        assert {"BM25", "student", "student + BM25", "teacher stacked + BM25", "gold-only student"} <= systems
        assert all(set(per_q) == set(fold.test) for per_q in results[-1]["eval"]["judged"].values())
    recipe = StudentVariant.from_dict(results[0]["recipe"])
    seeds = pipeline.seed_spread(data, trainer, shared, query_folds(data.queries, 3, seed=0), recipe, log=lambda m: None)
    assert [r["seed"] for r in seeds["rerank"]["per_seed"]] == [0, 1] and seeds["rerank"]["min"] <= seeds["rerank"]["mean"]
    summary = summarize(data.cfg, "3 folds", results, None, data, seconds=1.0, seeds=seeds)
    by = {r["system"]: r for r in summary["tables"]["rerank"]}
    assert by["BM25"]["queries"] == len(data.queries) and "p_value" in by["student + BM25"]
    assert summary["headline"][1].startswith("judged: BM25 + student")
    paths = write_ranking_report(summary, out / "report")
    rec = json.loads(paths["results"].read_text())
    assert set(rec["settings"]) == {"judged", "rerank", "condensed"} and rec["machine"]["cpus"]
    assert "BM25 + student" in paths["md"].read_text() and "Seed spread" in paths["md"].read_text()


def test_teacher_init_starts_every_student_of_a_fold_from_the_bi_encoders_word_vectors(data, tiny_bert, tmp_path):
    """``[student] init = "teacher"``: the distilled and the gold-only students start from the first bi-encoder's
    word vectors (``students/init-<teacher>-<dim>.npy``), and their records say so (a random-init student is not reused)."""
    import dataclasses

    import torch

    from distilrank.distill.config import TeacherConfig
    from distilrank.distill.ranking.students import word_init
    from distilrank.distill.teacher.biencoder import BiEncoder
    from distilrank.distill.teacher.embedding_store import EmbeddingStore

    bi = TeacherConfig(name="bi", kind="bi-encoder", base=str(tiny_bert), max_length=32)
    cfg = dataclasses.replace(data.cfg, out_dir=str(tmp_path / "out"), teachers=[bi, *data.cfg.teachers],
                              student=dataclasses.replace(data.cfg.student, init="teacher"),
                              distill=dataclasses.replace(data.cfg.distill, targets=["bi"], losses=["listwise"], scale_curve=[],
                                                          seeds=[]))
    store = EmbeddingStore(tmp_path / "emb", lambda: BiEncoder(tiny_bert, max_length=32, batch_size=8, device="cpu"),
                           identity={"model": "tiny", "max_length": 32})
    run = dataclasses.replace(data, cfg=cfg, embeddings={"bi": store})
    out = Path(cfg.out_dir)
    shared = pipeline.shared_teacher_scores(run, out, progress=False)
    trainer = pipeline.student_trainer(run, out, progress=False, log=lambda m: None)
    what, rows = trainer.init()
    dim = cfg.student.embedding_dim
    assert what == "bi word vectors" and (out / "students" / f"init-bi-{dim}.npy").is_file()
    np.testing.assert_array_equal(rows, word_init(store, trainer.tokenizer, dim, out / "students" / f"init-bi-{dim}.npy", seed=0))
    fold = query_folds(run.queries, 3, seed=0)[0]
    result = pipeline.run_fold(run, trainer, shared, fold, out / "folds" / "fold-0", evaluate=True, progress=False, log=lambda m: None)
    for sdir in (Path(result["student"]), out / "folds" / "fold-0" / "students" / "gold-only"):
        assert json.loads((sdir / "settings.json").read_text())["variant"]["init"] == "bi word vectors"
        weights = torch.load(sdir / "student.pt", map_location="cpu", weights_only=False)
        emb = next(v for k, v in (weights.get("state_dict", weights)).items() if k.endswith("embedding.weight"))
        # one short epoch moves the rows a little: they still follow the start (a random start would correlate ~0)
        assert np.corrcoef(emb[: len(rows)].numpy().ravel(), rows.ravel())[0, 1] > 0.9
