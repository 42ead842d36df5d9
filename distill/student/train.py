"""Train the student on (soft) targets, fast on a CPU.

Contract: with ``loss = "bce"`` (default) ``targets`` are probabilities in
``[0, 1]`` (soft targets ``sigmoid(z / T)`` from :mod:`distilrank.distill.targets`, or gold
binary labels for the baseline) and the loss is binary cross-entropy with
logits; with ``loss = "mse"`` ``targets`` are teacher *logits* and the loss is
the mean squared error between student and teacher logits (Tang et al. 2019,
"logit regression"); with ``loss = "listwise"`` ``targets`` are teacher scores
already divided by the temperature, rows are grouped by query (``groups``), each
batch holds whole queries and the loss is the cross-entropy between the
teacher's and the student's softmax over each query's rows (ListNet-style
ranking distillation: only the order inside a query is learned, the logit's
offset per query is free).  Each epoch ends with
a validation loss on a held-out slice of the training rows, a checkpoint of the
full training state (``state.pt``, for ``resume``) and the best weights so far
(``student.pt``).

With ``soup = n > 1`` (a model soup, Wortsman et al. 2022) ``n`` members train from
the same start (the same seeded MLP and embedding initialisation, the same
validation slice), each visiting the rows in its own order, in
``out_dir/soup/member-<i>/`` (each resumable; member 0 is exactly the student
``soup = 1`` trains); ``student.pt`` is the mean of the members' best weights:
one student of the same size and latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm import tqdm

from distilrank.atomic import atomic_open, atomic_path, write_json
from distilrank.distill.config import StudentSection
from distilrank.distill.data.batching import shuffled_bucketed_batches
from distilrank.distill.student.model import StudentConfig, StudentModel
from distilrank.distill.student.optim import RowSparseAdam
from distilrank.distill.student.predict import batch_tensors, predict_encoded
from distilrank.distill.student.store import save_student
from distilrank.distill.student.tokenizer import EncodedPairs, encode_pairs
from distilrank.pairs import Pairs
from distilrank.progress import bar_disabled

#: the settings that fix a student's optimisation trajectory: a saved state resumes only when these are unchanged
TRAJECTORY = ("batch_size", "lr", "embedding_lr", "weight_decay", "val_fraction", "seed", "threads", "bucket_batches", "lr_decay", "loss")


def optimisation_settings(config: StudentSection) -> dict:
    """The optimisation settings of ``config`` (``epochs`` and :data:`TRAJECTORY`): a run's record of how a student
    was trained, beside its architecture (:class:`~distilrank.distill.student.model.StudentConfig`)."""
    return {k: getattr(config, k) for k in ("epochs", "soup", *TRAJECTORY)}


@dataclass
class StudentTrainResult:
    """What :func:`fit_student` reports (also written to ``result.json``)."""

    out_dir: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    pairs_per_second: float
    seconds: float
    history: list[dict] = field(default_factory=list)


LOSSES = ("bce", "mse", "listwise")


def _group_logsumexp(x: torch.Tensor, group: torch.Tensor, n: int) -> torch.Tensor:
    """``logsumexp`` of ``x`` within each of ``n`` groups; float ``[n]``."""
    m = torch.full((n,), -torch.inf, dtype=x.dtype).scatter_reduce(0, group, x.detach(), "amax", include_self=True)
    return m + torch.log(torch.zeros(n, dtype=x.dtype).index_add(0, group, torch.exp(x - m[group])))


def listwise_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over queries of ``-sum_d softmax(teacher)_d * log softmax(student)_d``.

    ``logits`` float ``[R]``; ``target`` float ``[R, 2]``: column 0 the teacher score (already over ``T``), column 1
    the row's query index inside the batch (0 .. n-1)."""
    group = target[:, 1].long()
    n = int(group.max()) + 1
    t = target[:, 0]
    p = torch.exp(t - _group_logsumexp(t, group, n)[group])
    logp = logits - _group_logsumexp(logits, group, n)[group]
    return -(p * logp).sum() / n


def _loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(logits, target)
    if kind == "listwise":
        return listwise_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def _train_step(
    model: StudentModel, batch: tuple[torch.Tensor, ...], target: torch.Tensor, dense_opt: torch.optim.Optimizer, row_opt: RowSparseAdam,
    loss_kind: str = "bce",
) -> float:
    ids, weights = model.ngrams(*batch)
    rows, inverse = torch.unique(ids, return_inverse=True)
    row_emb = model.embedding.weight.detach().index_select(0, rows).requires_grad_()
    logits = model.head(torch.bmm(weights, F.embedding(inverse, row_emb)), model.match(*batch)).squeeze(1)
    loss = _loss(logits, target, loss_kind)
    dense_opt.zero_grad(set_to_none=True)
    loss.backward()
    dense_opt.step()
    row_opt.step(rows, row_emb.grad)
    return float(loss.detach())


