"""Shared fixtures: tiny real BERT checkpoints and small real data samples."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from distilrank.pairs import Pairs

DATA = Path(__file__).parent / "data"

# The serving-only install (`make test-serving`: no torch, transformers, pyarrow) runs tests/core and tests/plugin; the
# few tests there that need an exported student (tests/plugin/conftest.py) or pyarrow skip themselves, named in -ra.
SERVING_ONLY = importlib.util.find_spec("torch") is None


def pytest_report_header(config) -> str | None:
    return "serving-only install: tests that need torch or pyarrow skip themselves" if SERVING_ONLY else None


WORDS = ("good great fine nice love bad awful poor boring hate movie film plot actor story the a is was very not "
         "red blue shoes socks lamp mug cotton wool").split()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a real WordPiece tokenizer, saved like a HF checkpoint."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz", *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
    wordpiece = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]",
                            model_input_names=["input_ids", "token_type_ids", "attention_mask"]).save_pretrained(str(d))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(d))
    return d


def sentiment_pairs(n: int, seed: int = 0) -> Pairs:
    """Learnable single-text task: sentences with a positive word are positive."""
    rng = np.random.default_rng(seed)
    pos, neg, filler = ["good", "great", "love", "nice"], ["bad", "awful", "hate", "boring"], ["the", "movie", "film", "plot", "was", "very", "a", "story"]
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.random() < 0.5)
        words = list(rng.choice(filler, size=int(rng.integers(2, 6)))) + [rng.choice(pos if y else neg)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(float(y))
    return Pairs([""] * n, texts, np.array(labels, np.float32), source=f"sentiment({n})")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one intra-op thread is fastest, and much faster when the 2 cores are busy (use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
