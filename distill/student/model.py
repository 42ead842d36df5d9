"""The student network (BERT2DNN): n-gram bags -> MLP -> one relevance logit.

All featurisation happens inside ``forward`` from the three tensors ML Commons
feeds, so the same module exports to ONNX unchanged:

* unigrams: the token ids themselves (``[CLS]``/``[SEP]`` included: they are the
  boundary markers);
* bigrams: adjacent id pairs ``(a, b)`` hashed into ``bigram_buckets`` rows,
  ``h(a, b) = (a * 1_000_003 + b) mod bigram_buckets``; a bigram belongs to the
  segment of its second token, so ``([SEP], t_1)`` opens the title bag;
* trigrams (``trigrams = True``): id triples hashed into the same rows,
  ``h(a, b, c) = ((a * 1_000_003 + b) * 1_000_003 + c) mod bigram_buckets``,
  in the segment of their last token;
* one embedding table of ``vocab_size + bigram_buckets`` rows, dim ``embedding_dim``;
* per segment (query = type 0, title = type 1) the ``sqrtn`` combiner:
  ``sum(embeddings) / sqrt(number of n-grams)``;
* features ``[q, t]`` (+ ``[q * t, |q - t|]`` when ``interactions``, + the
  ``MATCH_FEATURES`` lexical-match features when ``match_features``) -> MLP
  ``hidden`` with ReLU -> ``Linear(.., 1)``.

Match features (``match_features = True``) tell the MLP what a bag of n-grams
cannot: whether the query's words occur in the title at all.  Over word ids
``>= N_SPECIAL`` (``[UNK]`` never matches), per pair: the share of query words
found in the title, the share of query bigrams found as title bigrams, whether
every query word was found, whether the query has a bigram, and
``1 / sqrt(query words)``.  They are computed from the same three inputs, so
the ONNX graph and both serving paths are unchanged in interface.

Score scale: the output is a raw logit (no sigmoid); ``sigmoid(logit)`` estimates
the teacher's temperature-softened relevance probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

BIGRAM_HASH_MULTIPLIER = 1_000_003
N_SPECIAL = 5  # [PAD] [UNK] [CLS] [SEP] [MASK]: ids below this are never words
MATCH_FEATURES = ("query_word_share", "query_bigram_share", "all_words_found", "has_bigram", "inv_sqrt_query_words")
EMBEDDING_INIT_STD = 0.05  # embedding rows start as N(0, EMBEDDING_INIT_STD^2)


@dataclass
class StudentConfig:
    """Architecture hyper-parameters (saved next to the weights as ``student_config.json``)."""

    vocab_size: int
    bigram_buckets: int = 262_139  # a prime, so the modulo hash spreads well
    embedding_dim: int = 64
    hidden: list[int] = field(default_factory=lambda: [1024, 512, 128, 64])
    interactions: bool = False
    dropout: float = 0.0
    trigrams: bool = False
    match_features: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_features(self) -> int:
        return self.embedding_dim * (4 if self.interactions else 2) + (len(MATCH_FEATURES) if self.match_features else 0)


class StudentModel(nn.Module):
    """``forward(input_ids, attention_mask, token_type_ids) -> logits [B, 1] float32``.

    Inputs are int64 ``[B, S]`` as produced by the student ``tokenizer.json``
    (see :mod:`distilrank.distill.student.tokenizer`).
    """

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size + config.bigram_buckets, config.embedding_dim)
        nn.init.normal_(self.embedding.weight, std=EMBEDDING_INIT_STD)
        layers: list[nn.Module] = []
        width = config.n_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def ngrams(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N-gram rows and bag weights of a batch.

        Returns:
            ids: int64 ``[B, N]`` embedding rows (``S`` unigrams, then ``S-1`` hashed bigrams, then with
                ``trigrams`` ``S-2`` hashed trigrams: ``N = 2S-1`` or ``3S-3``).
            weights: float32 ``[B, 2, N]``; ``weights[:, 0]`` builds the query bag and
                ``weights[:, 1]`` the title bag (``1/sqrt(n)`` on the segment's n-grams, 0 elsewhere).
        """
        mask = attention_mask.to(torch.float32)
        first, second = input_ids[:, :-1], input_ids[:, 1:]
        pair = first * BIGRAM_HASH_MULTIPLIER + second
        parts = [input_ids, torch.remainder(pair, self.config.bigram_buckets) + self.config.vocab_size]
        valid_parts = [mask, mask[:, :-1] * mask[:, 1:]]
        type_parts = [token_type_ids, token_type_ids[:, 1:]]
        if self.config.trigrams:
            triple = pair[:, :-1] * BIGRAM_HASH_MULTIPLIER + input_ids[:, 2:]
            parts.append(torch.remainder(triple, self.config.bigram_buckets) + self.config.vocab_size)
            valid_parts.append(mask[:, :-2] * mask[:, 1:-1] * mask[:, 2:])
            type_parts.append(token_type_ids[:, 2:])
        ids = torch.cat(parts, dim=1)
        valid = torch.cat(valid_parts, dim=1)
        title = torch.cat(type_parts, dim=1).to(torch.float32)
        weights = torch.stack([valid * (1.0 - title), valid * title], dim=1)
        counts = weights.sum(dim=2, keepdim=True).clamp(min=1.0)
        return ids, weights / torch.sqrt(counts)

    def bags(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """Query and title bags ``[B, 2, D]`` (``sqrtn``-combined unigram+bigram embeddings)."""
        ids, weights = self.ngrams(input_ids, attention_mask, token_type_ids)
        return torch.bmm(weights, self.embedding(ids))

    def head(self, bags: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, 1]`` from bags ``[B, 2, D]`` (and ``match`` ``[B, len(MATCH_FEATURES)]`` when configured)."""
        return self.mlp(self.features(bags, match))

    def features(self, bags: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        """MLP input ``[B, F]`` from bags ``[B, 2, D]`` and the optional match features."""
        q, t = bags[:, 0], bags[:, 1]
        parts = [q, t]
        if self.config.interactions:
            parts += [q * t, torch.abs(q - t)]
        if self.config.match_features:
            if match is None:
                raise ValueError("this student has match_features: pass match (StudentModel.match)")
            parts.append(match)
        return torch.cat(parts, dim=1)

    def match(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor | None:
        """Lexical-match features float32 ``[B, len(MATCH_FEATURES)]`` (module doc), or ``None`` when not configured."""
        if not self.config.match_features:
            return None
        word = (attention_mask > 0) & (input_ids >= N_SPECIAL)
        in_q_all = word & (token_type_ids == 0)
        in_t = word & (token_type_ids == 1)
        # Compare only the positions up to the batch's last query token ([CLS] query [SEP] comes first, so a few)
        # with every position: [B, Q, S] instead of [B, S, S]. Q is computed in the graph (Range + Gather in ONNX).
        position = torch.arange(input_ids.shape[1], device=input_ids.device)
        q_len = ((token_type_ids == 0) & (attention_mask > 0)).to(torch.int64).mul(position + 1).max()
        q_pos = torch.arange(q_len, device=input_ids.device)
        in_q = in_q_all.index_select(1, q_pos)
        found = ((input_ids.index_select(1, q_pos).unsqueeze(2) == input_ids.unsqueeze(1)) & in_t.unsqueeze(1)).any(dim=2) & in_q
        n_q = in_q.to(torch.float32).sum(dim=1)
        word_share = found.to(torch.float32).sum(dim=1) / n_q.clamp(min=1.0)
        pair = input_ids[:, :-1] * BIGRAM_HASH_MULTIPLIER + input_ids[:, 1:]
        bi_t = in_t[:, :-1] & in_t[:, 1:]
        bi_pos = torch.arange(torch.clamp(q_len - 1, min=0), device=input_ids.device)  # bigrams end by the last query token
        bi_q = (in_q_all[:, :-1] & in_q_all[:, 1:]).index_select(1, bi_pos)
        bi_found = ((pair.index_select(1, bi_pos).unsqueeze(2) == pair.unsqueeze(1)) & bi_t.unsqueeze(1)).any(dim=2) & bi_q
        n_bi = bi_q.to(torch.float32).sum(dim=1)
        bigram_share = bi_found.to(torch.float32).sum(dim=1) / n_bi.clamp(min=1.0)
        all_found = ((word_share >= 1.0) & (n_q > 0)).to(torch.float32)
        has_bigram = (n_bi > 0).to(torch.float32)
        inv_len = torch.rsqrt(n_q.clamp(min=1.0))
        return torch.stack([word_share, bigram_share, all_found, has_bigram, inv_len], dim=1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.head(self.bags(input_ids, attention_mask, token_type_ids), self.match(input_ids, attention_mask, token_type_ids))

    def dense_parameters(self) -> list[nn.Parameter]:
        """Parameters with dense gradients (everything but the embedding table)."""
        return list(self.mlp.parameters())