def _eval_loss(logits: np.ndarray, targets: np.ndarray, kind: str) -> float:
    return float(_loss(torch.from_numpy(logits), torch.from_numpy(targets), kind))


def _validate_targets(targets: np.ndarray, loss: str, where: str) -> None:
    """ValueError naming ``where`` when ``targets`` do not fit the ``loss`` contract (see the module doc)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss == "bce" and not np.all((targets >= 0) & (targets <= 1)):
        raise ValueError(f"targets for {where} must be probabilities in [0, 1] for loss='bce' (use distilrank.distill.targets.soft_targets on logits)")
    if not np.all(np.isfinite(targets)):
        raise ValueError(f"targets for {where} contain non-finite values")


class InMemoryRows:
    """Training rows held in memory: a random ``val_fraction`` of the rows (none under 50 rows) is the
    validation slice; each epoch visits the others in length-bucketed, shuffled batches."""

    def __init__(self, enc: EncodedPairs, targets: np.ndarray, config: StudentSection, rng: np.random.Generator):
        self.enc, self.targets, self.config = enc, targets, config
        perm = rng.permutation(len(enc))
        n_val = int(len(enc) * config.val_fraction) if len(enc) >= 50 else 0
        self.val_idx, self.train_idx = np.sort(perm[:n_val]), perm[n_val:]
        self.target_t = torch.from_numpy(targets)
        self.n_rows, self.n_train, self.n_val = len(enc), len(self.train_idx), n_val

    def n_batches(self) -> int:
        return -(-self.n_train // self.config.batch_size)

    def batches(self, rng: np.random.Generator) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """``((input_ids, attention_mask, token_type_ids), targets)`` of one epoch's batches."""
        cfg = self.config
        for sel in shuffled_bucketed_batches(self.train_idx, self.enc.lengths, cfg.batch_size, cfg.batch_size * cfg.bucket_batches, rng):
            yield batch_tensors(self.enc, sel), self.target_t[sel]

    def validation(self, model: StudentModel) -> tuple[np.ndarray, np.ndarray]:
        """Student logits and targets of the validation rows."""
        return predict_encoded(model, self.enc, self.val_idx), self.targets[self.val_idx]


class GroupedRows:
    """Training rows grouped by query for the listwise loss: a random ``val_fraction`` of the *queries* (none under 50
    queries) is the validation slice; each epoch visits the other queries in a shuffled order, whole queries per batch
    (about ``batch_size`` rows).  Targets of a batch are ``[R, 2]``: the teacher score and the query index in the batch."""

    def __init__(self, enc: EncodedPairs, targets: np.ndarray, groups: np.ndarray, config: StudentSection,
                 rng: np.random.Generator):
        self.enc, self.targets, self.config = enc, targets, config
        order = np.argsort(groups, kind="stable")
        cuts = np.flatnonzero(np.diff(groups[order])) + 1
        members = np.split(order, cuts)
        perm = rng.permutation(len(members))
        n_val = int(len(members) * config.val_fraction) if len(members) >= 50 else 0
        self.val_groups = [members[i] for i in perm[:n_val]]
        self.train_groups = [members[i] for i in perm[n_val:]]
        self.n_rows = len(enc)
        self.n_val = sum(map(len, self.val_groups))
        self.n_train = self.n_rows - self.n_val

    def _packed(self, groups: list[np.ndarray]) -> tuple[np.ndarray, torch.Tensor]:
        sel = np.concatenate(groups)
        gid = np.concatenate([np.full(len(g), i, np.float32) for i, g in enumerate(groups)])
        return sel, torch.from_numpy(np.stack([self.targets[sel], gid], axis=1))

    def n_batches(self) -> int:
        return -(-self.n_train // self.config.batch_size)

    def batches(self, rng: np.random.Generator) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        batch: list[np.ndarray] = []
        rows = 0
        for i in rng.permutation(len(self.train_groups)):
            batch.append(self.train_groups[i])
            rows += len(self.train_groups[i])
            if rows >= self.config.batch_size:
                sel, target = self._packed(batch)
                yield batch_tensors(self.enc, sel), target
                batch, rows = [], 0
        if batch:
            sel, target = self._packed(batch)
            yield batch_tensors(self.enc, sel), target

    def validation(self, model: StudentModel) -> tuple[np.ndarray, np.ndarray]:
        sel, target = self._packed(self.val_groups)
        return predict_encoded(model, self.enc, sel), target.numpy()


class TrainRows(Protocol):
    """What the epoch loop needs from a row source (:class:`InMemoryRows`, :class:`distilrank.distill.student.stream.StreamedRows`)."""

    n_rows: int
    n_train: int
    n_val: int

    def n_batches(self) -> int: ...

    def batches(self, rng: np.random.Generator) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]: ...

    def validation(self, model: StudentModel) -> tuple[np.ndarray, np.ndarray]: ...


