"""Fine-tune a BERT-family checkpoint as a one-logit cross-encoder teacher.

``AutoModelForSequenceClassification(num_labels=1)`` is trained with
binary cross-entropy on the raw logit: binary labels as they are, graded
labels divided by the largest label (soft targets in ``[0, 1]``).

Outputs in ``out_dir``::

    best/            best checkpoint so far by dev accuracy (ties: AUC), with tokenizer
    state.pt         full training state every ``save_every_steps`` steps (resume after a kill)
    train_log.jsonl  one line per evaluation
    result.json      final report (dev history, best metrics, examples/s)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from distill.atomic import atomic_open, atomic_path, write_json
from distill.data.pairs import Pairs
from distill.errors import DistilRankError
from distill.teacher.model import Teacher, pick_device, tokenize_batch


@dataclass
class TeacherTrainConfig:
    """Fine-tuning hyper-parameters. ``num_layers`` keeps only the first k encoder layers."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 0
    max_steps: int | None = None
    num_layers: int | None = None
    mixed_precision: str = "auto"  # auto (fp16 on CUDA, none on CPU) | bf16 | fp16 | no
    device: str = "auto"
    eval_batch_size: int = 128
    save_every_steps: int = 200
    bucket_batches: int = 20


@dataclass
class TeacherTrainResult:
    out_dir: str
    best_dir: str
    steps: int
    best: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    examples_per_second: float = 0.0


def _targets(labels: np.ndarray) -> np.ndarray:
    top = float(labels.max()) if len(labels) else 1.0
    return (labels / top if top > 1.0 else labels).astype(np.float32)


def _epoch_batches(pairs: Pairs, batch_size: int, bucket: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Deterministic, length-bucketed batch order of one epoch (the same after a resume)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(pairs))
    lengths = np.fromiter((len(q) + len(t) for q, t in pairs), dtype=np.int64, count=len(pairs))
    batches: list[np.ndarray] = []
    window = batch_size * bucket
    for s in range(0, len(order), window):
        chunk = order[s : s + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def _autocast(device: torch.device, mode: str) -> tuple[bool, torch.dtype]:
    if mode == "auto":
        return (device.type == "cuda", torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16)
    if mode == "no":
        return False, torch.float32
    return True, torch.bfloat16 if mode == "bf16" else torch.float16


def evaluate_teacher(teacher: Teacher, dev: Pairs, batch_size: int = 128) -> dict:
    """Dev metrics of a teacher: accuracy (logit > 0 vs label >= 0.5 of max), AUC, BCE loss."""
    from distill.evaluation.metrics import accuracy, roc_auc

    assert dev.labels is not None
    logits = teacher.score(dev, batch_size=batch_size)
    target = _targets(dev.labels)
    loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(target)))
    return {"accuracy": accuracy(logits, target), "auc": roc_auc(logits, target >= 0.5), "loss": loss, "n": len(dev)}


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
    """Fine-tune ``base_model`` on labeled ``train`` pairs; evaluate on ``dev`` after each epoch.

    Resumes from ``out_dir/state.pt`` when present and ``resume`` is true (the
    batch order of each epoch is a function of the seed, so the run continues
    exactly where it stopped).  ``stop_after`` ends this call after that many
    optimizer steps (time-boxed or preemptible jobs); call again to continue.
    """
    cfg = config or TeacherTrainConfig()
    if train.labels is None:
        raise DistilRankError(f"{train.source}: teacher fine-tuning needs labels (set label_field)")
    if dev is not None and dev.labels is None:
        raise DistilRankError(f"{dev.source}: the dev set needs labels")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)

    model = AutoModelForSequenceClassification.from_pretrained(str(base_model), num_labels=1, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model), local_files_only=True)
    if cfg.num_layers:
        model.base_model.encoder.layer = model.base_model.encoder.layer[: cfg.num_layers]
        model.config.num_hidden_layers = cfg.num_layers
    model.to(device)
    use_amp, amp_dtype = _autocast(device, cfg.mixed_precision)
    scaler = torch.amp.GradScaler(enabled=use_amp and amp_dtype == torch.float16 and device.type == "cuda")

    targets = torch.from_numpy(_targets(train.labels))
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    decay = [p for n, p in model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in model.named_parameters() if any(k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)

    step, history, best = 0, [], {"accuracy": -1.0, "auc": -1.0}
    state_path = out / "state.pt"
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history, best = state["step"], state["history"], state["best"]
        torch.set_rng_state(state["torch_rng"])

    def save_state() -> None:
        with atomic_path(state_path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "step": step, "history": history, "best": best, "torch_rng": torch.get_rng_state()}, tmp)

    def evaluate(epoch: int) -> None:
        nonlocal best
        if dev is None:
            return
        metrics = evaluate_teacher(Teacher(model, tokenizer, str(out), cfg.max_length), dev, cfg.eval_batch_size)
        model.train()
        record = {"step": step, "epoch": epoch, **metrics}
        history.append(record)
        with atomic_open(out / "train_log.jsonl") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in history)
        if (metrics["accuracy"], metrics["auc"]) > (best["accuracy"], best["auc"]):
            best = record
            _save_checkpoint(model, tokenizer, out / "best")

    t0, trained = time.perf_counter(), 0
    stop_at = min(total_steps, step + stop_after) if stop_after else total_steps
    model.train()
    bar = tqdm(total=total_steps, initial=step, desc=f"teacher {out.name}", unit="step", disable=progress is False or None)
    running = None
    while step < stop_at:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        batches = _epoch_batches(train, cfg.batch_size, cfg.bucket_batches, cfg.seed, epoch)
        for sel in batches[in_epoch:]:
            enc = tokenize_batch(tokenizer, [train.queries[i] for i in sel], [train.texts[i] for i in sel], cfg.max_length)
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(**enc).logits[:, 0]
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets[sel].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            trained += len(sel)
            lv = float(loss.detach())
            running = lv if running is None else 0.98 * running + 0.02 * lv
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            if step % cfg.save_every_steps == 0 or step == stop_at:
                save_state()
            if step >= stop_at:
                break
        if step % steps_per_epoch == 0 or step >= total_steps:
            evaluate(epoch + 1)
            save_state()
    if step < total_steps:  # stopped early on request: resumable, no final result yet
        bar.close()
        return TeacherTrainResult(str(out), str(out / "best"), step, best, history, time.perf_counter() - t0, 0.0)
    bar.close()
    if dev is None or not (out / "best").exists():
        _save_checkpoint(model, tokenizer, out / "best")
    seconds = time.perf_counter() - t0
    result = TeacherTrainResult(str(out), str(out / "best"), step, best if dev is not None else {}, history, seconds,
                                trained / seconds if seconds > 0 else 0.0)
    write_json(out / "result.json", asdict(result))
    return result


def _save_checkpoint(model: torch.nn.Module, tokenizer, path: Path) -> None:
    """Write a checkpoint directory atomically (a temp dir renamed over the old one)."""
    import shutil

    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
