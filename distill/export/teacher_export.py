"""``distilrank export --teacher``: a fine-tuned BERT cross-encoder -> ML Commons ``TEXT_SIMILARITY`` package.

The teacher checkpoint (a ``save_pretrained`` directory from :mod:`distilrank.distill.teacher.finetune`: model, fast
tokenizer, ``distilrank_teacher.json``) becomes, in ``out_dir``::

    model.onnx        opset 17, inputs input_ids / attention_mask / token_type_ids (int64 [batch, sequence],
                      both axes dynamic), output logits float32 [batch, 1] (the raw logit, no sigmoid)
    tokenizer.json    the checkpoint's own fast tokenizer, padding off, truncation longest-first at the
                      length the teacher was fine-tuned with (``distilrank_teacher.json``'s max_length, else 128)
    <name>.zip        flat zip of the two (distilrank.plugin.model_zip), with its sha256
    model-card.json   interface, tokenizer, zip hash, parity, latency, where the teacher came from

so the same teacher that scored the transfer set can rerank on the cluster (a ceiling for the student, and the
"teacher" arm of an A/B test).  The export fails before anything is zipped when PyTorch (the padded, batched
scorer of :class:`distilrank.distill.teacher.model.Teacher`) and ONNX Runtime (one pair per call, ids from the exported
tokenizer.json, the ML Commons way) disagree by more than ``tolerance`` on any parity pair.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from distilrank.atomic import write_json
from distilrank.distill.export.model_card import blend_entry
from distilrank.distill.export.onnx_graph import export_module_onnx
from distilrank.distill.export.parity import check_parity
from distilrank.distill.export.serving_tokenizer import write_serving_tokenizer
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs
from distilrank.plugin.blend import BlendSettings
from distilrank.plugin.model_zip import build_model_zip
from distilrank.plugin.serving_contract import describe_interface, ms_per_pair_single_calls, onnx_session

DEFAULT_MAX_LENGTH = 128


def default_teacher_parity_pairs(n_real: int = 40) -> Pairs:
    """The first ``n_real`` real Icecat (query, product title) pairs of the bundled parity sample plus all its edge
    cases (empty, very long, non-ASCII, CJK, emoji, control characters, literal special tokens)."""
    from importlib import resources

    rows = [json.loads(line) for line in (resources.files("distilrank.plugin") / "parity_sample.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    keep = [r for r in rows if r.get("source") == "icecat" and r.get("query")][:n_real] + [r for r in rows if r.get("source") == "edge"]
    return Pairs([r["query"] for r in keep], [r["text"] for r in keep], source="bundled parity sample (Icecat + edge cases)")


class _Logits(torch.nn.Module):
    """``(input_ids, attention_mask, token_type_ids) -> logits [batch, 1]`` of a sequence-classification model."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _teacher_meta(checkpoint: Path) -> dict:
    from distilrank.distill.teacher.model import TEACHER_META

    meta = checkpoint / TEACHER_META
    return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}


def _check_checkpoint_files(ckpt: Path) -> None:
    if not (ckpt / "config.json").exists():
        raise DistilRankError(f"{ckpt}: not a cross-encoder checkpoint directory (no config.json)")
    if not (ckpt / "tokenizer.json").exists():
        raise DistilRankError(f"{ckpt}: no tokenizer.json (ML Commons needs the fast tokenizer's json; "
                              "save the teacher with a fast tokenizer)")


def _load_exportable(ckpt: Path, length: int):
    """The checkpoint as a one-logit BERT-family classifier with eager attention, checked for what ML Commons feeds."""
    from transformers import AutoModelForSequenceClassification

    # eager attention: the TorchScript exporter traces it into plain MatMul/Softmax ops
    model = AutoModelForSequenceClassification.from_pretrained(str(ckpt), local_files_only=True, attn_implementation="eager")
    config = model.config
    if config.num_labels != 1:
        raise DistilRankError(f"{ckpt}: a cross-encoder teacher has one output logit, this checkpoint has {config.num_labels}")
    if int(getattr(config, "type_vocab_size", 0) or 0) < 2:
        raise DistilRankError(f"{ckpt}: model type {config.model_type!r} has no token type embeddings; ML Commons feeds "
                              "token_type_ids, so only BERT-family cross-encoders can be exported")
    max_pos = int(getattr(config, "max_position_embeddings", 512) or 512)
    if length > max_pos:
        raise DistilRankError(f"{ckpt}: max_length {length} exceeds the model's {max_pos} position embeddings")
    return model