def _build_model(model_config: StudentConfig, init_embeddings: np.ndarray | None) -> StudentModel:
    model = StudentModel(model_config)
    if init_embeddings is not None:
        init = torch.as_tensor(np.asarray(init_embeddings, dtype=np.float32))
        if init.ndim != 2 or init.shape[1] != model_config.embedding_dim or init.shape[0] > model_config.vocab_size:
            raise ValueError(f"init_embeddings shape {tuple(init.shape)} does not fit vocab {model_config.vocab_size} x dim {model_config.embedding_dim}")
        with torch.no_grad():
            model.embedding.weight[: init.shape[0]] = init
    return model


def _optimizers(model: StudentModel, config: StudentSection) -> tuple[torch.optim.Optimizer, RowSparseAdam]:
    decay = [p for p in model.dense_parameters() if p.ndim > 1]
    no_decay = [p for p in model.dense_parameters() if p.ndim <= 1]
    dense_opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr
    )
    return dense_opt, RowSparseAdam(model.embedding.weight.data, lr=config.embedding_lr)


@dataclass
class _Progress:
    """Where training stands: the next epoch to run, the best validation loss so far and the epoch records."""

    start_epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)


def _restore(state_path: Path, run_settings: dict, model: StudentModel, dense_opt: torch.optim.Optimizer, row_opt: RowSparseAdam) -> _Progress:
    """Load ``state.pt`` into the model and optimisers; ValueError when it was saved with other settings."""
    state = torch.load(state_path, weights_only=True)
    if state.get("settings") != run_settings:
        raise ValueError(f"{state_path}: saved by a run with other settings ({state.get('settings')}); "
                         f"this run: {run_settings}. Delete the directory or pass resume=False")
    model.load_state_dict(state["model"])
    dense_opt.load_state_dict(state["dense_opt"])
    row_opt.load_state_dict(state["row_opt"])
    torch.set_rng_state(state["torch_rng"])
    return _Progress(state["epoch"] + 1, state["best_loss"], state["best_epoch"], state["history"])


def _run_epoch(model: StudentModel, rows: TrainRows, opts: tuple[torch.optim.Optimizer, RowSparseAdam], config: StudentSection,
               epoch: int, rng: np.random.Generator, progress: bool | None) -> tuple[float, float]:
    """One pass over the training rows at this epoch's learning rates; returns ``(running loss, seconds)``."""
    dense_opt, row_opt = opts
    model.train()
    scale = config.lr_decay**epoch
    for group in dense_opt.param_groups:
        group["lr"] = config.lr * scale
    row_opt.lr = config.embedding_lr * scale
    bar = tqdm(rows.batches(rng), total=rows.n_batches(), desc=f"student epoch {epoch + 1}/{config.epochs}", unit="batch",
               disable=bar_disabled(progress))
    t0, running = time.perf_counter(), 0.0
    for i, (tensors, target) in enumerate(bar):
        loss = _train_step(model, tensors, target, dense_opt, row_opt, config.loss)
        running = loss if i == 0 else 0.98 * running + 0.02 * loss
        if i % 20 == 0:
            bar.set_postfix(loss=f"{running:.4f}")
    bar.close()
    return running, time.perf_counter() - t0


def _save_epoch(out: Path, model: StudentModel, tokenizer: Tokenizer, opts: tuple, prog: _Progress, epoch: int, improved: bool,
                run_settings: dict, config: StudentSection, metadata: dict | None) -> None:
    """The best weights (when ``improved``), the resumable state and the training log after ``epoch``."""
    if improved:
        save_student(model, tokenizer, out, metadata={**(metadata or {}), "train_config": optimisation_settings(config), "best_epoch": prog.best_epoch})
    with atomic_path(out / "state.pt") as tmp:
        torch.save({"model": model.state_dict(), "dense_opt": opts[0].state_dict(), "row_opt": opts[1].state_dict(),
                    "epoch": epoch, "best_loss": prog.best_loss, "best_epoch": prog.best_epoch, "history": prog.history,
                    "torch_rng": torch.get_rng_state(), "settings": run_settings}, tmp)
    with atomic_open(out / "train_log.jsonl") as fh:
        fh.writelines(json.dumps(h) + "\n" for h in prog.history)


