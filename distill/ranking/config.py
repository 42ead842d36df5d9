"""Configuration of a product-search distillation run (``task = "ranking"`` in the TOML file).

One dataclass per TOML table; the TOML file, these dataclasses and
``distilrank run`` are the same settings (no second copy).  Relative paths are
resolved against the file's directory; errors are ``ConfigError(file, field)``.
See ``configs/esci.toml`` for a complete, commented example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distilrank.catalogue import DocumentText
from distilrank.distill.config import MINILM_PACKAGE, StudentSection, check_optional_counts, check_teachers
from distilrank.errors import ConfigError
from distilrank.settings import build_settings, read_toml

TEACHER_KINDS = ("cross-encoder", "bi-encoder", "bm25")


@dataclass
class CatalogueSection:
    """The product catalogue: a JSONL/Parquet file with ``id_field`` and text fields."""

    path: str = ""
    id_field: str = "asin"
    limit: int | None = None  # None (omitted) = every product


@dataclass
class JudgmentSection:
    """Human judgments and how the judged queries are split (always by query, never by pair).

    ``eval_fraction`` of the judged queries is held out for the final tables; of the rest,
    ``stack_fraction`` is kept from the cross-encoder teachers to fit the stacker, so the
    stacker is fitted on queries no teacher trained on.  ``folds`` > 1 adds a query-grouped
    k-fold comparison of BM25, the teachers and the stacker over every judged query.
    """

    path: str = ""
    grade_map: str = ""  # "" = grades as in the file; "esci" = SRW 100/10/1/0 -> 3/2/1/0
    eval_fraction: float = 0.3
    stack_fraction: float = 0.25
    folds: int = 0
    limit_queries: int | None = None  # None (omitted) = every judged query (small CI runs use fewer)


@dataclass
class IndexSection:
    """The OpenSearch index of the catalogue (BM25 first pass); the connection is ``[opensearch]``."""

    name: str = "distilrank-catalogue"
    bm25_fields: list[str] = field(default_factory=lambda: ["title^2", "brand", "color", "bullet_points", "description"])
    recreate: bool = False


@dataclass
class TransferSection:
    """The unlabeled transfer set: real queries x the products the reranker will see.

    Each query gets its BM25 top ``bm25_k`` from the index plus ``random_per_query`` random
    products.  ``max_queries`` caps the queries (``None``, the field omitted: all); ``scored_pairs`` caps the
    pairs the expensive teachers score (``None``: all), taking whole queries in a seeded order.
    """

    queries: str = ""
    max_queries: int | None = None
    bm25_k: int = 50
    random_per_query: int = 5
    scored_pairs: int | None = None


@dataclass
class RankingTeacher:
    """One teacher.  ``kind = "cross-encoder"`` is fine-tuned on the training queries' judgments plus
    negatives: ``bm25_negatives`` unjudged products from each query's BM25 top ``eval.rerank_depth`` and
    ``random_negatives`` random products (label 0).  ``kind = "bi-encoder"`` is used zero-shot
    (cosine of mean-pooled embeddings); ``kind = "bm25"`` is the index's BM25 score (a first-pass signal for the stacker)."""

    name: str = ""
    kind: str = "cross-encoder"
    base: str = MINILM_PACKAGE
    num_layers: int | None = None  # None (omitted) = every layer of base
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 64
    bm25_negatives: int = 15
    random_negatives: int = 5
    mixed_precision: str = "no"
    score_batch_size: int = 128
    seed: int = 0


TARGET_STACKS = ("stack-equal", "stack")
RECIPE_LOSSES = ("listwise", "bce")


@dataclass
class RankingDistill:
    """How students are distilled and which recipe ships (see :mod:`distilrank.distill.ranking.students`).

    The candidate recipes are every combination of ``targets`` (a teacher name; ``stack-equal``: all teachers
    z-scored within each query's pool, equal weights; ``stack``: the same with non-negative weights fitted on the fold's
    judged training queries), ``losses`` (``listwise`` | ``bce``) and ``match_features``.  With more than one candidate,
    each is trained on the first ``choice_pairs`` transfer pairs (whole queries) and scored by nested choice on the
    training queries (``inner_folds``: the BM25 blend is fitted on the other inner folds); the best (ties: the simpler)
    is trained on the whole transfer set.  ``temperature`` divides the within-pool z-scored target.
    ``scale_curve`` adds the chosen recipe at smaller sizes; ``seeds`` retrains it at full size with other seeds (the
    spread); ``gold_student`` adds the baseline trained on the judgments alone; ``final_student`` the recipe chosen on
    every judged query, with its blend, to ship (``out_dir/final``).
    """

    targets: list[str] = field(default_factory=lambda: ["stack-equal"])
    losses: list[str] = field(default_factory=lambda: ["listwise"])
    match_features: list[bool] = field(default_factory=lambda: [True])
    temperature: float = 1.0
    choice_pairs: int | None = None
    inner_folds: int = 4
    scale_curve: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    gold_student: bool = True
    final_student: bool = True


