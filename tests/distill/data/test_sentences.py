"""Leak-free held-out sentences for phrase-level data (SST-2 train holds every phrase of every sentence)."""

import numpy as np
import pytest

from distilrank.distill.data.sentences import hold_out_sentences, root_rows
from distilrank.distill.student.embedding_init import principal_components
from distilrank.pairs import Pairs

ROWS = [
    ("a gorgeous , witty , seductive movie .", 1),
    ("a gorgeous , witty", 1),
    ("witty", 1),
    ("seductive movie", 1),
    ("the plot is not funny at all .", 0),
    ("not funny", 0),
    ("funny", 1),
    ("the plot", 1),
    ("an awful mess of a film", 0),
    ("awful", 0),
    ("film", 1),
    ("mess", 0),
    ("wit", 1),  # not a word-aligned substring of "witty": its own sentence
]


def _pairs() -> Pairs:
    return Pairs([""] * len(ROWS), [t for t, _ in ROWS], np.array([y for _, y in ROWS], dtype=np.float32), source="phrases.tsv")


def test_roots_are_the_rows_inside_no_longer_row():
    assert root_rows(_pairs().texts).tolist() == [0, 4, 8, 12]


def test_duplicate_rows_have_one_root():
    assert root_rows(["good film", "good film", "good"]).tolist() == [0]


@pytest.mark.parametrize("seed", range(6))
def test_held_out_sentences_share_no_row_with_the_rest(seed):
    rest, held = hold_out_sentences(_pairs(), 2, seed=seed)
    assert len(held) == 2 and set(held.texts) <= {ROWS[i][0] for i in (0, 4, 8, 12)}
    for phrase in rest.texts:
        for sentence in held.texts:
            assert f" {phrase} " not in f" {sentence} "
    # every row that is not inside a held-out sentence stays
    inside = {t for t, _ in ROWS if any(f" {t} " in f" {s} " for s in held.texts)}
    assert sorted(rest.texts) == sorted(t for t, _ in ROWS if t not in inside)
    assert rest.labels.tolist() == [float(y) for t, y in ROWS if t not in inside]


def test_cannot_hold_out_every_sentence():
    with pytest.raises(ValueError, match="phrases.tsv: cannot hold out 4 sentences: it has 4 whole sentences"):
        hold_out_sentences(_pairs(), 4)


def test_principal_components_keep_the_top_directions_at_the_given_scale():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    x = rng.normal(size=(500, 8)) * np.array([10, 5, 1, 0.1, 0.1, 0.1, 0.1, 0.1]) @ basis.T + 3.0
    z = principal_components(x, 2, rms=0.05)
    assert z.shape == (500, 2) and z.dtype == np.float32
    assert np.sqrt(np.mean(z.astype(np.float64) ** 2)) == pytest.approx(0.05, rel=1e-4)
    assert abs(z.mean(axis=0)).max() < 1e-6
    # the first component carries the largest variance, ratio 10:5 as constructed (up to sampling)
    assert 1.6 < z[:, 0].std() / z[:, 1].std() < 2.5
    with pytest.raises(ValueError, match="cannot keep 9 components"):
        principal_components(x, 9)