def _fit(rows: TrainRows, model: StudentModel, tokenizer: Tokenizer, out: Path, config: StudentSection, *, rng: np.random.Generator,
         run_settings: dict, resume: bool, progress: bool | None, metadata: dict | None,
         on_epoch: Callable[[dict], None] | None, member: int = 0) -> StudentTrainResult:
    """The epoch loop shared by every row source: train, validate, checkpoint; resumes from ``state.pt`` (``member``:
    the soup member, so that a resumed member keeps a data order of its own)."""
    opts = _optimizers(model, config)
    prog = _Progress()
    if resume and (out / "state.pt").exists():
        prog = _restore(out / "state.pt", run_settings, model, *opts)
        rng = np.random.default_rng([config.seed, prog.start_epoch] + ([member] if member else []))
    t_start, seen, train_seconds = time.perf_counter(), 0, 0.0
    for epoch in range(prog.start_epoch, config.epochs):
        running, epoch_seconds = _run_epoch(model, rows, opts, config, epoch, rng, progress)
        train_seconds += epoch_seconds
        seen += rows.n_train
        val_loss = _eval_loss(*rows.validation(model), config.loss) if rows.n_val else running
        record = {"epoch": epoch + 1, "train_loss": running, "val_loss": val_loss, "seconds": epoch_seconds,
                  "pairs_per_second": rows.n_train / epoch_seconds}
        prog.history.append(record)
        if on_epoch is not None:
            on_epoch({**record, "epochs": config.epochs})
        improved = val_loss < prog.best_loss
        if improved:
            prog.best_loss, prog.best_epoch = val_loss, epoch + 1
        _save_epoch(out, model, tokenizer, opts, prog, epoch, improved, run_settings, config, metadata)
    result = StudentTrainResult(
        out_dir=str(out), epochs_run=len(prog.history), best_epoch=prog.best_epoch, best_val_loss=prog.best_loss,
        pairs_per_second=seen / train_seconds if train_seconds else float("nan"),
        seconds=time.perf_counter() - t_start, history=prog.history,
    )
    write_json(out / "result.json", asdict(result))
    return result


