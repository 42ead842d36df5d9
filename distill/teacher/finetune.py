"""Fine-tune a BERT-family checkpoint as a one-logit cross-encoder teacher.

``AutoModelForSequenceClassification(num_labels=1)`` (a fresh head on a plain
``BertModel`` checkpoint) is trained with binary cross-entropy on the raw
logit.  Targets (see :func:`teacher_targets`): ``binary`` mode uses hard 0/1
targets (graded labels count as positive at half the top grade or above);
``graded`` mode uses soft targets ``label / max_label`` in ``[0, 1]``.

Outputs in ``out_dir``::

    best/                     best checkpoint by dev accuracy (ties: AUC); model + tokenizer
                              + distilrank_teacher.json (max_length, label scale, metrics)
    state/training_state.pt   latest training state (weights, optimizer, scheduler, RNG,
                              step, epoch, position in the epoch), every save_every_steps
    train_log.jsonl           one line per dev evaluation
    result.json               final report (dev history, best metrics, time, examples/s)

A run killed at any moment continues from its last saved state when called
again with ``resume=True``; the batch order of every epoch is a function of
the seed and the RNG state is restored, so the continued run computes what an
uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from distilrank.atomic import atomic_open, write_json
from distilrank.distill.config import TeacherConfig
from distilrank.distill.teacher.checkpoint import load_training_state, recover_model_dir, save_model_dir, save_training_state
from distilrank.distill.teacher.encoding import collate, tokenize_pairs, training_batches
from distilrank.distill.teacher.model import Teacher, autocast_context, pick_device, resolve_precision
from distilrank.errors import ConfigError, DataError, DistilRankError
from distilrank.pairs import Pairs
from distilrank.progress import progress_bar

STATE_FORMAT = 1


# Fields that define the optimisation trajectory: a saved state is only resumed
# when these are unchanged.  ``epochs``/``max_steps`` may change (the linear
# schedule is then recomputed for the new length); device, precision, eval and
# save cadence may change freely.
_TRAJECTORY = ("batch_size", "lr", "weight_decay", "warmup_ratio", "max_length", "seed", "grad_accum", "num_layers",
               "label_mode", "max_label", "max_grad_norm", "bucket_batches")


@dataclass
class TeacherTrainResult:
    """What :func:`finetune_teacher` did.

    ``best``: dev metrics (``accuracy``, ``auc``, ``loss``, ``n``, ``step``,
    ``epoch``) of the checkpoint in ``best_dir`` (``{}`` without dev).
    ``history``: every dev evaluation.  ``initial``: dev metrics before
    training.  ``seconds``: wall time over all (resumed) calls.
    ``examples_per_second``: training throughput of this call
    (forward + backward + optimizer; evaluation and checkpoint writing excluded).
    ``complete``: false when the call stopped early (``stop_after``).
    """

    out_dir: str
    best_dir: str
    steps: int
    best: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    examples_per_second: float = 0.0
    complete: bool = True
    total_steps: int = 0
    resumed_from_step: int = 0
    examples: int = 0
    initial: dict = field(default_factory=dict)
    label_mode: str = "binary"
    max_label: float = 1.0
    device: str = "cpu"
    precision: str = "fp32"
    config: dict = field(default_factory=dict)


# --- labels ---------------------------------------------------------------------

def label_scale(labels: np.ndarray, mode: str = "auto", max_label: float | None = None, source: str = "<train>") -> tuple[str, float]:
    """Resolve ``(label_mode, max_label)`` for gold ``labels`` ``[N]`` (non-negative)."""
    y = np.asarray(labels, dtype=np.float64)
    if y.size and (not np.isfinite(y).all() or y.min() < 0):
        raise DataError(source, None, "teacher labels must be finite and >= 0 (binary 0/1 or graded grades)")
    is_binary = bool(np.isin(y, (0.0, 1.0)).all())
    if mode == "auto":
        mode = "binary" if is_binary else "graded"
    top = float(y.max()) if y.size else 1.0
    return mode, float(max_label) if max_label else max(top, 1.0)


def teacher_targets(labels: np.ndarray, mode: str, max_label: float) -> np.ndarray:
    """BCE targets float32 ``[N]`` in ``[0, 1]``: ``labels / max_label`` (graded) or that ``>= 0.5`` (binary)."""
    y = np.clip(np.asarray(labels, dtype=np.float32) / np.float32(max_label), 0.0, 1.0)
    return y if mode == "graded" else (y >= 0.5).astype(np.float32)


def evaluate_teacher(teacher: Teacher, dev: Pairs, batch_size: int = 128, *, label_mode: str = "auto",
                     max_label: float | None = None) -> dict:
    """Dev metrics: ``accuracy`` (logit > 0 vs target >= 0.5), ``auc``, ``loss`` (BCE on the targets), ``n``."""
    from distilrank.metrics import roc_auc

    if dev.labels is None:
        raise DistilRankError(f"{dev.source}: the dev set needs labels")
    mode, scale = label_scale(dev.labels, label_mode, max_label, dev.source)
    target = teacher_targets(dev.labels, mode, scale)
    logits = teacher.score(dev, batch_size=batch_size)
    loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(target)))
    positive = target >= 0.5
    return {"accuracy": float(np.mean((logits > 0) == positive)) if len(dev) else float("nan"),
            "auc": roc_auc(logits, positive), "loss": loss, "n": len(dev)}


# --- model ----------------------------------------------------------------------

def build_model(base_model: str | Path, num_layers: int | None):
    """One-logit sequence classifier on ``base_model`` (new head), optionally cut to its first ``num_layers`` layers."""
    base = Path(base_model)
    if not (base / "config.json").exists():
        raise ConfigError("teacher", "base", f"{base}: not a local checkpoint directory (no config.json)")
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if num_layers:
        layers = model.base_model.encoder.layer
        if num_layers > len(layers):
            raise ConfigError("teacher", "num_layers", f"{base} has {len(layers)} layers, cannot keep {num_layers}")
        model.base_model.encoder.layer = layers[:num_layers]
        model.config.num_hidden_layers = num_layers
    return model, tokenizer


def _optimizer(model: torch.nn.Module, cfg: TeacherConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _check_resumable(state: dict, cfg: TeacherConfig, fingerprint: str, where: Path) -> None:
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(where, "format", f"training state format {state.get('format')!r} is not {STATE_FORMAT}; restart training")
    if state["data_fingerprint"] != fingerprint:
        raise ConfigError(where, "train", "the saved state was trained on different rows/labels; restart (resume=False / --restart) or use another out_dir")
    for name in _TRAJECTORY:
        old, new = state["config"].get(name), getattr(cfg, name)
        if old != new:
            raise ConfigError(where, name, f"saved state used {old!r}, now {new!r}; restart (resume=False / --restart) or use another out_dir")


# --- training -------------------------------------------------------------------

def _check_inputs(train: Pairs, dev: Pairs | None) -> None:
    if train.labels is None:
        raise DistilRankError(f"{train.source}: teacher fine-tuning needs labels (set label_field)")
    if len(train) == 0:
        raise DistilRankError(f"{train.source}: no training rows")
    if dev is not None and dev.labels is None:
        raise DistilRankError(f"{dev.source}: the dev set needs labels")


def _clear_outputs(out: Path) -> None:
    """``resume=False``: forget every earlier output in ``out`` (state, best checkpoint, log, result)."""
    for p in (out / "state", out / "best"):
        shutil.rmtree(p, ignore_errors=True)
    for p in (out / "result.json", out / "train_log.jsonl"):
        p.unlink(missing_ok=True)


def _new_progress() -> dict:
    """The resumable counters of a run (saved in the training state as ``progress``)."""
    return {"step": 0, "epoch": 0, "batch_pos": 0, "history": [], "best": {}, "initial": {}, "seconds": 0.0,
            "loss_sum": 0.0, "loss_n": 0, "running": None}


class _TeacherRun:
    """One call of :func:`finetune_teacher`: the model, optimizer state and counters, and what each step does."""

    def __init__(self, base_model: str | Path, train: Pairs, dev: Pairs | None, out: Path, cfg: TeacherConfig,
                 *, state: dict | None, fingerprint: str, total_steps: int, steps_per_epoch: int):
        self.base_model, self.dev, self.out, self.cfg = base_model, dev, out, cfg
        self.state_dir, self.best_dir = out / "state", out / "best"
        self.fingerprint, self.total_steps, self.steps_per_epoch = fingerprint, total_steps, steps_per_epoch
        self.mode, self.scale = label_scale(train.labels, cfg.label_mode, cfg.max_label, train.source)
        self.device = pick_device(cfg.device)
        self.amp_dtype = resolve_precision(self.device, cfg.mixed_precision)
        self.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        torch.manual_seed(cfg.seed)  # the new head's initialisation
        self.model, self.tokenizer = build_model(base_model, cfg.num_layers)
        self.model.to(self.device)
        self.enc = tokenize_pairs(self.tokenizer, train, cfg.max_length)
        self.targets = torch.from_numpy(teacher_targets(train.labels, self.mode, self.scale))
        self.optimizer = _optimizer(self.model, cfg)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda")
        self.prog = _new_progress()
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.prog.update(state["progress"])
            _set_rng_state(state["rng"])
        self.resumed_from = self.prog["step"]
        self.call_start, self.seconds_before = time.perf_counter(), self.prog["seconds"]
        self.train_seconds, self.examples = 0.0, 0

    def teacher_meta(self, metrics: dict) -> dict:
        return {"base_model": str(self.base_model), "max_length": self.cfg.max_length, "label_mode": self.mode,
                "max_label": self.scale, "num_layers": self.model.config.num_hidden_layers, "step": self.prog["step"],
                "metrics": metrics}

    def save_state(self) -> None:
        self.prog["seconds"] = self.seconds_before + time.perf_counter() - self.call_start
        save_training_state(self.state_dir, {
            "format": STATE_FORMAT, "config": asdict(self.cfg), "data_fingerprint": self.fingerprint,
            "base_model": str(self.base_model), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": _rng_state(),
            "progress": dict(self.prog)})
        write_json(self.state_dir / "progress.json",
                   {k: self.prog[k] for k in ("step", "epoch", "batch_pos")} | {"total_steps": self.total_steps})

    def dev_metrics(self) -> dict:
        teacher = Teacher(self.model, self.tokenizer, str(self.out), self.cfg.max_length, self.cfg.mixed_precision)
        return evaluate_teacher(teacher, self.dev, self.cfg.eval_batch_size, label_mode=self.mode, max_label=self.scale)

    def evaluate(self) -> None:
        """Dev metrics now, appended to ``train_log.jsonl``; a new best (accuracy, ties: AUC) is saved to ``best/``."""
        prog = self.prog
        metrics = self.dev_metrics()
        record = {"step": prog["step"], "epoch": round(prog["step"] / self.steps_per_epoch, 4), **metrics,
                  "train_loss": prog["loss_sum"] / max(prog["loss_n"], 1), "lr": self.scheduler.get_last_lr()[0]}
        prog["loss_sum"], prog["loss_n"] = 0.0, 0
        prog["history"].append(record)
        with atomic_open(self.out / "train_log.jsonl") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in prog["history"])
        best = prog["best"]
        if not best or (metrics["accuracy"], metrics["auc"]) > (best["accuracy"], best["auc"]):
            prog["best"] = record
            save_model_dir(self.model, self.tokenizer, self.best_dir, self.teacher_meta(record))

    def batches(self) -> list[np.ndarray]:
        cfg = self.cfg
        return training_batches(self.enc.lengths, cfg.batch_size, cfg.bucket_batches, cfg.seed, self.prog["epoch"])

    def optimizer_step(self, group: list[np.ndarray]) -> float:
        """One optimizer step over the micro-batches ``group`` (gradient accumulation); returns the summed loss."""
        t0 = time.perf_counter()
        n_group = sum(len(b) for b in group)
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = 0.0
        for sel in group:
            inputs = {k: v.to(self.device, non_blocking=True) for k, v in collate(self.enc, sel).items()}
            with autocast_context(self.device, self.amp_dtype):
                logits = self.model(**inputs).logits[:, 0]
            loss = F.binary_cross_entropy_with_logits(logits.float(), self.targets[sel].to(self.device), reduction="sum") / n_group
            self.scaler.scale(loss).backward()
            loss_total += float(loss.detach())
        if not math.isfinite(loss_total):
            raise DistilRankError(f"teacher {self.out}: loss is {loss_total} at step {self.prog['step'] + 1}; "
                                  "lower lr or use mixed_precision='no'")
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.train_seconds += time.perf_counter() - t0
        self.examples += n_group
        return loss_total

    def count_step(self, n_batches: int, loss_total: float, epoch_len: int) -> bool:
        """Advance the counters past one step of ``n_batches`` micro-batches; True when it ended the epoch."""
        prog = self.prog
        prog["step"] += 1
        prog["batch_pos"] += n_batches
        prog["loss_sum"] += loss_total
        prog["loss_n"] += 1
        prog["running"] = loss_total if prog["running"] is None else 0.98 * prog["running"] + 0.02 * loss_total
        if prog["batch_pos"] < epoch_len:
            return False
        prog["epoch"] += 1
        prog["batch_pos"] = 0
        return True

    def train_until(self, stop_at: int, progress: bool | None) -> None:
        """Optimizer steps until ``stop_at``, evaluating on dev when due and saving the state when due or at the end."""
        cfg, prog = self.cfg, self.prog
        self.model.train()
        bar = progress_bar(total=self.total_steps, initial=prog["step"], progress=progress, desc=f"teacher {self.out.name}", unit="step")
        try:
            batches = self.batches()
            while prog["step"] < stop_at:
                group = batches[prog["batch_pos"] : prog["batch_pos"] + cfg.grad_accum]
                epoch_end = self.count_step(len(group), self.optimizer_step(group), len(batches))
                if epoch_end:
                    batches = self.batches()
                bar.update(1)
                bar.set_postfix(loss=f"{prog['running']:.4f}", epoch=prog["epoch"])
                last = prog["step"] >= self.total_steps
                due = (cfg.eval_every_steps and prog["step"] % cfg.eval_every_steps == 0) or (not cfg.eval_every_steps and epoch_end)
                evaluated = self.dev is not None and (due or last)
                if evaluated:
                    self.evaluate()
                    self.model.train()
                if evaluated or prog["step"] % cfg.save_every_steps == 0 or prog["step"] >= stop_at:
                    self.save_state()
        finally:
            bar.close()

    def result(self) -> TeacherTrainResult:
        """The call's report; a complete run without dev saves its final weights as ``best/`` and writes ``result.json``."""
        prog = self.prog
        complete = prog["step"] >= self.total_steps
        if complete and self.dev is None:
            save_model_dir(self.model, self.tokenizer, self.best_dir, self.teacher_meta({}))
        result = TeacherTrainResult(
            out_dir=str(self.out), best_dir=str(self.best_dir), steps=prog["step"], best=prog["best"], history=prog["history"],
            seconds=self.seconds_before + time.perf_counter() - self.call_start,
            examples_per_second=self.examples / self.train_seconds if self.train_seconds > 0 else 0.0, complete=complete,
            total_steps=self.total_steps, resumed_from_step=self.resumed_from, examples=self.examples, initial=prog["initial"],
            label_mode=self.mode, max_label=self.scale, device=str(self.device), precision=self.precision, config=asdict(self.cfg))
        if complete:
            write_json(self.out / "result.json", asdict(result))
        return result