@dataclass
class RankingEval:
    """``rerank_depth``: how many BM25 hits the rerank setting reorders; ``k``: the metric cut-off."""

    k: int = 10
    rerank_depth: int = 100


@dataclass
class ServeSection:
    """Serve each fold's student and cross-encoder teacher on the cluster and A/B them against BM25 there.

    With ``enabled``, after the folds: every fold's distilled student and cross-encoder teacher are exported
    (ONNX zip, parity-checked), registered in model group ``group`` (idempotent by sha256), deployed,
    smoke-tested and promoted behind aliases ``{alias_prefix}-fold-{i}-student`` / ``-teacher`` whose rerank
    pipelines reorder the BM25 top ``depth`` on ``document.index_field``.  The fold's test queries then run
    through the arms bm25 / student / teacher; all folds are merged into one A/B report in
    ``out_dir/<out>/`` (report.json + report.html), with each arm's latency.  ``undeploy_after`` undeploys a
    fold's two models once its queries are done (bounded node memory).
    """

    enabled: bool = False
    depth: int = 100
    group: str = "distilrank-esci"
    alias_prefix: str = "esci"
    out: str = "ab"
    undeploy_after: bool = True


@dataclass
class RankingRunConfig:
    task: str = "ranking"
    out_dir: str = "runs/ranking"
    seed: int = 0
    catalogue: CatalogueSection = field(default_factory=CatalogueSection)
    document: DocumentText = field(default_factory=DocumentText)
    judgments: JudgmentSection = field(default_factory=JudgmentSection)
    index: IndexSection = field(default_factory=IndexSection)
    transfer: TransferSection = field(default_factory=TransferSection)
    teachers: list[RankingTeacher] = field(default_factory=list)
    distill: RankingDistill = field(default_factory=RankingDistill)
    student: StudentSection = field(default_factory=StudentSection)
    eval: RankingEval = field(default_factory=RankingEval)
    serve: ServeSection = field(default_factory=ServeSection)
    source: str = "<memory>"


def load_ranking_config(path: str | Path, raw: dict | None = None) -> RankingRunConfig:
    """Read and validate a ranking TOML file (``[opensearch]`` is read separately by
    :func:`distilrank.plugin.connection.load_connection`); relative paths are made absolute."""
    path = Path(path)
    raw = dict(read_toml(path) if raw is None else raw)
    raw.pop("opensearch", None)
    for key, where in (("loss", "losses"), ("match_features", "match_features")):
        if key in raw.get("student", {}):
            raise ConfigError(path, f"student.{key}", f"a ranking run chooses it among [distill] {where} (the candidates): set it there")
    cfg: RankingRunConfig = build_settings(RankingRunConfig, raw, str(path), "")
    cfg.source = str(path)
    base = path.resolve().parent
    cfg.out_dir = str((base / cfg.out_dir).resolve())
    for where, section, attr in (("catalogue.path", cfg.catalogue, "path"), ("judgments.path", cfg.judgments, "path"),
                                 ("transfer.queries", cfg.transfer, "queries")):
        value = getattr(section, attr)
        if not value:
            raise ConfigError(path, where, "missing")
        resolved = (base / value).resolve()
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
    for i, t in enumerate(cfg.teachers):
        if t.kind not in TEACHER_KINDS:
            raise ConfigError(path, f"teachers[{i}].kind", f"must be one of {TEACHER_KINDS}, got {t.kind!r}")
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
    if cfg.student.init != "random":
        raise ConfigError(path, "student.init", "ranking runs start the student's embeddings at random (init = \"random\")")
    if d.inner_folds < 2:
        raise ConfigError(path, "distill.inner_folds", f"must be >= 2, got {d.inner_folds}")
    if not cfg.distill.temperature > 0:
        raise ConfigError(path, "distill.temperature", f"must be > 0, got {cfg.distill.temperature}")
    check_optional_counts(path, {"catalogue.limit": cfg.catalogue.limit, "judgments.limit_queries": j.limit_queries,
                                 "transfer.max_queries": cfg.transfer.max_queries,
                                 "transfer.scored_pairs": cfg.transfer.scored_pairs, "distill.choice_pairs": cfg.distill.choice_pairs,
                                 **{f"teachers[{i}].num_layers": t.num_layers for i, t in enumerate(cfg.teachers)}})
    for name in ("bm25_k", "random_per_query"):
        if getattr(cfg.transfer, name) < 0:
            raise ConfigError(path, f"transfer.{name}", "must be >= 0")
    if cfg.transfer.bm25_k + cfg.transfer.random_per_query < 1:
        raise ConfigError(path, "transfer.bm25_k", "bm25_k + random_per_query must be >= 1")
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
