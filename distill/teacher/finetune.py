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

from distill.atomic import atomic_open, write_json
from distill.data.pairs import Pairs
from distill.errors import ConfigError, DataError, DistilRankError
from distill.progress import progress_bar
from distill.teacher.checkpoint import load_training_state, recover_model_dir, save_model_dir, save_training_state
from distill.teacher.encoding import collate, tokenize_pairs, training_batches
from distill.teacher.model import PRECISIONS, Teacher, autocast_context, pick_device, resolve_precision

LABEL_MODES = ("auto", "binary", "graded")
STATE_FORMAT = 1


@dataclass
class TeacherTrainConfig:
    """Fine-tuning hyper-parameters.

    ``max_steps`` (optimizer steps) overrides ``epochs`` when set.
    ``eval_every_steps=None`` evaluates on dev at the end of every epoch (and
    at the last step).  ``mixed_precision``: ``auto`` = bf16/fp16 autocast on
    CUDA, fp32 on CPU; ``bf16``/``fp16`` force autocast (also on CPU);
    ``no`` = fp32.  ``num_layers`` keeps only the first k encoder layers of
    the base model (a cheaper second teacher).  ``label_mode``: ``binary``,
    ``graded``, or ``auto`` (graded when any label is not 0/1);
    ``max_label`` fixes the graded scale (default: the largest train label).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 0
    eval_every_steps: int | None = None
    mixed_precision: str = "auto"
    device: str = "auto"
    max_steps: int | None = None
    grad_accum: int = 1
    num_layers: int | None = None
    label_mode: str = "auto"
    max_label: float | None = None
    max_grad_norm: float = 1.0
    eval_batch_size: int = 128
    eval_initial: bool = True
    save_every_steps: int = 200
    bucket_batches: int = 20

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        def bad(name: str, problem: str) -> ConfigError:
            return ConfigError("TeacherTrainConfig", name, problem)

        for name in ("epochs", "batch_size", "max_length", "grad_accum", "eval_batch_size", "save_every_steps", "bucket_batches"):
            if int(getattr(self, name)) < 1:
                raise bad(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every_steps", "num_layers"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise bad(name, f"must be >= 1 or None, got {v}")
        if not self.lr > 0:
            raise bad("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise bad("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.mixed_precision not in PRECISIONS:
            raise bad("mixed_precision", f"must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.label_mode not in LABEL_MODES:
            raise bad("label_mode", f"must be one of {LABEL_MODES}, got {self.label_mode!r}")
        if self.max_label is not None and not self.max_label > 0:
            raise bad("max_label", f"must be > 0, got {self.max_label}")


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
    from distill.evaluation.metrics import roc_auc

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


def _optimizer(model: torch.nn.Module, cfg: TeacherTrainConfig) -> torch.optim.Optimizer:
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


def _check_resumable(state: dict, cfg: TeacherTrainConfig, fingerprint: str, where: Path) -> None:
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(where, "format", f"training state format {state.get('format')!r} is not {STATE_FORMAT}; restart training")
    if state["data_fingerprint"] != fingerprint:
        raise ConfigError(where, "train", "the saved state was trained on different rows/labels; restart (resume=False / --restart) or use another out_dir")
    for name in _TRAJECTORY:
        old, new = state["config"].get(name), getattr(cfg, name)
        if old != new:
            raise ConfigError(where, name, f"saved state used {old!r}, now {new!r}; restart (resume=False / --restart) or use another out_dir")


# --- training -------------------------------------------------------------------

def finetune_teacher(
    base_model: str | Path,
    train: Pairs,
    dev: Pairs | None,
    out_dir: str | Path,
    *,
    config: TeacherTrainConfig | None = None,
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
    ``progress``: ``None`` = bar on a terminal, ``True`` = always, ``False`` = never.
    """
    cfg = config or TeacherTrainConfig()
    cfg.validate()
    if train.labels is None:
        raise DistilRankError(f"{train.source}: teacher fine-tuning needs labels (set label_field)")
    if len(train) == 0:
        raise DistilRankError(f"{train.source}: no training rows")
    if dev is not None and dev.labels is None:
        raise DistilRankError(f"{dev.source}: the dev set needs labels")
    out = Path(out_dir)
    state_dir, best_dir = out / "state", out / "best"
    if not resume:
        for p in (state_dir, best_dir):
            shutil.rmtree(p, ignore_errors=True)
        for p in (out / "result.json", out / "train_log.jsonl"):
            p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    recover_model_dir(best_dir)

    fingerprint = train.digest(labels=True)
    state = load_training_state(state_dir) if resume else None
    if state is not None:
        _check_resumable(state, cfg, fingerprint, state_dir)
    mode, scale = label_scale(train.labels, cfg.label_mode, cfg.max_label, train.source)
    device = pick_device(cfg.device)
    amp_dtype = resolve_precision(device, cfg.mixed_precision)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]

    n_batches = math.ceil(len(train) / cfg.batch_size)
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    if state is not None and state["progress"]["step"] >= total_steps and (out / "result.json").exists():
        return _load_result(out / "result.json")  # finished earlier: nothing to do

    torch.manual_seed(cfg.seed)  # the new head's initialisation
    model, tokenizer = build_model(base_model, cfg.num_layers)
    model.to(device)
    enc = tokenize_pairs(tokenizer, train, cfg.max_length)
    targets = torch.from_numpy(teacher_targets(train.labels, mode, scale))
    optimizer = _optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16 and device.type == "cuda")

    prog = {"step": 0, "epoch": 0, "batch_pos": 0, "history": [], "best": {}, "initial": {}, "seconds": 0.0,
            "loss_sum": 0.0, "loss_n": 0, "running": None}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        prog.update(state["progress"])
        _set_rng_state(state["rng"])
    resumed_from = prog["step"]

    def teacher_meta(metrics: dict) -> dict:
        return {"base_model": str(base_model), "max_length": cfg.max_length, "label_mode": mode, "max_label": scale,
                "num_layers": model.config.num_hidden_layers, "step": prog["step"], "metrics": metrics}

    def save_state() -> None:
        save_training_state(state_dir, {
            "format": STATE_FORMAT, "config": asdict(cfg), "data_fingerprint": fingerprint, "base_model": str(base_model),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": _rng_state(), "progress": dict(prog)})
        write_json(state_dir / "progress.json", {k: prog[k] for k in ("step", "epoch", "batch_pos")} | {"total_steps": total_steps})

    def dev_metrics() -> dict:
        teacher = Teacher(model, tokenizer, str(out), cfg.max_length, cfg.mixed_precision)
        return evaluate_teacher(teacher, dev, cfg.eval_batch_size, label_mode=mode, max_label=scale)

    def evaluate() -> None:
        metrics = dev_metrics()
        record = {"step": prog["step"], "epoch": round(prog["step"] / steps_per_epoch, 4), **metrics,
                  "train_loss": prog["loss_sum"] / max(prog["loss_n"], 1), "lr": scheduler.get_last_lr()[0]}
        prog["loss_sum"], prog["loss_n"] = 0.0, 0
        prog["history"].append(record)
        with atomic_open(out / "train_log.jsonl") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in prog["history"])
        best = prog["best"]
        if not best or (metrics["accuracy"], metrics["auc"]) > (best["accuracy"], best["auc"]):
            prog["best"] = record
            save_model_dir(model, tokenizer, best_dir, teacher_meta(record))

    call_start = time.perf_counter()
    seconds_before = prog["seconds"]
    if dev is not None and cfg.eval_initial and prog["step"] == 0 and not prog["initial"]:
        prog["initial"] = dev_metrics()

    stop_at = min(total_steps, prog["step"] + stop_after) if stop_after else total_steps
    train_seconds, examples = 0.0, 0
    model.train()
    bar = progress_bar(total=total_steps, initial=prog["step"], progress=progress, desc=f"teacher {out.name}", unit="step")
    try:
        batches = training_batches(enc.lengths, cfg.batch_size, cfg.bucket_batches, cfg.seed, prog["epoch"])
        while prog["step"] < stop_at:
            t0 = time.perf_counter()
            group = batches[prog["batch_pos"] : prog["batch_pos"] + cfg.grad_accum]
            n_group = sum(len(b) for b in group)
            optimizer.zero_grad(set_to_none=True)
            loss_total = 0.0
            for sel in group:
                inputs = {k: v.to(device, non_blocking=True) for k, v in collate(enc, sel).items()}
                with autocast_context(device, amp_dtype):
                    logits = model(**inputs).logits[:, 0]
                loss = F.binary_cross_entropy_with_logits(logits.float(), targets[sel].to(device), reduction="sum") / n_group
                scaler.scale(loss).backward()
                loss_total += float(loss.detach())
            if not math.isfinite(loss_total):
                raise DistilRankError(f"teacher {out}: loss is {loss_total} at step {prog['step'] + 1}; lower lr or use mixed_precision='no'")
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            train_seconds += time.perf_counter() - t0
            examples += n_group

            prog["step"] += 1
            prog["batch_pos"] += len(group)
            prog["loss_sum"] += loss_total
            prog["loss_n"] += 1
            prog["running"] = loss_total if prog["running"] is None else 0.98 * prog["running"] + 0.02 * loss_total
            epoch_end = prog["batch_pos"] >= len(batches)
            if epoch_end:
                prog["epoch"] += 1
                prog["batch_pos"] = 0
                batches = training_batches(enc.lengths, cfg.batch_size, cfg.bucket_batches, cfg.seed, prog["epoch"])
            bar.update(1)
            bar.set_postfix(loss=f"{prog['running']:.4f}", epoch=prog["epoch"])

            last = prog["step"] >= total_steps
            due = (cfg.eval_every_steps and prog["step"] % cfg.eval_every_steps == 0) or (not cfg.eval_every_steps and epoch_end)
            evaluated = dev is not None and (due or last)
            if evaluated:
                evaluate()
                model.train()
            if evaluated or prog["step"] % cfg.save_every_steps == 0 or prog["step"] >= stop_at:
                prog["seconds"] = seconds_before + time.perf_counter() - call_start
                save_state()
    finally:
        bar.close()

    complete = prog["step"] >= total_steps
    if complete and dev is None:
        save_model_dir(model, tokenizer, best_dir, teacher_meta({}))
    result = TeacherTrainResult(
        out_dir=str(out), best_dir=str(best_dir), steps=prog["step"], best=prog["best"], history=prog["history"],
        seconds=seconds_before + time.perf_counter() - call_start,
        examples_per_second=examples / train_seconds if train_seconds > 0 else 0.0, complete=complete,
        total_steps=total_steps, resumed_from_step=resumed_from, examples=examples, initial=prog["initial"],
        label_mode=mode, max_label=scale, device=str(device), precision=precision, config=asdict(cfg))
    if complete:
        write_json(out / "result.json", asdict(result))
    return result


def _load_result(path: Path) -> TeacherTrainResult:
    raw = json.loads(path.read_text())
    names = {f.name for f in fields(TeacherTrainResult)}
    return TeacherTrainResult(**{k: v for k, v in raw.items() if k in names})
