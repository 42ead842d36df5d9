"""Fine-tune a bi-encoder teacher on judged queries with a listwise ranking loss inside each query.

The model is the bi-encoder of :class:`distilrank.distill.teacher.biencoder.BiEncoder` (mean-pooled, L2-normalised
embeddings of query and product text; score = cosine). Each optimiser step is one query's list: its judged products
(graded), unjudged products from its first-pass pool (where a reranker works; gain 0) and random products (gain 0), at
most ``docs_per_query`` of them (half kept for products with a positive gain when there are more). The loss is the
cross-entropy between the softmax of ``scale * cosine`` over the list and the list's normalised gains (ListNet with
the ESCI gains as targets); a list whose gains are all 0 is skipped. Linear warm-up and decay, AdamW.

The result is a ``save_pretrained`` directory that :class:`BiEncoder` and the embedding store read like any base
checkpoint, plus ``finetune.json`` (settings, per-epoch mean loss, time).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from distilrank.atomic import write_json
from distilrank.grades import esci_gain


@dataclass(frozen=True)
class ListwiseSettings:
    """How a bi-encoder is fine-tuned (the parameters are the config)."""

    epochs: int = 3
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    docs_per_query: int = 32
    pool_negatives: int = 16
    random_negatives: int = 4
    scale: float = 20.0
    query_max_length: int = 32
    doc_max_length: int = 64
    seed: int = 0


@dataclass(frozen=True)
class QueryList:
    """One training list: the query, its products' texts and their gains (float ``[n]``, ESCI gains of the grades)."""

    query: str
    texts: list[str]
    gains: np.ndarray


def sample_lists(queries: Sequence[str], grades: Mapping[str, Mapping[str, float]], pools: Mapping[str, Sequence[str]],
                 texts: Mapping[str, str], s: ListwiseSettings, rng: random.Random) -> list[QueryList]:
    """One epoch's lists, in a shuffled query order: per query its judged products, ``pool_negatives`` unjudged products
    of ``pools[q]`` and ``random_negatives`` random products of ``texts``, cut to ``docs_per_query``."""
    all_ids = sorted(texts)
    order = list(queries)
    rng.shuffle(order)
    out = []
    for q in order:
        judged = [d for d in grades[q] if d in texts]
        unjudged = [d for d in pools.get(q, ()) if d not in grades[q] and d in texts]
        randoms = [d for d in rng.sample(all_ids, min(len(all_ids), s.random_negatives)) if d not in grades[q]]
        docs = judged + rng.sample(unjudged, min(len(unjudged), s.pool_negatives)) + randoms
        if len(docs) > s.docs_per_query:
            pos = [d for d in judged if grades[q][d] > 0]
            keep = rng.sample(pos, min(len(pos), s.docs_per_query // 2))
            rest = [d for d in docs if d not in set(keep)]
            docs = keep + rng.sample(rest, min(len(rest), s.docs_per_query - len(keep)))
        gains = esci_gain(np.array([grades[q].get(d, 0.0) for d in docs]))
        out.append(QueryList(q, [texts[d] for d in docs], gains))
    return out


def _embed(model, tok, texts: Sequence[str], max_length: int) -> torch.Tensor:
    enc = tok(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def listwise_loss(scores: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between ``softmax(scores)`` and ``gains / sum(gains)`` (both ``[n]``; ``gains`` not all 0)."""
    return -(gains / gains.sum() * F.log_softmax(scores, dim=0)).sum()


def finetune_biencoder(base: str | Path, lists: Callable[[random.Random], list[QueryList]], out_dir: str | Path,
                       settings: ListwiseSettings = ListwiseSettings(), *, log: Callable[[str], None] = lambda m: None) -> Path:
    """Fine-tune the checkpoint ``base`` on ``lists(rng)`` (called once per epoch); returns ``out_dir``, where the model
    and tokenizer are saved (and ``finetune.json``). An ``out_dir`` that already has ``finetune.json`` is returned as is."""
    out = Path(out_dir)
    if (out / "finetune.json").exists():
        return out
    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModel.from_pretrained(str(base), local_files_only=True)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    epochs = [lists(rng) for _ in range(s.epochs)]
    total = max(1, sum(len(e) for e in epochs))
    warm = max(1, int(s.warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warm) * max(0.0, (total - k) / total))
    t0, history = time.perf_counter(), []
    for e, epoch in enumerate(epochs):
        losses = []
        for item in epoch:
            if float(item.gains.sum()) <= 0:
                continue
            q = _embed(model, tok, [item.query], s.query_max_length)[0]
            d = _embed(model, tok, item.texts, s.doc_max_length)
            loss = listwise_loss(s.scale * (d @ q), torch.tensor(item.gains, dtype=torch.float32))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)) if losses else float("nan"))
        log(f"bi-encoder fine-tuning: epoch {e + 1}/{s.epochs}, {len(losses)} lists, mean loss {history[-1]:.4f} "
            f"({time.perf_counter() - t0:.0f}s)")
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    write_json(tmp / "finetune.json", {"base": str(base), "settings": asdict(s), "epoch_loss": history,
                                       "seconds": round(time.perf_counter() - t0, 1)})
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


__all__ = ["ListwiseSettings", "QueryList", "finetune_biencoder", "listwise_loss", "sample_lists"]
