"""Minimal, self-contained helpers for the integration tests.

* ``build_tiny_cross_encoder`` makes a tiny ONNX TEXT_SIMILARITY model in the layout ML Commons
  expects (flat zip: one ``*.onnx`` + ``tokenizer.json``) whose score is easy to predict:
  ``logit = overlap(query, doc) + sum(bonus[w] for w in doc) / (len(doc) + 1)``.
The tests talk to ML Commons through distilrank's own client (:mod:`distilrank.plugin.ml_api`, ``Node.t`` in conftest.py).
"""
from __future__ import annotations

import hashlib
import io
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

WORDS = ("apple banana cherry grape lemon mango orange peach pear plum red green yellow sweet sour fresh "
         "dry juice pie tree seed fruit salad cake bread quick brown fox dog cat search rank model great "
         "good bad awful creme peche").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
# per-word bonus for appearing in the document (doc-only prior, like "quality" words)
BONUS = {"great": 2.0, "good": 1.0, "bad": -1.0, "awful": -2.0}


def vocab() -> dict[str, int]:
    return {w: i for i, w in enumerate(SPECIAL + list(WORDS))}


def _is_punct(ch: str) -> bool:
    """BERT's punctuation: ASCII symbols plus every Unicode P* character."""
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 \
        or unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                             (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                             (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def bert_words(text: str) -> list[str]:
    """BertNormalizer (clean text, CJK split, strip accents, lowercase) + BertPreTokenizer, in plain Python
    (literal special tokens such as "[CLS]" inside a text are not handled: keep them out of test texts)."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"):
            continue
        out.append(" " if ch in "\t\n\r" or unicodedata.category(ch) == "Zs"
                   else f" {ch} " if _is_cjk(cp) else ch)
    norm = "".join(c for c in unicodedata.normalize("NFD", "".join(out)) if unicodedata.category(c) != "Mn").lower()
    words: list[str] = []
    for chunk in norm.split():
        cur = ""
        for ch in chunk:
            if _is_punct(ch):
                words += [cur, ch] if cur else [ch]
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def reference_score(query: str, doc: str) -> float:
    """What the tiny model computes, in plain Python (words outside the vocabulary are [UNK])."""
    v = vocab()
    tok = lambda s: [w if w in v else "[UNK]" for w in bert_words(s)]  # noqa: E731
    q, d = tok(query), tok(doc)
    real = lambda w: w not in SPECIAL  # noqa: E731
    overlap = sum(1.0 for w in d if real(w) and w in {x for x in q if real(x)})
    # doc segment tokens = doc words + final [SEP]
    bonus = sum(BONUS.get(w, 0.0) for w in d) / (len(d) + 1 + 1)
    return overlap + bonus


def build_tokenizer_json(max_length: int = 128) -> str:
    """The same shape of tokenizer.json as distilrank's students: WordLevel + BertNormalizer +
    BertPreTokenizer + pair template ``[CLS] $A [SEP] $B:1 [SEP]:1`` + longest-first truncation."""
    from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.processors import TemplateProcessing

    v = vocab()
    tk = Tokenizer(WordLevel(vocab=v, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                               lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", v["[CLS]"]), ("[SEP]", v["[SEP]"])])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tk.enable_truncation(max_length=max_length, strategy="longest_first")
    return tk.to_str()


def build_onnx(path: Path) -> None:
    """Export the tiny cross-encoder: three int64 inputs [batch, seq] -> float32 logits [batch, 1]."""
    import onnx
    import torch

    v = vocab()
    n = len(v)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.onehot = torch.nn.Embedding(n, n)
            self.bonus = torch.nn.Embedding(n, 1)
            with torch.no_grad():
                eye = torch.eye(n)
                for s in SPECIAL:  # special tokens never count as overlap
                    eye[v[s], v[s]] = 0.0
                self.onehot.weight.copy_(eye)
                self.bonus.weight.zero_()
                for w, b in BONUS.items():
                    self.bonus.weight[v[w], 0] = b

        def forward(self, input_ids, attention_mask, token_type_ids):
            mask = attention_mask.to(torch.float32)
            seg_b = token_type_ids.to(torch.float32) * mask           # document tokens
            seg_a = (1.0 - token_type_ids.to(torch.float32)) * mask   # query tokens
            oh = self.onehot(input_ids)                               # [B, S, V]
            q_present = torch.clamp((oh * seg_a.unsqueeze(-1)).sum(1), max=1.0)  # [B, V]
            d_counts = (oh * seg_b.unsqueeze(-1)).sum(1)              # [B, V]
            overlap = (q_present * d_counts).sum(-1, keepdim=True)    # [B, 1]
            bonus = (self.bonus(input_ids).squeeze(-1) * seg_b).sum(-1, keepdim=True)
            bonus = bonus / (seg_b.sum(-1, keepdim=True) + 1.0)
            return overlap + bonus

    model = Tiny().eval()
    ids = torch.tensor([[2, 5, 3, 5, 6, 3]], dtype=torch.int64)
    dummy = (ids, torch.ones_like(ids), torch.tensor([[0, 0, 0, 1, 1, 1]], dtype=torch.int64))
    buf = io.BytesIO()
    import warnings
    export_kwargs = dict(input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                         dynamic_axes={k: {0: "batch", 1: "seq"} for k in
                                       ("input_ids", "attention_mask", "token_type_ids")} | {"logits": {0: "batch"}},
                         opset_version=17, do_constant_folding=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the point here
        try:
            torch.onnx.export(model, dummy, buf, dynamo=False, **export_kwargs)
        except TypeError:  # torch without the dynamo argument
            torch.onnx.export(model, dummy, buf, **export_kwargs)
    proto = onnx.load_from_string(buf.getvalue())
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


@dataclass
class ModelZip:
    path: Path
    sha256: str
    size: int


def build_tiny_cross_encoder(out_dir: Path, name: str = "tiny-cross-encoder") -> ModelZip:
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    build_onnx(onnx_path)
    zpath = out_dir / f"{name}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(onnx_path, f"{name}.onnx")
        zf.writestr("tokenizer.json", build_tokenizer_json())
    data = zpath.read_bytes()
    return ModelZip(zpath, hashlib.sha256(data).hexdigest(), len(data))
