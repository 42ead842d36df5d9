"""The student's tokenizer: a word-level ``tokenizers`` vocabulary saved as ``tokenizer.json``.

The same ``tokenizer.json`` is used at training time (here) and at serving time
(ML Commons' DJL tokenizer), so the token ids the model sees are identical in
both places.  Contract of the produced ids, for a pair ``(query, title)``::

    [CLS] q_1 .. q_n [SEP] t_1 .. t_m [SEP]
    token_type_ids:  0 ... 0 (through the first [SEP]), 1 ... 1 (title and last [SEP])

``[CLS]`` and the ``[SEP]`` tokens act as the boundary markers of the n-gram
bags: the bigram ``([CLS], q_1)`` marks the query start, ``(q_n, [SEP])`` its
end, ``([SEP], t_1)`` the title start, ``(t_m, [SEP])`` its end.  Single-text
data (SST-2) is encoded as the pair ``("", text)``, exactly as ML Commons
encodes ``(query, doc)`` pairs, so there is only one code path.

Normalisation is BERT's (NFD, strip accents, lowercase, clean control chars,
split CJK characters); pre-tokenisation splits on whitespace and punctuation.
Out-of-vocabulary words map to ``[UNK]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

from distilrank.atomic import atomic_path
from distilrank.distill.config import StudentSection

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3


def _normalizer() -> normalizers.Normalizer:
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.BertPreTokenizer()


def build_student_tokenizer(
    texts: Iterable[str], *, vocab_size: int = StudentSection.vocab_size, min_count: int = StudentSection.min_count,
    max_length: int = StudentSection.max_length,
) -> Tokenizer:
    """Count words in ``texts`` and build the word-level student tokenizer.

    Args:
        texts: corpus (queries and titles) the vocabulary is learned from.
        vocab_size: maximum vocabulary size including the 5 special tokens.
        min_count: words seen fewer times are left out (become ``[UNK]``).
        max_length: truncation length (longest-first) written into the json;
            ML Commons truncates at this length too.

    Returns:
        A ``tokenizers.Tokenizer`` with the pair template described in the module doc.
    """
    norm, pre = _normalizer(), _pre_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        if text:
            counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in words[: max(0, vocab_size - len(SPECIAL_TOKENS))]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, CLS_ID), (SEP, SEP_ID)],
    )
    # "[MASK]" (left by augmentation) must stay one token, as for the teacher's tokenizer.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.enable_truncation(max_length=max_length, strategy="longest_first")
    return tok


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    """Atomically write ``tokenizer.json``."""
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a ``tokenizer.json`` (the student's or any BERT-style one)."""
    return Tokenizer.from_file(str(path))


@dataclass
class EncodedPairs:
    """Token ids of ``N`` pairs, right-padded to the longest row.

    Attributes:
        input_ids: int32 ``[N, S]``, ``PAD_ID`` beyond each row's length.
        token_type_ids: int8 ``[N, S]``, 0 for the query segment, 1 for the title.
        lengths: int32 ``[N]`` number of real tokens per row (attention mask = ``arange(S) < length``).
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``index`` trimmed to their longest: ``(input_ids, attention_mask, token_type_ids)`` int64."""
        lens = self.lengths[index]
        width = int(lens.max()) if len(lens) else 1
        ids = self.input_ids[index, :width].astype(np.int64)
        types = self.token_type_ids[index, :width].astype(np.int64)
        mask = (np.arange(width)[None, :] < lens[:, None]).astype(np.int64)
        return ids, mask, types


def encode_pairs(tokenizer: Tokenizer, queries: list[str], texts: list[str], *, chunk: int = 8192) -> EncodedPairs:
    """Encode ``(query, text)`` pairs with ``tokenizer`` exactly as ML Commons does (``encode(q, t)``)."""
    n = len(texts)
    seqs: list[list[int]] = []
    types: list[list[int]] = []
    for start in range(0, n, chunk):
        encs = tokenizer.encode_batch(list(zip(queries[start : start + chunk], texts[start : start + chunk])))
        seqs.extend(e.ids for e in encs)
        types.extend(e.type_ids for e in encs)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=n)
    width = int(lengths.max()) if n else 1
    ids = np.zeros((n, width), dtype=np.int32)
    tt = np.zeros((n, width), dtype=np.int8)
    for i, (s, t) in enumerate(zip(seqs, types)):
        ids[i, : len(s)] = s
        tt[i, : len(t)] = t
    return EncodedPairs(ids, tt, lengths)
