"""distilrank.distill.variants: one student-variant type for both tasks."""

from __future__ import annotations

from distilrank.distill.config import StudentSection
from distilrank.distill.variants import StudentVariant


def test_a_variant_changes_only_what_it_sets():
    base = StudentSection(embedding_dim=32, interactions=True, gold_epochs=8, epochs=4)
    v = StudentVariant(targets="stack-equal", loss="listwise", match_features=True, temperature=1.0)
    s = v.section(base)
    assert (s.loss, s.match_features, s.embedding_dim, s.interactions, s.epochs) == ("listwise", True, 32, True, 4)
    gold = StudentVariant(targets="gold", loss="bce", name="gold-labels-only").section(base)
    assert (gold.loss, gold.epochs) == ("bce", 8)  # gold_section: BCE, gold_epochs


def test_slug_complexity_and_round_trip():
    a = StudentVariant(targets="stack-equal", loss="listwise", match_features=True, temperature=1.0)
    b = StudentVariant(targets="mpnet", loss="bce", match_features=False, temperature=1.0)
    assert a.slug == "stack-equal-listwise-match-T1" and b.slug == "mpnet-bce-nomatch-T1"
    assert b.complexity() < a.complexity()
    assert StudentVariant.from_dict(a.to_dict()) == a and "name" not in a.to_dict()
    assert StudentVariant(targets="gold", name="gold-labels-only").slug == "gold-labels-only"
