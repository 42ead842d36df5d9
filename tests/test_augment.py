"""Transfer-set synthesis (Tang et al. 2019)."""

import numpy as np

from distill.augment import augment
from distill.data.pairs import Pairs

SENTENCES = [f"the {a} movie was {b} and {c}" for a in ("new", "old", "long") for b in ("good", "bad", "fine") for c in ("fun", "dull")]


def test_deterministic_and_deduplicated():
    src = Pairs([""] * len(SENTENCES), SENTENCES, None)
    a, b = augment(src, seed=3), augment(src, seed=3)
    assert a.texts == b.texts
    assert augment(src, seed=4).texts != a.texts
    assert len(set(a.texts)) == len(a.texts)
    assert not set(a.texts) & set(SENTENCES)
    assert a.labels is None and a.single_text


def test_mask_rate_and_swaps_from_corpus_vocabulary():
    words = [f"w{i}" for i in range(30)]
    src = Pairs([""] * 200, [" ".join(np.random.default_rng(i).permutation(words)) for i in range(200)], None)
    out = augment(src, n_per_example=5, p_mask=0.2, p_swap=0.0, p_ngram=0.0)
    tokens = [t for s in out.texts for t in s.split()]
    assert abs(tokens.count("[MASK]") / len(tokens) - 0.2) < 0.02
    swapped = augment(src, n_per_example=2, p_mask=0.0, p_swap=0.3, p_ngram=0.0)
    assert set(t for s in swapped.texts for t in s.split()) <= set(words)


def test_ngram_sampling_gives_contiguous_subsequences():
    src = Pairs([""], ["a b c d e f g h i j"], None)
    out = augment(src, n_per_example=40, p_mask=0.0, p_swap=0.0, p_ngram=1.0, ngram_range=(2, 4))
    assert len(out) > 5
    for text in out.texts:
        assert 2 <= len(text.split()) <= 4 and text in "a b c d e f g h i j"


def test_pair_mode_keeps_queries_and_max_rows():
    src = Pairs(["red shoes"] * 5, [f"red leather shoes size {i} for men" for i in range(5)], None)
    out = augment(src, n_per_example=3, max_rows=7)
    assert len(out) == 7 and set(out.queries) == {"red shoes"}