def soup_tag(record: dict) -> str:
    """``" (soup member 2/3)"`` for an epoch record of a soup member, ``""`` otherwise (for progress lines)."""
    return f" (soup member {record['soup_member'] + 1}/{record['soup']})" if "soup_member" in record else ""


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same keys and shapes (ValueError naming a key that differs)."""
    if not states:
        raise ValueError("no state dicts to average")
    keys = list(states[0])
    for i, st in enumerate(states[1:], 1):
        if list(st) != keys or any(st[k].shape != states[0][k].shape for k in keys):
            other = sorted(set(st) ^ set(keys))
            bad = other[0] if other else next((k for k in keys if st[k].shape != states[0][k].shape), "the order of the keys")
            raise ValueError(f"state dict {i} does not match the first one (at {bad})")
    return {k: torch.stack([st[k].float() for st in states]).mean(0).to(states[0][k].dtype) for k in keys}


def _fit_soup(rows: TrainRows, build: Callable[[], StudentModel], tokenizer: Tokenizer, out: Path, config: StudentSection, *,
              rng: np.random.Generator, run_settings: dict, resume: bool, progress: bool | None, metadata: dict | None,
              on_epoch: Callable[[dict], None] | None) -> StudentTrainResult:
    """``config.soup`` members from one start (``build()`` after seeding torch with ``config.seed``), member ``i > 0``
    with the data order ``default_rng([seed, i])``; ``student.pt`` = the mean of their best weights (module doc)."""
    from distilrank.distill.student.store import load_student

    if config.soup < 1:
        raise ValueError(f"soup must be >= 1 (1: a single student), got {config.soup}")
    if config.soup == 1:
        torch.manual_seed(config.seed)
        return _fit(rows, build(), tokenizer, out, config, rng=rng, run_settings=run_settings, resume=resume,
                    progress=progress, metadata=metadata, on_epoch=on_epoch)
    t0, members = time.perf_counter(), []
    for i in range(config.soup):
        torch.manual_seed(config.seed)
        model = build()
        tell = None if on_epoch is None else (lambda r, i=i: on_epoch({**r, "soup_member": i, "soup": config.soup}))
        members.append(_fit(rows, model, tokenizer, out / "soup" / f"member-{i}", config,
                            rng=rng if i == 0 else np.random.default_rng([config.seed, i]), run_settings=run_settings,
                            resume=resume, progress=progress, metadata=metadata, on_epoch=tell, member=i))
    soup = build()
    soup.load_state_dict(average_state_dicts([load_student(m.out_dir).model.state_dict() for m in members]))
    val_loss = _eval_loss(*rows.validation(soup), config.loss) if rows.n_val else float("nan")
    soup_meta = {"members": config.soup, "member_val_loss": [m.best_val_loss for m in members], "val_loss": val_loss}
    save_student(soup, tokenizer, out, metadata={**(metadata or {}), "train_config": optimisation_settings(config), "soup": soup_meta})
    history = [{"soup_member": i, **h} for i, m in enumerate(members) for h in m.history]
    result = StudentTrainResult(out_dir=str(out), epochs_run=sum(m.epochs_run for m in members), best_epoch=-1, best_val_loss=val_loss,
                                pairs_per_second=float(np.mean([m.pairs_per_second for m in members])),
                                seconds=time.perf_counter() - t0, history=history)
    with atomic_open(out / "train_log.jsonl") as fh:
        fh.writelines(json.dumps(h) + "\n" for h in history)
    write_json(out / "result.json", asdict(result))
    return result


def _run_settings(model_config: StudentConfig, config: StudentSection, n_rows: int, **extra) -> dict:
    """What a resumed state must match (more epochs may be asked for: training continues)."""
    return {"model": model_config.to_dict(), "train": {k: getattr(config, k) for k in TRAJECTORY}, "rows": n_rows, **extra}


def fit_student(
    pairs: Pairs,
    targets: np.ndarray,
    tokenizer: Tokenizer,
    out_dir: str | Path,
    *,
    model_config: StudentConfig | None = None,
    config: StudentSection | None = None,
    resume: bool = True,
    progress: bool | None = None,
    metadata: dict | None = None,
    init_embeddings: np.ndarray | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    groups: np.ndarray | None = None,
) -> StudentTrainResult:
    """Train a student on ``pairs`` with probability ``targets`` ``[N]`` and save it to ``out_dir``.

    ``out_dir`` receives ``tokenizer.json``, ``student_config.json``,
    ``student.pt`` (best weights by validation loss), ``state.pt`` (resumable
    state after the last finished epoch), ``train_log.jsonl`` and ``result.json``.
    With ``resume`` and a ``state.pt`` present, training continues after the
    last finished epoch.  ``init_embeddings`` ``[V', D]`` (``V' <= vocab_size``) replaces the random
    start of the first ``V'`` embedding rows (the unigram rows; see :mod:`distilrank.distill.student.embedding_init`).
    ``on_epoch(record)`` receives each epoch's ``train_log.jsonl`` record (for a line per epoch off a terminal).
    ``groups`` int ``[N]`` (the query of each row) is required by, and only used with, ``loss = "listwise"``.
    For transfer sets larger than memory see :func:`distilrank.distill.student.stream.train_student_streamed`.
    """
    config = config or StudentSection()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = np.asarray(targets, dtype=np.float32)
    if targets.shape != (len(pairs),):
        raise ValueError(f"targets shape {targets.shape} does not match {len(pairs)} pairs from {pairs.source}")
    if len(pairs) == 0:
        raise ValueError(f"no training pairs in {pairs.source}")
    _validate_targets(targets, config.loss, pairs.source)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model_config = model_config or StudentConfig(vocab_size=tokenizer.get_vocab_size())
    enc = encode_pairs(tokenizer, pairs.queries, pairs.texts)
    if config.loss == "listwise":
        if groups is None or len(groups) != len(pairs):
            raise ValueError(f"loss='listwise' needs groups (the query index of each of the {len(pairs)} rows of {pairs.source})")
        rows: TrainRows = GroupedRows(enc, targets, np.asarray(groups), config, rng)
    else:
        rows = InMemoryRows(enc, targets, config, rng)
    return _fit_soup(rows, lambda: _build_model(model_config, init_embeddings), tokenizer, out, config, rng=rng,
                     run_settings=_run_settings(model_config, config, len(pairs)), resume=resume, progress=progress,
                     metadata=metadata, on_epoch=on_epoch)
