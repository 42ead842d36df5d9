"""Transfer-set synthesis: new unlabeled inputs for the teacher to label.

Method (Tang et al. 2019, *Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks*, section 3.3).  Distillation needs far more inputs than
there are labeled examples, but the student only ever sees the *teacher's*
scores, so any plausible input is useful.  Each example is perturbed
``n_per_example`` times:

1. **Masking** - every word, with probability ``p_mask``, becomes ``mask_token``
   (``[MASK]``): the teacher's score then tells the student how much that word
   mattered.
2. **Word swap** - otherwise, with probability ``p_swap``, the word is replaced
   by a word drawn from the corpus unigram distribution (a uniformly random
   token position of the whole input corpus).  The paper swaps words with the
   same part-of-speech tag; that needs a tagger, so this is the tagger-free
   variant.  Rules 1 and 2 are mutually exclusive (one uniform draw per word:
   ``< p_mask`` masks, ``< p_mask + p_swap`` swaps).
3. **N-gram sampling** - then, with probability ``p_ngram``, the sample is cut to
   a random contiguous n-gram of itself, ``n`` uniform in ``ngram_range``
   (clipped to the sample's length); one-word samples are left whole.

In pair mode (non-empty queries) only the text (title) is perturbed; the query
is kept.  Words are whitespace tokens.  Samples that equal an original row or an
earlier sample (same query, same whitespace-normalised text) are dropped, so
the output may have fewer than ``len(pairs) * n_per_example`` rows.  The result
is unlabeled and deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

from distilrank.distill.config import AugmentConfig
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs
from distilrank.progress import progress_bar


def _check(n_per_example: int, p_mask: float, p_swap: float, p_ngram: float, ngram_range: tuple[int, int],
           max_rows: int | None, mask_token: str) -> None:
    """Raise :class:`ConfigError` for an invalid augmentation setting."""
    for name, p in (("p_mask", p_mask), ("p_swap", p_swap), ("p_ngram", p_ngram)):
        if not 0.0 <= p <= 1.0:
            raise ConfigError("augment", name, f"must be a probability in [0, 1], got {p}")
    if p_mask + p_swap > 1.0:
        raise ConfigError("augment", "p_swap", f"p_mask + p_swap must be <= 1, got {p_mask} + {p_swap}")
    if n_per_example < 0:
        raise ConfigError("augment", "n_per_example", f"must be >= 0, got {n_per_example}")
    lo, hi = ngram_range
    if not 1 <= lo <= hi:
        raise ConfigError("augment", "ngram_range", f"must be (lo, hi) with 1 <= lo <= hi, got {ngram_range}")
    if max_rows is not None and max_rows < 0:
        raise ConfigError("augment", "max_rows", f"must be >= 0 (0 or None = no cap), got {max_rows}")
    if not mask_token or len(mask_token.split()) != 1 or mask_token != mask_token.strip():
        raise ConfigError("augment", "mask_token", f"must be one non-empty word without spaces, got {mask_token!r}")


def _perturb(words: list[str], n: int, rng: np.random.Generator, corpus: np.ndarray, p_mask: float, p_swap: float,
             p_ngram: float, ngram_range: tuple[int, int], mask_token: str) -> list[str]:
    """``n`` perturbed versions of the non-empty word list ``words``, each joined by single spaces.

    Consumes a fixed number of random draws per word and per sample, so results
    depend only on the seed and the inputs.
    """
    length = len(words)
    u = rng.random((n, length))
    samples = np.tile(np.array(words, dtype=object), (n, 1))
    samples[u < p_mask] = mask_token
    swap = (u >= p_mask) & (u < p_mask + p_swap)
    n_swap = int(swap.sum())
    if n_swap:
        samples[swap] = corpus[rng.integers(0, len(corpus), size=n_swap)]
    cut = rng.random(n) < p_ngram
    top = min(ngram_range[1], length)
    bottom = min(ngram_range[0], top)
    sizes = bottom + (rng.random(n) * (top - bottom + 1)).astype(np.int64)
    starts = (rng.random(n) * (length - sizes + 1)).astype(np.int64)
    out = []
    for r in range(n):
        row = samples[r]
        if cut[r] and length > 1:
            row = row[starts[r] : starts[r] + sizes[r]]
        out.append(" ".join(row))
    return out


def augment(
    pairs: Pairs,
    *,
    n_per_example: int = AugmentConfig.n_per_example,
    p_mask: float = AugmentConfig.p_mask,
    p_swap: float = AugmentConfig.p_swap,
    p_ngram: float = AugmentConfig.p_ngram,
    ngram_range: tuple[int, int] = (1, 5),
    seed: int = 0,
    max_rows: int | None = None,
    mask_token: str = "[MASK]",
) -> Pairs:
    """Synthesise new, deduplicated, unlabeled rows from ``pairs`` (see the module doc).

    Args:
        pairs: the examples to perturb (labels, if any, are ignored).
        n_per_example: perturbed samples drawn per example, before deduplication.
        p_mask: per-word probability of becoming ``mask_token``.
        p_swap: per-word probability of a unigram word swap (``p_mask + p_swap <= 1``).
        p_ngram: per-sample probability of n-gram sampling.
        ngram_range: inclusive ``(lo, hi)`` n-gram lengths.
        seed: random seed; equal inputs and settings give equal outputs.
        max_rows: stop after this many output rows (``None`` or ``0``: no cap).
        mask_token: the mask word (must stay one token for the tokenizers).

    Returns:
        :class:`Pairs` with ``labels=None``, at most ``len(pairs) * n_per_example``
        rows (and at most ``max_rows``), none equal to an input row or to each other.

    Raises:
        ConfigError: for an invalid setting.
    """
    _check(n_per_example, p_mask, p_swap, p_ngram, ngram_range, max_rows, mask_token)
    cap = max_rows or None
    source = f"augment({pairs.source})"
    rng = np.random.default_rng(seed)
    tokenised = [t.split() for t in pairs.texts]
    corpus = np.array([w for words in tokenised for w in words], dtype=object)  # unigram draw = random position
    seen = {(q, " ".join(words)) for q, words in zip(pairs.queries, tokenised)}
    out_q: list[str] = []
    out_t: list[str] = []
    if n_per_example == 0 or len(corpus) == 0:
        return Pairs(out_q, out_t, None, source=source)
    with progress_bar(total=len(tokenised), desc="augment", unit="ex") as bar:
        for query, words in zip(pairs.queries, tokenised):
            bar.update()
            if not words:
                continue
            for text in _perturb(words, n_per_example, rng, corpus, p_mask, p_swap, p_ngram, ngram_range, mask_token):
                if (query, text) in seen:
                    continue
                seen.add((query, text))
                out_q.append(query)
                out_t.append(text)
                if cap is not None and len(out_t) >= cap:
                    return Pairs(out_q, out_t, None, source=source)
    return Pairs(out_q, out_t, None, source=source)