def finetune_teacher(
    base_model: str | Path,
    train: Pairs,
    dev: Pairs | None,
    out_dir: str | Path,
    *,
    config: TeacherConfig | None = None,
    resume: bool = True,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> TeacherTrainResult:
    """Fine-tune ``base_model`` (a local checkpoint directory) on labeled ``train`` pairs.

    Evaluates on ``dev`` every epoch or every ``config.eval_every_steps``
    steps and keeps the best checkpoint (dev accuracy, ties: AUC) in
    ``out_dir/best``; without ``dev`` the final weights are saved there.
    With ``resume`` (default) a saved state in ``out_dir/state`` is continued;
    ``resume=False`` deletes earlier outputs in ``out_dir`` and starts over.
    ``stop_after`` ends this call after that many optimizer steps (time-boxed
    or preemptible jobs; the state is saved, call again to continue).
    ``progress``: ``None`` = bar on a terminal (lines elsewhere), ``True`` = always, ``False`` = never.
    """
    cfg = config or TeacherConfig()
    cfg.validate()
    _check_inputs(train, dev)
    out = Path(out_dir)
    if not resume:
        _clear_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    recover_model_dir(out / "best")

    fingerprint = train.digest(labels=True)
    state = load_training_state(out / "state") if resume else None
    if state is not None:
        _check_resumable(state, cfg, fingerprint, out / "state")
    steps_per_epoch = math.ceil(math.ceil(len(train) / cfg.batch_size) / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    if state is not None and state["progress"]["step"] >= total_steps and (out / "result.json").exists():
        return _load_result(out / "result.json")  # finished earlier: nothing to do

    run = _TeacherRun(base_model, train, dev, out, cfg, state=state, fingerprint=fingerprint, total_steps=total_steps,
                      steps_per_epoch=steps_per_epoch)
    if dev is not None and cfg.eval_initial and run.prog["step"] == 0 and not run.prog["initial"]:
        run.prog["initial"] = run.dev_metrics()
    run.train_until(min(total_steps, run.prog["step"] + stop_after) if stop_after else total_steps, progress)
    return run.result()


def _load_result(path: Path) -> TeacherTrainResult:
    raw = json.loads(path.read_text())
    names = {f.name for f in fields(TeacherTrainResult)}
    return TeacherTrainResult(**{k: v for k, v in raw.items() if k in names})
