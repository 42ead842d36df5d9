"""Student recipes of a product-search run: which targets, loss and features, trained through the stage API.

A :class:`StudentVariant` is one candidate: the target signal (a teacher name, ``stack-equal`` = every teacher z-scored
within its query's pool with equal weights, or ``stack`` = the ranking stacker fitted on judged queries), the loss
(``listwise``: softmax over each query's pool of ``target / T``; ``bce``: ``sigmoid`` of the within-pool z-scored
target ``/ T``) and whether the student gets lexical-match features.  Every other setting is ``[student]``.

A student whose target uses no judgment (zero-shot teachers, ``stack-equal``) is the same for every fold and is
trained once, under ``out_dir/students/<recipe>-<pairs>[-seed<s>]``; one whose target depends on a fold (``stack``,
or a fine-tuned teacher) is trained per fold under that fold's directory.  Training goes through
:func:`distilrank.distill.api.train_student` and resumes from its ``state.pt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json, write_npy
from distilrank.distill.ranking.stacking import pool_zscore
from distilrank.distill.targets import soft_targets
from distilrank.distill.variants import StudentVariant
from distilrank.grades import GRADE_MAX
from distilrank.pairs import Pairs

Log = Callable[[str], None]


def targets_for(recipe: StudentVariant, signal: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Training targets float32 ``[N]`` of ``recipe`` from the teacher ``signal`` ``[N]`` of the rows' queries ``groups``:
    ``listwise``: the within-pool z-score over ``T`` (a softmax logit); ``bce``: ``sigmoid`` of the same."""
    z = pool_zscore(signal, groups) / np.float32(recipe.temperature)
    return z.astype(np.float32) if recipe.loss == "listwise" else soft_targets(z, 1.0)


def train_recipe(recipe: StudentVariant, pairs: Pairs, signal: np.ndarray, groups: np.ndarray, tokenizer, section, out: Path, *,
                 seed: int, progress: bool | None, log: Log, metadata: dict | None = None,
                 init_embeddings: np.ndarray | None = None) -> Path:
    """Train (or resume, or reuse) the student of ``recipe`` on ``pairs`` into ``out``; returns ``out``.
    ``init_embeddings`` ``[vocab, embedding_dim]``: the unigram rows' start (:func:`word_init`); ``None``: random."""
    from distilrank.distill.api import reuse_student, student_record, train_student
    from distilrank.distill.student.train import soup_tag

    s = recipe.section(section)
    trained_on = {"recipe": recipe.to_dict(), "train_pairs": len(pairs), **(metadata or {})}
    if reuse_student(out, student_record(s, tokenizer.get_vocab_size(), seed=seed, trained_on=trained_on)):
        return out
    t0 = time.perf_counter()

    def on_epoch(r: dict) -> None:
        log(f"student {out.name}{soup_tag(r)}: epoch {r['epoch']}/{r['epochs']} val loss {r['val_loss']:.4f} "
            f"({r['pairs_per_second']:.0f} pairs/s)")

    train_student(pairs, targets_for(recipe, signal, groups), out, s, tokenizer=tokenizer, seed=seed, progress=progress,
                  metadata=trained_on, trained_on=trained_on, on_epoch=on_epoch, groups=groups if recipe.loss == "listwise" else None,
                  init_embeddings=init_embeddings)
    log(f"student {out.name}: trained on {len(pairs)} pairs in {time.perf_counter() - t0:.0f}s")
    return out


def student_scores(student_dir: Path, tables: dict[str, Pairs]) -> dict[str, np.ndarray]:
    """The student's logits float32 on each table, cached as ``student_dir/scores/<split>.npy``."""
    from distilrank.distill.student.store import load_student

    out, student = {}, None
    for split, pairs in tables.items():
        path = student_dir / "scores" / f"{split}.npy"
        if path.exists() and len(z := np.load(path)) == len(pairs):
            out[split] = z
            continue
        student = student or load_student(student_dir)
        out[split] = student.score(pairs)
        write_npy(path, out[split])
    return out


def train_gold(pairs: Pairs, tokenizer, section, out: Path, *, seed: int, progress: bool | None, log: Log,
               init: tuple[str, np.ndarray] | None = None) -> Path:
    """The gold-only baseline: BCE on ``grade / GRADE_MAX`` of judged rows plus weak negatives (``[student]`` with
    ``gold_epochs``, no match features), into ``out``; ``init``: ``(what, rows)`` of :func:`word_init`, the same start
    as the distilled students, so distilled - gold-only measures the transfer set."""
    from distilrank.distill.api import gold_section, reuse_student, student_record, train_student

    s, trained_on = gold_section(section), {"variant": "gold-only", "targets": "judgments + weak negatives", "train_pairs": len(pairs)}
    if init is not None:
        trained_on["init"] = init[0]
    if not reuse_student(out, student_record(s, tokenizer.get_vocab_size(), seed=seed, trained_on=trained_on)):
        t0 = time.perf_counter()
        train_student(pairs, (pairs.labels / GRADE_MAX).astype(np.float32), out, s, tokenizer=tokenizer, seed=seed,
                      progress=progress, metadata=trained_on, trained_on=trained_on, init_embeddings=init[1] if init else None)
        log(f"student {out.parent.name}/{out.name}: gold-only on {len(pairs)} pairs in {time.perf_counter() - t0:.0f}s")
    return out


def word_init(store, tokenizer, dim: int, path: Path, *, seed: int, progress: bool | None = None) -> np.ndarray:
    """Start rows float32 ``[vocab, dim]`` of the student's word embeddings from a bi-encoder teacher: its unit embedding
    of each vocabulary word alone (``store``: an :class:`~distilrank.distill.teacher.embedding_store.EmbeddingStore`,
    which caches them) on the top ``dim`` principal components (:func:`distilrank.distill.student.embedding_init.word_vectors`);
    cached as ``path``."""
    from distilrank.distill.student.embedding_init import word_vectors

    if path.exists() and (rows := np.load(path)).shape == (tokenizer.get_vocab_size(), dim):
        return rows
    vocab = [w for w, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    rows = word_vectors(vocab, dim, lambda words: store.vectors(words, progress=progress), seed=seed)
    write_npy(path, rows)
    return rows


def subset_rows(groups: np.ndarray, max_pairs: int | None, seed: int) -> np.ndarray:
    """Rows of whole queries, in a seeded query order, up to ``max_pairs`` (``None``: every row); nested for one seed."""
    if max_pairs is None or max_pairs >= len(groups):
        return np.arange(len(groups), dtype=np.int64)
    n = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=n)
    order = np.random.default_rng(seed).permutation(n)
    take = order[: max(1, int(np.searchsorted(np.cumsum(sizes[order]), max_pairs, side="right")))]
    keep = np.zeros(n, bool)
    keep[take] = True
    return np.flatnonzero(keep[groups])


def write_choice(path: Path, rows: list[dict], chosen: StudentVariant) -> None:
    write_json(path, {"chosen": chosen.to_dict(), "variants": rows})


__all__ = ["student_scores", "subset_rows", "targets_for", "train_gold", "train_recipe", "word_init", "write_choice"]
