"""Transfer-set synthesis (Tang et al. 2019): masking, unigram word swaps, n-gram sampling, dedup."""

import numpy as np
import pytest

from distilrank.distill.augment import augment
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs

SENTENCES = [f"the {a} movie was {b} and {c}" for a in ("new", "old", "long") for b in ("good", "bad", "fine") for c in ("fun", "dull")]
WORDS = [f"w{i}" for i in range(30)]


def _permutations(n: int) -> Pairs:
    return Pairs([""] * n, [" ".join(np.random.default_rng(i).permutation(WORDS)) for i in range(n)], None)


def test_deterministic_unlabeled_and_deduplicated():
    src = Pairs([""] * len(SENTENCES), SENTENCES, np.ones(len(SENTENCES)))
    a, b = augment(src, seed=3), augment(src, seed=3)
    assert a.texts == b.texts and len(a) > len(SENTENCES)
    assert augment(src, seed=4).texts != a.texts
    assert len(set(a.texts)) == len(a.texts)
    assert not set(a.texts) & set(SENTENCES)
    assert a.labels is None and a.single_text
    assert len(a) <= 4 * len(SENTENCES)


def test_duplicates_of_whitespace_variants_of_originals_are_dropped():
    src = Pairs(["", ""], ["a  b", "a b c"], None)
    out = augment(src, n_per_example=30, p_mask=0.0, p_swap=0.0, p_ngram=1.0, ngram_range=(1, 3))
    # every sample of "a  b" is "a", "b" or the original "a b"; the original must be excluded
    assert "a b" not in out.texts and "a b c" not in out.texts
    assert sorted(out.texts) == sorted({"a", "b", "c", "b c"})  # all 1/2-grams of both, each once


def test_no_perturbation_yields_nothing_new():
    src = Pairs([""] * 3, ["x y", "y z", "z x"], None)
    assert len(augment(src, p_mask=0.0, p_swap=0.0, p_ngram=0.0)) == 0


def test_mask_rate_close_to_p_mask():
    out = augment(_permutations(200), n_per_example=5, p_mask=0.2, p_swap=0.0, p_ngram=0.0)
    tokens = [t for s in out.texts for t in s.split()]
    assert len(tokens) > 20_000
    assert abs(tokens.count("[MASK]") / len(tokens) - 0.2) < 0.02
    custom = augment(_permutations(20), p_mask=0.5, p_swap=0.0, p_ngram=0.0, mask_token="<m>")
    assert all(set(s.split()) <= set(WORDS) | {"<m>"} for s in custom.texts)


def test_swaps_draw_from_corpus_unigram_distribution():
    # per row: "a" x 18, "b" x 2, 10 row-unique words; swaps must follow the 60% / 6.7% / 33% unigram distribution
    src = Pairs([""] * 200, [" ".join(["a"] * 18 + ["b"] * 2 + [f"u{i}_{j}" for j in range(10)]) for i in range(200)], None)
    out = augment(src, n_per_example=4, p_mask=0.0, p_swap=1.0, p_ngram=0.0, seed=1)
    assert len(out) == 800  # 30 random words per sample: no collisions
    tokens = [t for s in out.texts for t in s.split()]
    assert set(tokens) <= {t for s in src.texts for t in s.split()}
    assert abs(tokens.count("a") / len(tokens) - 0.6) < 0.02
    assert abs(tokens.count("b") / len(tokens) - 2 / 30) < 0.01


def test_mask_and_swap_are_mutually_exclusive():
    # the query names the source row, so each sample can be aligned with its original word by word
    base = _permutations(100)
    src = Pairs([str(i) for i in range(100)], base.texts, None)
    out = augment(src, n_per_example=4, p_mask=0.3, p_swap=0.7, p_ngram=0.0)
    masked = kept = total = 0
    for q, text in out:
        for new, old in zip(text.split(), base.texts[int(q)].split()):
            masked += new == "[MASK]"
            kept += new == old
            total += 1
    assert abs(masked / total - 0.3) < 0.03
    assert kept / total < 0.7 / 30 + 0.015  # a word survives only when its swap draws itself (1 in 30)


def test_ngram_sampling_gives_contiguous_subsequences():
    sentence = "a b c d e f g h i j"
    out = augment(Pairs([""], [sentence], None), n_per_example=40, p_mask=0.0, p_swap=0.0, p_ngram=1.0, ngram_range=(2, 4))
    assert len(out) > 5
    words = sentence.split()
    grams = {" ".join(words[i : i + n]) for n in (2, 3, 4) for i in range(len(words) - n + 1)}
    assert set(out.texts) <= grams
    assert {len(t.split()) for t in out.texts} == {2, 3, 4}


def test_ngram_range_longer_than_sentence_is_clipped():
    out = augment(Pairs([""], ["a b c"], None), n_per_example=20, p_mask=0.0, p_swap=0.0, p_ngram=1.0, ngram_range=(4, 6))
    assert out.texts == []  # the only 3..3-gram is the sentence itself, a duplicate
    out = augment(Pairs([""], ["solo"], None), n_per_example=5, p_mask=1.0, p_swap=0.0, p_ngram=1.0)
    assert out.texts == ["[MASK]"]  # one-word samples are not cut


def test_pair_mode_keeps_queries_and_max_rows():
    shoes = [f"red leather shoes size {i} for men" for i in range(5)]
    mugs = [f"white mug {i} cl" for i in range(5)]
    src = Pairs(["red shoes"] * 5 + ["mug"] * 5, shoes + mugs, None)
    out = augment(src, n_per_example=3, p_swap=0.0, seed=2)
    assert set(out.queries) == {"red shoes", "mug"}
    vocab = {"red shoes": {w for t in shoes for w in t.split()}, "mug": {w for t in mugs for w in t.split()}}
    for q, t in out:  # without swaps, a text only holds words of titles under its own query
        assert set(t.split()) <= vocab[q] | {"[MASK]"}
    full = augment(src, n_per_example=3)
    capped = augment(src, n_per_example=3, max_rows=7)
    assert len(capped) == 7 and capped.texts == full.texts[:7] and capped.queries == full.queries[:7]
    assert augment(src, n_per_example=3, max_rows=0).texts == augment(src, n_per_example=3, max_rows=None).texts == full.texts


def test_same_text_under_another_query_is_not_a_duplicate():
    src = Pairs(["q1", "q2"], ["a b", "a b"], None)
    out = augment(src, n_per_example=10, p_mask=1.0, p_swap=0.0, p_ngram=0.0)
    assert list(out) == [("q1", "[MASK] [MASK]"), ("q2", "[MASK] [MASK]")]


@pytest.mark.parametrize("kwargs, field", [
    ({"p_mask": 1.5}, "p_mask"), ({"p_swap": -0.1}, "p_swap"), ({"p_mask": 0.6, "p_swap": 0.6}, "p_swap"),
    ({"ngram_range": (0, 3)}, "ngram_range"), ({"ngram_range": (4, 2)}, "ngram_range"),
    ({"n_per_example": -1}, "n_per_example"), ({"max_rows": -5}, "max_rows"), ({"mask_token": "two words"}, "mask_token"),
])
def test_invalid_settings_are_config_errors(kwargs, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        augment(Pairs([""], ["a b"], None), **kwargs)
