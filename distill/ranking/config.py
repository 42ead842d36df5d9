"""Configuration of a product-search distillation run (``task = "ranking"`` in the TOML file).

One dataclass per TOML table; the TOML file, these dataclasses and
``distilrank run`` are the same settings (no second copy).  Relative paths are
resolved against the file's directory; errors are ``ConfigError(file, field)``.
See ``configs/esci.toml`` for a complete, commented example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distilrank.catalogue import DocumentText
from distilrank.data_root import config_path
from distilrank.distill.config import (
    RECIPE_LOSSES,
    TARGET_STACKS,
    DistillConfig,
    StudentSection,
    TeacherConfig,
    check_optional_counts,
    check_teachers,
)
from distilrank.errors import ConfigError
from distilrank.settings import apply_overrides, build_settings, read_toml, setting


@dataclass
class CatalogueSection:
    """``[catalogue]``: the product catalogue, a JSONL/Parquet file with ``id_field`` and text fields."""

    path: str = setting("", help="catalogue file (JSONL or Parquet; relative to the config file, ${DISTILRANK_DATA} expanded)")
    id_field: str = setting("asin", help="the product id field (the index's _id, the judgments' doc id)")
    limit: int | None = setting(None, help="read only the first N products (none: every product)")


@dataclass
class JudgmentSection:
    """``[judgments]``: human judgments and how the judged queries are split (always by query, never by pair).

    ``eval_fraction`` of the judged queries is held out for the final tables; of the rest, ``stack_fraction`` is kept
    from the cross-encoder teachers to fit the stacker, so the stacker is fitted on queries no teacher trained on.
    ``folds`` > 1 adds a query-grouped k-fold comparison over every judged query."""

    path: str = setting("", help="judgments file: JSONL, Search Relevance Workbench judgments, or CSV query,docid,rating")
    grade_map: str = setting("", help="'' = grades as in the file | esci: the SRW scale 100/10/1/0 read as E/S/C/I = 3/2/1/0",
                             choices=("", "esci"))
    eval_fraction: float = setting(0.3, help="share of the judged queries held out for the final tables (no folds)")
    stack_fraction: float = setting(0.25, help="share of the remaining queries kept from the cross-encoder teachers to fit the stacker")
    folds: int = setting(0, help="query-grouped k-fold cross-validation over every judged query (0: off, else >= 2)")
    limit_queries: int | None = setting(None, help="use only the first N judged queries (none: all; small CI runs use fewer)")


@dataclass
class IndexSection:
    """``[index]``: the OpenSearch index of the catalogue (the BM25 first pass); the connection is ``[opensearch]``."""

    name: str = setting("distilrank-catalogue", help="index name")
    bm25_fields: list[str] = setting(factory=lambda: ["title^2", "brand", "color", "bullet_points", "description"],
                                     help="fields of the multi-field BM25 first pass, with boosts")
    recreate: bool = setting(False, help="delete and re-index the catalogue even when the index exists")


@dataclass
class TransferSection:
    """``[transfer]``: the unlabeled transfer set, real queries x the products the reranker will see: each query's
    BM25 top ``bm25_k``, then its ``dense_k`` nearest products by the first bi-encoder teacher not already there, then
    ``random_per_query`` random products."""

    queries: str = setting("", help="file of unlabeled real queries (one per line, or JSONL with a query field)")
    max_queries: int | None = setting(None, help="use only the first N queries (none: all)")
    bm25_k: int = setting(50, help="BM25 hits per query in the transfer pool (as deep as the rerank depth)")
    random_per_query: int = setting(5, help="random products per query added to its pool")
    dense_k: int = setting(0, help="the first bi-encoder teacher's top k products per query (cosine over the catalogue) added to "
                                   "its pool when BM25 did not retrieve them: related products without the query's words")
    scored_pairs: int | None = setting(None, help="cap on the pairs the expensive (cross-encoder) teachers score, whole queries "
                                                  "in a seeded order (none: all)")


@dataclass
class RankingEval:
    """``[eval]``: the metric cut-off and the depth of the rerank setting."""

    k: int = setting(10, help="cut-off of nDCG@k")
    rerank_depth: int = setting(100, help="how many BM25 hits the rerank setting reorders (and the cross-encoders' negatives come from)")


@dataclass
class ServeSection:
    """``[serve]``: serve each fold's student and cross-encoder teacher on the cluster and A/B them against BM25.

    After the folds, every fold's distilled student and cross-encoder teacher are exported (parity-checked),
    registered in model group ``group`` (idempotent by sha256), deployed, smoke-tested and promoted behind aliases
    ``{alias_prefix}-fold-{i}-student`` / ``-teacher`` whose rerank pipelines reorder the BM25 top ``depth``; the
    fold's test queries run through bm25 / student / teacher and all folds are merged into one A/B report."""

    enabled: bool = setting(False, help="run the serving A/B (needs a cross-encoder teacher)")
    depth: int = setting(100, help="BM25 hits the rerank pipelines reorder")
    group: str = setting("distilrank-esci", help="ML Commons model group of the fold models")
    alias_prefix: str = setting("esci", help="prefix of the per-fold aliases")
    out: str = setting("ab", help="report directory under out_dir")
    undeploy_after: bool = setting(True, help="undeploy a fold's two models once its queries are done (bounded node memory)")


