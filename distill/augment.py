"""Transfer-set synthesis for users with little unlabeled text.

Follows Tang et al. 2019, *Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks*, section 3.3: for every word, with probability
``p_mask`` replace it by ``[MASK]``; otherwise with probability ``p_swap``
replace it by a word drawn from the corpus unigram distribution (standing in
for their POS-guided swap, which needs a tagger).  Then, with probability
``p_ngram``, keep only a random contiguous n-gram (``n`` uniform in
``ngram_range``).  Each input yields ``n_per_example`` samples; duplicates of
the originals and of each other are dropped.  The teacher labels the result,
so the synthetic rows need no labels.  In pair mode only the title is
augmented; the query is kept.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from distill.data.pairs import Pairs


def _normalise(text: str) -> str:
    return " ".join(text.split())


def augment(
    pairs: Pairs,
    *,
    n_per_example: int = 4,
    p_mask: float = 0.1,
    p_swap: float = 0.1,
    p_ngram: float = 0.25,
    ngram_range: tuple[int, int] = (1, 5),
    seed: int = 0,
    max_rows: int = 0,
    mask_token: str = "[MASK]",
) -> Pairs:
    """Synthesise up to ``len(pairs) * n_per_example`` new unlabeled, deduplicated pairs.

    Deterministic for a given ``seed``.  ``max_rows > 0`` caps the output.
    """
    rng = np.random.default_rng(seed)
    tokenised = [t.split() for t in pairs.texts]
    counts = Counter(w for words in tokenised for w in words)
    vocab = np.array(list(counts), dtype=object)
    probs = np.array([counts[w] for w in vocab], dtype=np.float64)
    probs /= probs.sum() if probs.sum() else 1.0
    seen = {(q, _normalise(t)) for q, t in pairs}
    out_q: list[str] = []
    out_t: list[str] = []
    lo, hi = ngram_range
    for i, words in enumerate(tokenised):
        if not words:
            continue
        for _ in range(n_per_example):
            draw = rng.random(len(words))
            swaps = vocab[rng.choice(len(vocab), size=len(words), p=probs)] if len(vocab) else words
            new = [mask_token if d < p_mask else (swaps[j] if d < p_mask + p_swap else w) for j, (w, d) in enumerate(zip(words, draw))]
            if rng.random() < p_ngram and len(new) > 1:
                n = int(rng.integers(lo, min(hi, len(new)) + 1))
                start = int(rng.integers(0, len(new) - n + 1))
                new = new[start : start + n]
            key = (pairs.queries[i], " ".join(new))
            if key in seen:
                continue
            seen.add(key)
            out_q.append(key[0])
            out_t.append(key[1])
            if max_rows and len(out_t) >= max_rows:
                return Pairs(out_q, out_t, None, source=f"augment({pairs.source})")
    return Pairs(out_q, out_t, None, source=f"augment({pairs.source})")