def _trace_onnx(model, ckpt: Path, onnx_out: Path) -> Path:
    """Trace ``model`` to ONNX on a small ``[CLS] q [SEP] d [SEP]`` example (ids valid for the checkpoint's vocabulary)."""
    vocab = int(model.config.vocab_size)
    tok_json = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))
    specials = {t["content"]: t["id"] for t in tok_json.get("added_tokens", [])}
    cls, sep = specials.get("[CLS]", 1), specials.get("[SEP]", 2)
    ids = torch.tensor([[cls, 5, 6, sep, 7, 8, 9, sep]], dtype=torch.long).clamp(max=vocab - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on HF's mask helpers: shapes are dynamic, the values constant
        return export_module_onnx(_Logits(model), ids, onnx_out)


def _teacher_card(name: str, ckpt: Path, config, meta: dict, tok_path: Path, zip_path: Path, sha: str, interface: dict,
                  parity, latency: dict, length: int) -> dict:
    """The ``model-card.json`` of an exported teacher."""
    spec = json.loads(tok_path.read_text(encoding="utf-8"))
    return {
        "name": name, "kind": "cross-encoder teacher", "function_name": "TEXT_SIMILARITY", "model_format": "ONNX",
        "interface": interface,
        "tokenizer": {"model": spec["model"]["type"], "vocab_size": len(spec["model"].get("vocab", {})), "max_length": length},
        "zip": {"file": zip_path.name, "bytes": zip_path.stat().st_size, "sha256": sha},
        "teacher": {"checkpoint": str(ckpt.resolve()), "model_type": config.model_type, "layers": config.num_hidden_layers,
                    "hidden": config.hidden_size, "parameters": interface["parameters"]},
        "training": {k: v for k, v in meta.items() if k in ("base_model", "max_length", "label_mode", "max_label", "num_layers", "step", "metrics")},
        "parity": asdict(parity), "latency": latency, "precision": "fp32", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_cross_encoder_teacher(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    max_length: int | None = None,
    parity_pairs: Pairs | None = None,
    tolerance: float = 1e-4,
    blend: BlendSettings | dict | None = None,
) -> dict:
    """Export the cross-encoder in ``checkpoint_dir`` into ``out_dir``; raises :class:`DistilRankError` if parity
    fails (nothing is zipped then).  ``max_length`` overrides the truncation length of the checkpoint's
    ``distilrank_teacher.json`` (default 128).  ``parity_pairs`` default: :func:`default_teacher_parity_pairs`.
    ``blend``: the rescorer blend settings written into the model card (as :func:`export_student` does).

    Returns ``{"out_dir", "onnx", "tokenizer", "zip", "sha256", "zip_bytes", "max_length", "parity", "interface",
    "latency", "card_json"}`` (JSON-serialisable).
    """
    from tokenizers import Tokenizer

    from distilrank.distill.teacher.model import load_teacher

    blend_card = blend_entry(blend)
    ckpt = Path(checkpoint_dir)
    _check_checkpoint_files(ckpt)
    meta = _teacher_meta(ckpt)
    length = int(max_length or meta.get("max_length") or DEFAULT_MAX_LENGTH)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or (ckpt.parent.name if ckpt.name == "best" else ckpt.name)

    model = _load_exportable(ckpt, length)
    config = model.config
    onnx_path = _trace_onnx(model, ckpt, out / "model.onnx")
    del model
    tok_path = write_serving_tokenizer(ckpt / "tokenizer.json", out / "tokenizer.json", max_length=length)

    pairs = parity_pairs if parity_pairs is not None else default_teacher_parity_pairs()
    if len(pairs) == 0:
        raise DistilRankError("the teacher parity check needs at least one pair")
    teacher = load_teacher(ckpt, device="cpu", max_length=length, precision="no")
    parity = check_parity(_PairScorer(teacher), onnx_path, tok_path, pairs, tolerance=tolerance)
    if not parity.passed:
        raise DistilRankError(f"teacher parity check failed: max |torch - onnx| = {parity.max_abs_diff:.3g} > {tolerance:g}; "
                              f"worst pairs: {json.dumps(parity.worst[:3], ensure_ascii=False)}")
    zip_path = out / f"{name}.zip"
    sha = build_model_zip(onnx_path, tok_path, zip_path)
    interface = describe_interface(onnx_path)
    per_pair = ms_per_pair_single_calls(onnx_session(onnx_path, threads=1), Tokenizer.from_file(str(tok_path)), pairs,
                                        n=min(len(pairs), 40), repeats=3)
    latency = {"onnx_ms_per_pair_single_call": per_pair, "onnx_ms_per_100_single_calls": 100 * per_pair, "threads": 1,
               "includes_tokenization": True}
    card = _teacher_card(name, ckpt, config, meta, tok_path, zip_path, sha, interface, parity, latency, length)
    if blend_card is not None:
        card["blend"] = blend_card
    write_json(out / "model-card.json", card)
    return {"out_dir": str(out), "onnx": str(onnx_path), "tokenizer": str(tok_path), "zip": str(zip_path), "sha256": sha,
            "zip_bytes": zip_path.stat().st_size, "max_length": length, "parity": asdict(parity), "interface": interface,
            "latency": latency, "card_json": str(out / "model-card.json")}


class _PairScorer:
    """What :func:`distilrank.distill.export.parity.check_parity` calls: ``score(pairs)``, here the teacher's padded batches,
    always encoding (query, document) pairs (ML Commons does, even for an empty query)."""

    def __init__(self, teacher) -> None:
        self.teacher = teacher

    def score(self, pairs: Pairs) -> np.ndarray:
        return self.teacher.score(pairs, batch_size=16, single_text=False)