@dataclass
class RankingRunConfig:
    """A product-search run: ``task = "ranking"`` and one table per section."""

    task: str = setting("ranking", help="ranking: the product-search run (configs/esci.toml, configs/demo.toml)", choices=("ranking",))
    out_dir: str = setting("runs/ranking", help="directory of every stage's outputs (resumable)")
    seed: int = setting(0, help="random seed of the folds, pools and students")
    catalogue: CatalogueSection = setting(factory=CatalogueSection, help="[catalogue]: the products")
    document: DocumentText = setting(factory=DocumentText, help="[document]: the text every model sees and the index field the rescorer reads")
    judgments: JudgmentSection = setting(factory=JudgmentSection, help="[judgments]: human judgments and the query split")
    index: IndexSection = setting(factory=IndexSection, help="[index]: the BM25 first pass")
    transfer: TransferSection = setting(factory=TransferSection, help="[transfer]: unlabeled queries x products")
    teachers: list[TeacherConfig] = setting(factory=list, help="[[teachers]]: one table per teacher")
    distill: DistillConfig = setting(factory=DistillConfig, help="[distill]: candidate recipes and the students a run trains")
    student: StudentSection = setting(factory=StudentSection, help="[student]: the student's architecture and training")
    eval: RankingEval = setting(factory=RankingEval, help="[eval]: metric cut-off and rerank depth")
    serve: ServeSection = setting(factory=ServeSection, help="[serve]: the ML Commons A/B of each fold's models")
    source: str = setting("<memory>", help="the file this config was read from (not a TOML field)")


