"""The ``distill`` stage API: one function per stage, the same calls ``distilrank`` subcommands and
:func:`distilrank.distill.pipeline.run_pipeline` make.

::

    read_source -> build_transfer_set -> score_with_teachers -> soft_targets -> train_student
                                                                             -> evaluate_student -> export_student

Settings are the config dataclasses of :mod:`distilrank.distill.config` (the TOML sections and the CLI flags are their
fields): :class:`~distilrank.sources.DataSource`, :class:`~distilrank.distill.config.AugmentConfig`,
:class:`~distilrank.distill.config.TeacherConfig`, :class:`~distilrank.distill.config.StudentSection`.  Scores are raw teacher logits
(float32, one per row); targets are probabilities in ``[0, 1]`` (``loss = "bce"``) or logits (``"mse"``).
Every stage writes its outputs atomically and resumes from them (see each function).  Heavy imports (torch,
transformers) happen inside the functions, so ``import distill`` stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrank.distill.config import AugmentConfig, DistillConfig, StudentSection, TeacherConfig, resolve_base_model
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.store import Student
    from distilrank.distill.targets import Stacker
    from distilrank.distill.teacher.engine_config import EngineConfig
    from distilrank.distill.teacher.finetune import TeacherTrainResult

PathLike = str | Path


# --- data ---------------------------------------------------------------------


@dataclass
class AugmentedTransfer:
    """The transfer set: the unlabeled rows (``pairs[:unlabeled]``), then their augmented variants."""

    pairs: Pairs
    unlabeled: int

    @property
    def augmented(self) -> Pairs:
        """Only the augmented rows."""
        return self.pairs.select(np.arange(self.unlabeled, len(self.pairs)))


def build_transfer_set(sources: Sequence[Pairs], augment: AugmentConfig | None = None, *, seed: int = 0) -> AugmentedTransfer:
    """Concatenate ``sources`` without their labels and, when ``augment.enabled``, append augmented variants
    (masking, word swaps, n-gram sampling; :func:`distilrank.distill.augment.augment`); ``augment=None`` adds none."""
    from distilrank.distill.augment import augment as perturb

    if not sources:
        raise DistilRankError("build_transfer_set: no source rows")
    base = Pairs.concat([s.without_labels() for s in sources], source="transfer")
    pieces = [base]
    if augment is not None and augment.enabled:
        a = augment
        pieces.append(perturb(base, n_per_example=a.n_per_example, p_mask=a.p_mask, p_swap=a.p_swap, p_ngram=a.p_ngram,
                              seed=seed, max_rows=a.max_rows))
    return AugmentedTransfer(Pairs.concat(pieces, source="transfer+augmented"), len(base))


# --- teachers -----------------------------------------------------------------


def train_teacher(train: Pairs, out_dir: PathLike, settings: TeacherConfig | None = None, *, dev: Pairs | None = None,
                  resume: bool = True, progress: bool | None = None) -> TeacherTrainResult:
    """Fine-tune ``settings.base`` as a one-logit cross-encoder on ``train``; the best checkpoint on ``dev`` (else the
    last weights) is ``out_dir/best``; resumes from ``out_dir/state`` when the settings match."""
    from distilrank.distill.teacher.finetune import finetune_teacher

    s = settings or TeacherConfig()
    return finetune_teacher(resolve_base_model(s.base), train, dev, out_dir, config=s, resume=resume, progress=progress)


@dataclass
class TeacherScores:
    """Logits ``[T, N]`` of teachers ``names`` (in that order) for N rows, and each teacher's scoring report.
    ``logits`` is ``None`` while a sharded scoring has shards left (``reports[name]["complete"]`` is False)."""

    names: list[str]
    logits: np.ndarray | None
    reports: dict[str, dict]


def score_with_teachers(teachers: Mapping[str, PathLike], pairs: Pairs, out_dirs: Mapping[str, PathLike],
                        settings: Mapping[str, TeacherConfig] | TeacherConfig | None = None, *, shard: tuple[int, int] = (0, 1),
                        chunk_size: int = 4096, resume: bool = True, progress: bool | None = None,
                        engine: EngineConfig | None = None) -> TeacherScores:
    """Score ``pairs`` with each teacher checkpoint (``name -> directory``) into ``out_dirs[name]`` in resumable
    chunks (:func:`distilrank.distill.teacher.scoring.score_transfer_set`; ``shard = (i, n)`` scores the i-th of n interleaved
    shards).  ``settings`` (one for all, or per name) gives ``max_length``, ``score_batch_size``, precision, device.
    ``engine`` other than ``local`` (``[engine]``, e.g. Ray Data) scores each teacher there instead
    (:func:`distilrank.distill.teacher.engines.score_with_engine`; ``shard`` and ``chunk_size`` are the local engine's)."""
    from distilrank.distill.teacher.engines import score_with_engine
    from distilrank.distill.teacher.scoring import load_logits, score_transfer_set

    reports, logits = {}, []
    for name, checkpoint in teachers.items():
        s = (settings.get(name) if isinstance(settings, Mapping) else settings) or TeacherConfig()
        if engine is not None and engine.engine != "local":
            reports[name] = score_with_engine(engine, checkpoint, pairs, out_dirs[name], batch_size=s.score_batch_size,
                                              max_length=s.max_length, device=s.device, precision=s.mixed_precision,
                                              progress=progress)
        else:
            reports[name] = score_transfer_set(checkpoint, pairs, out_dirs[name], shard=shard, chunk_size=chunk_size,
                                               batch_size=s.score_batch_size, max_length=s.max_length, resume=resume,
                                               device=s.device, precision=s.mixed_precision, progress=progress)
        if reports[name]["complete"]:
            logits.append(load_logits(out_dirs[name]))
    complete = len(logits) == len(reports)
    return TeacherScores(list(teachers), np.stack(logits) if complete and logits else None, reports)


def load_teacher_scores(dirs: Sequence[PathLike], n_rows: int | None = None) -> np.ndarray:
    """Logits ``[T, N]`` from score directories; :class:`DistilRankError` when a directory has not ``n_rows`` rows."""
    from distilrank.distill.teacher.scoring import load_logits

    z = np.stack([load_logits(d) for d in dirs])
    if n_rows is not None and z.shape[1] != n_rows:
        raise DistilRankError(f"{dirs[0]}: {z.shape[1]} logits but the data has {n_rows} rows")
    return z


# --- targets ------------------------------------------------------------------


def combine_teachers(scores: np.ndarray, stacker: Stacker | None = None) -> np.ndarray:
    """One logit ``[N]`` from teacher logits ``[T, N]`` (or ``[N]``, returned as is): the stacker's calibrated logit,
    else the mean."""
    from distilrank.distill.targets import average_logits

    z = np.asarray(scores, dtype=np.float32)
    if z.ndim == 1:
        return z
    return stacker.apply(z) if stacker is not None else average_logits(z)


def soft_targets(scores: np.ndarray, stacker: Stacker | None = None, temperature: float = DistillConfig.temperature) -> np.ndarray:
    """Probability targets ``sigmoid(z / temperature)`` ``[N]`` in ``[0, 1]`` of the combined teacher logit ``z``
    (:func:`combine_teachers`).  For ``[N]`` scores and no stacker this is :func:`distilrank.distill.targets.soft_targets`."""
    from distilrank.distill.targets import soft_targets as probabilities

    return probabilities(combine_teachers(scores, stacker), temperature)


# --- student ------------------------------------------------------------------


def student_configs(section: StudentSection, vocab_size: int, *, seed: int = 0) -> tuple[StudentConfig, StudentSection]:
    """The architecture a ``[student]`` section describes for a vocabulary of ``vocab_size`` tokens (saved with the
    student as ``student_config.json``), and the section with ``seed`` (what :mod:`distilrank.distill.student.train`
    trains with)."""
    from distilrank.distill.student.model import StudentConfig

    model = StudentConfig(vocab_size=vocab_size, bigram_buckets=section.bigram_buckets, embedding_dim=section.embedding_dim,
                          hidden=list(section.hidden), interactions=section.interactions, dropout=section.dropout,
                          trigrams=section.trigrams, match_features=section.match_features)
    return model, replace(section, seed=seed)


def student_record(section: StudentSection, vocab_size: int, *, seed: int, trained_on: Mapping[str, Any]) -> dict:
    """What a student directory records in ``settings.json``: ``trained_on`` (what its rows and targets are, e.g. a
    variant or a recipe), its architecture and its optimisation settings; :func:`reuse_student` compares it."""
    from distilrank.distill.student.train import optimisation_settings

    model, train = student_configs(section, vocab_size, seed=seed)
    return json.loads(json.dumps({"variant": dict(trained_on), "model": model.to_dict(), "train": optimisation_settings(train)}))


def _record_defaults() -> dict[str, dict]:
    """Field defaults of the record's sections: a setting added after a student was trained reads as its default."""
    import dataclasses

    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.train import optimisation_settings

    model = {f.name: f.default for f in dataclasses.fields(StudentConfig) if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps({"variant": {}, "model": model, "train": optimisation_settings(StudentSection())}))


def reuse_student(out_dir: PathLike, record: Mapping[str, Any]) -> bool:
    """True when ``out_dir`` holds a finished student trained with exactly ``record`` (:func:`student_record`);
    False when it holds none, or an unfinished one with the same record (which then resumes).  Raises
    :class:`~distilrank.errors.ConfigError` naming the settings that differ when the directory was trained with
    others (a changed config must never silently reuse an old student)."""
    from distilrank.errors import ConfigError

    sdir = Path(out_dir)
    path = sdir / "settings.json"
    if path.exists():
        old, defaults = json.loads(path.read_text()), _record_defaults()
        diff = sorted(f"{section}.{k}" for section in record for k in record[section]
                      if old.get(section, {}).get(k, defaults.get(section, {}).get(k, "<missing>")) != record[section][k])
        if diff:
            raise ConfigError(sdir, ", ".join(diff), "this student was trained with other settings; delete the directory or use another out_dir")
    elif (sdir / "state.pt").exists() or (sdir / "result.json").exists():
        raise ConfigError(sdir, "settings.json", "missing: cannot tell which settings this student was trained with")
    return (sdir / "result.json").exists()


def gold_section(section: StudentSection) -> StudentSection:
    """The section a gold-label-only student trains with: BCE, ``gold_epochs`` (when given) with the learning-rate
    decay stretched to them (the same total decay from first to last epoch as the other students)."""
    s = replace(section, loss="bce")
    if section.gold_epochs is not None and section.gold_epochs != section.epochs:
        s = replace(s, epochs=section.gold_epochs,
                    lr_decay=section.lr_decay ** ((section.epochs - 1) / max(section.gold_epochs - 1, 1)))
    return s


def student_tokenizer(texts: Sequence[str], settings: StudentSection | None = None, *, path: PathLike | None = None) -> Tokenizer:
    """The word-level student tokenizer built from ``texts`` (``vocab_size``, ``min_count``, ``max_length`` of
    ``settings``); with ``path``, loaded from there when it exists, else built and saved there."""
    from distilrank.distill.student.tokenizer import build_student_tokenizer, load_tokenizer, save_tokenizer

    if path is not None and Path(path).exists():
        return load_tokenizer(path)
    s = settings or StudentSection()
    tok = build_student_tokenizer(texts, vocab_size=s.vocab_size, min_count=s.min_count, max_length=s.max_length)
    if path is not None:
        save_tokenizer(tok, path)
    return tok


def train_student(pairs: Pairs, targets: np.ndarray, out_dir: PathLike, settings: StudentSection | None = None, *,
                  tokenizer: Tokenizer | PathLike | None = None, seed: int | None = None, init_embeddings: np.ndarray | None = None,
                  resume: bool = True, progress: bool | None = None, metadata: dict | None = None,
                  on_epoch: Callable[[dict], None] | None = None, groups: np.ndarray | None = None,
                  trained_on: Mapping[str, Any] | None = None) -> Student:
    """Train a student on ``pairs`` with ``targets`` ``[N]`` (probabilities for ``loss = "bce"``, logits for
    ``"mse"``), save it to ``out_dir`` (weights, tokenizer, config, ``result.json``; resumable from ``state.pt``)
    and return it loaded.  ``tokenizer``: a tokenizer or its ``tokenizer.json`` (default: built from ``pairs``).
    ``loss = "listwise"`` takes teacher scores over ``T`` as ``targets`` and ``groups`` int ``[N]``, each row's query
    (default: rows with the same query string form one group).  ``seed`` overrides ``settings.seed``.

    With ``trained_on`` (what the rows and targets are: a run's variant or recipe), ``out_dir/settings.json``
    records it with the settings (:func:`student_record`): a finished student with the same record is loaded, not
    retrained, and one with another record is an error (:func:`reuse_student`)."""
    from distilrank.distill.student.store import load_student
    from distilrank.distill.student.tokenizer import load_tokenizer
    from distilrank.distill.student.train import fit_student

    s = settings or StudentSection()
    if tokenizer is None:
        tokenizer = student_tokenizer(pairs.queries + pairs.texts, s)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    seed = s.seed if seed is None else seed
    model_cfg, train_cfg = student_configs(s, tokenizer.get_vocab_size(), seed=seed)
    if trained_on is not None:
        record = student_record(s, tokenizer.get_vocab_size(), seed=seed, trained_on=trained_on)
        if reuse_student(out_dir, record):
            return load_student(out_dir)
        from distilrank.atomic import write_json

        write_json(Path(out_dir) / "settings.json", record)
    if s.loss == "listwise" and groups is None:
        from distilrank.distill.ranking.stacking import group_index

        groups = group_index(pairs.queries)
    fit_student(pairs, targets, tokenizer, out_dir, model_config=model_cfg, config=train_cfg, resume=resume, progress=progress,
        metadata=metadata, init_embeddings=init_embeddings, on_epoch=on_epoch, groups=groups)
    return load_student(out_dir)


def training_report(student_dir: PathLike) -> dict:
    """The ``result.json`` :func:`train_student` wrote (epochs run, best validation loss, pairs/s, history)."""
    path = Path(student_dir) / "result.json"
    if not path.exists():
        raise DistilRankError(f"{student_dir}: no result.json (the student has not finished training)")
    return json.loads(path.read_text())


# --- evaluation and export ----------------------------------------------------


def evaluate_student(student: Student | PathLike | np.ndarray, data: Pairs, *, teacher: np.ndarray | PathLike | None = None,
                     out_dir: PathLike | None = None, title: str | None = None, k: int = 10, **report: Any) -> dict:
    """Accuracy/AUC/calibration (and ranking metrics with queries) of a student on labeled ``data``, against a
    ``teacher`` (its logits ``[N]``, or a checkpoint to score ``data`` with) when given.  ``student``: a loaded
    student, its directory, or its logits ``[N]``.  With ``out_dir`` writes ``eval.json``, ``report.md``,
    ``report.html`` (+ plots; ``report`` goes to :func:`distilrank.distill.evaluation.report.write_report`).
    Returns ``{"result": ..., "report": {kind: path}}``."""
    from distilrank.distill.evaluation.evaluate import evaluate_scores

    z = _logits_of(student, data)
    t = None
    if isinstance(teacher, (str, Path)):
        from distilrank.distill.teacher.model import load_teacher

        t = load_teacher(teacher).score(data)
    elif teacher is not None:
        t = np.asarray(teacher)
    if t is not None and len(t) != len(data):
        raise DistilRankError(f"teacher scores have {len(t)} rows but the data has {len(data)}")
    result = evaluate_scores(data, z, t, k=k)
    paths: dict = {}
    if out_dir is not None:
        from distilrank.distill.evaluation.report import write_report

        paths = write_report(result, out_dir, title=title or "distilrank evaluation", student_logits=z, teacher_logits=t,
                             labels=data.labels, **report)
    return {"result": result, "report": {kind: str(p) for kind, p in paths.items()}}


def _logits_of(student: Student | PathLike | np.ndarray, data: Pairs) -> np.ndarray:
    if isinstance(student, np.ndarray):
        return student
    if isinstance(student, (str, Path)):
        from distilrank.distill.student.store import load_student

        student = load_student(student)
    return student.score(data)


def export_student(student_dir: PathLike, out_dir: PathLike, **options: Any) -> Any:
    """ONNX graph + ``tokenizer.json`` + ML Commons zip + model card of a student directory, after a parity check
    against PyTorch (:func:`distilrank.distill.export.export_student`; ``options``: name, parity_pairs, tolerance, max_length,
    metrics, quantize, quality_pairs).  Returns its ``ExportResult``."""
    from distilrank.distill.export import export_student as export

    return export(student_dir, out_dir, **options)


def result_dict(obj: Any) -> dict:
    """A stage's result as a JSON-ready dict (dataclasses via :func:`dataclasses.asdict`)."""
    return asdict(obj) if hasattr(obj, "__dataclass_fields__") else dict(obj)
