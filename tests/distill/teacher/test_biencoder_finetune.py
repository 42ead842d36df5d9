"""Listwise fine-tuning of a bi-encoder teacher on a tiny real BERT: the lists it samples and that it learns a ranking."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from distilrank.distill.teacher.biencoder import BiEncoder
from distilrank.distill.teacher.biencoder_finetune import ListwiseSettings, finetune_biencoder, listwise_loss, sample_lists
from distilrank.grades import esci_gain

TEXTS = {"p1": "red shoes", "p2": "red socks", "p3": "blue mug", "p4": "wool lamp", "p5": "cotton socks", "p6": "blue lamp"}
GRADES = {"red shoes": {"p1": 3.0, "p2": 1.0, "p3": 0.0}, "blue mug": {"p3": 3.0, "p6": 2.0, "p1": 0.0}}
POOLS = {"red shoes": ["p2", "p1", "p4", "p5"], "blue mug": ["p6", "p4", "p3"]}


def test_lists_hold_the_judged_products_pool_and_random_negatives_with_esci_gains():
    s = ListwiseSettings(pool_negatives=1, random_negatives=2, docs_per_query=32)
    lists = sample_lists(["red shoes", "blue mug"], GRADES, POOLS, TEXTS, s, random.Random(0))
    assert sorted(x.query for x in lists) == ["blue mug", "red shoes"]
    for x in lists:
        judged = GRADES[x.query]
        assert [TEXTS[d] for d in judged] == x.texts[:len(judged)]
        np.testing.assert_allclose(x.gains[:len(judged)], esci_gain(np.array(list(judged.values()))))
        assert np.all(x.gains[len(judged):] == 0) and len(judged) + 1 <= len(x.texts) <= len(judged) + 3


def test_long_lists_are_cut_keeping_positives():
    s = ListwiseSettings(pool_negatives=10, random_negatives=5, docs_per_query=4)
    for x in sample_lists(["red shoes"], GRADES, POOLS, TEXTS, s, random.Random(1)):
        assert len(x.texts) == 4 and (x.gains > 0).sum() >= 1


def test_listwise_loss_is_lowest_when_scores_follow_the_gains():
    gains = torch.tensor([1.0, 0.1, 0.0])
    assert listwise_loss(torch.tensor([5.0, 1.0, -5.0]), gains) < listwise_loss(torch.tensor([-5.0, 1.0, 5.0]), gains)


def test_fine_tuning_learns_to_rank_the_judged_products(tiny_bert, tmp_path):
    s = ListwiseSettings(epochs=25, lr=2e-3, warmup_ratio=0.0, pool_negatives=2, random_negatives=1)
    before = BiEncoder(tiny_bert, max_length=16, device="cpu")

    def margin(enc: BiEncoder) -> float:
        q = enc.encode(["red shoes", "blue mug"])
        d = enc.encode([TEXTS["p1"], TEXTS["p3"]])
        return float((q[0] @ d[0] - q[0] @ d[1]) + (q[1] @ d[1] - q[1] @ d[0]))

    out = finetune_biencoder(tiny_bert, lambda rng: sample_lists(list(GRADES), GRADES, POOLS, TEXTS, s, rng), tmp_path / "ft", s)
    report = json.loads((out / "finetune.json").read_text())
    assert report["epoch_loss"][-1] < report["epoch_loss"][0]
    after = BiEncoder(out, max_length=16, device="cpu")
    assert margin(after) > margin(before) and margin(after) > 0
    assert finetune_biencoder(tiny_bert, lambda rng: [], out, s) == out  # done: returned as is