def load_ranking_config(path: str | Path, raw: dict | None = None, overrides: Sequence[str] = ()) -> RankingRunConfig:
    """Read and validate a ranking TOML file (``[opensearch]`` is read separately by
    :func:`distilrank.plugin.connection.load_connection`), with ``overrides`` (``"dotted.key=VALUE"``) set first;
    relative paths are made absolute."""
    path = Path(path)
    raw = apply_overrides(read_toml(path) if raw is None else raw, overrides, path)
    raw.pop("opensearch", None)
    for key, where in (("loss", "losses"), ("match_features", "match_features")):
        if key in raw.get("student", {}):
            raise ConfigError(path, f"student.{key}", f"a ranking run chooses it among [distill] {where} (the candidates): set it there")
    cfg: RankingRunConfig = build_settings(RankingRunConfig, raw, str(path), "", task="ranking")
    cfg.source = str(path)
    base = path.resolve().parent
    cfg.out_dir = str((base / cfg.out_dir).resolve())
    for where, section, attr in (("catalogue.path", cfg.catalogue, "path"), ("judgments.path", cfg.judgments, "path"),
                                 ("transfer.queries", cfg.transfer, "queries")):
        value = getattr(section, attr)
        if not value:
            raise ConfigError(path, where, "missing")
        resolved = config_path(base, value)
        if not resolved.exists():
            raise ConfigError(path, where, f"{resolved} does not exist")
        setattr(section, attr, str(resolved))
    cfg.document.validate(f"{path}: [document]")
    j = cfg.judgments
    if not 0 < j.eval_fraction < 1:
        raise ConfigError(path, "judgments.eval_fraction", f"must be in (0, 1), got {j.eval_fraction}")
    if not 0 < j.stack_fraction < 1:
        raise ConfigError(path, "judgments.stack_fraction", f"must be in (0, 1), got {j.stack_fraction}")
    if j.folds == 1 or j.folds < 0:
        raise ConfigError(path, "judgments.folds", f"must be 0 (off) or >= 2, got {j.folds}")
    if j.grade_map not in ("", "esci"):
        raise ConfigError(path, "judgments.grade_map", f"must be '' or 'esci', got {j.grade_map!r}")
    names = check_teachers(path, cfg.teachers, base)
    d = cfg.distill
    for i, target in enumerate(d.targets):
        if target not in TARGET_STACKS and target not in names:
            raise ConfigError(path, f"distill.targets[{i}]", f"must be one of {TARGET_STACKS} or a teacher name {names}, got {target!r}")
    for i, loss in enumerate(d.losses):
        if loss not in RECIPE_LOSSES:
            raise ConfigError(path, f"distill.losses[{i}]", f"must be one of {RECIPE_LOSSES}, got {loss!r}")
    for name in ("targets", "losses", "match_features"):
        if not getattr(d, name):
            raise ConfigError(path, f"distill.{name}", "needs at least one candidate")
    if cfg.student.init == "teacher" and not any(t.kind == "bi-encoder" for t in cfg.teachers):
        raise ConfigError(path, "student.init", "init = \"teacher\" starts the word embeddings from a bi-encoder teacher's "
                          "embedding of each word; add a [[teachers]] table with kind = \"bi-encoder\" or set init = \"random\"")
    if d.inner_folds < 2:
        raise ConfigError(path, "distill.inner_folds", f"must be >= 2, got {d.inner_folds}")
    if not cfg.distill.temperature > 0:
        raise ConfigError(path, "distill.temperature", f"must be > 0, got {cfg.distill.temperature}")
    check_optional_counts(path, {"catalogue.limit": cfg.catalogue.limit, "judgments.limit_queries": j.limit_queries,
                                 "transfer.max_queries": cfg.transfer.max_queries,
                                 "transfer.scored_pairs": cfg.transfer.scored_pairs, "distill.choice_pairs": cfg.distill.choice_pairs,
                                 "student.soup": cfg.student.soup,
                                 **{f"teachers[{i}].num_layers": t.num_layers for i, t in enumerate(cfg.teachers)}})
    for name in ("bm25_k", "random_per_query", "dense_k"):
        if getattr(cfg.transfer, name) < 0:
            raise ConfigError(path, f"transfer.{name}", "must be >= 0")
    if cfg.transfer.bm25_k + cfg.transfer.random_per_query + cfg.transfer.dense_k < 1:
        raise ConfigError(path, "transfer.bm25_k", "bm25_k + dense_k + random_per_query must be >= 1")
    if cfg.transfer.dense_k and not any(t.kind == "bi-encoder" for t in cfg.teachers):
        raise ConfigError(path, "transfer.dense_k", "the dense neighbours come from the first bi-encoder teacher: add a "
                          "[[teachers]] table with kind = \"bi-encoder\" or set dense_k = 0")
    sv = cfg.serve
    if sv.depth < cfg.eval.k:
        raise ConfigError(path, "serve.depth", f"must be >= eval.k ({cfg.eval.k}): the rerank pipeline reorders the BM25 top depth, got {sv.depth}")
    for name in ("group", "alias_prefix", "out"):
        if not getattr(sv, name).strip():
            raise ConfigError(path, f"serve.{name}", "must be a non-empty string")
    if sv.enabled and not any(t.kind == "cross-encoder" for t in cfg.teachers):
        raise ConfigError(path, "serve.enabled", "serving compares the student with the cross-encoder teacher: "
                                                 "add a [[teachers]] table with kind = \"cross-encoder\"")
    return cfg
