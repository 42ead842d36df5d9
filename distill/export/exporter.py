"""``distilrank export``: student directory -> model.onnx + tokenizer.json + ML Commons zip + model card.

Steps: export the graph (:mod:`distilrank.distill.export.onnx_graph`), write the serving
``tokenizer.json`` (:mod:`distilrank.distill.export.serving_tokenizer`), run the parity
check (:mod:`distilrank.distill.export.parity`; the export fails if it does not pass),
zip and hash (:mod:`distilrank.plugin.model_zip`), time ONNX Runtime one pair per
call, and write the model card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from distilrank.distill.export.model_card import blend_entry, write_model_card
from distilrank.distill.export.onnx_graph import export_onnx
from distilrank.distill.export.parity import ParityReport, check_parity
from distilrank.distill.export.serving_tokenizer import write_serving_tokenizer
from distilrank.distill.student.store import load_student
from distilrank.errors import DistilRankError
from distilrank.formats.pairs import read_pairs
from distilrank.pairs import Pairs
from distilrank.plugin.blend import BlendSettings
from distilrank.plugin.model_zip import build_model_zip
from distilrank.plugin.serving_contract import describe_interface, ms_per_pair_single_calls, onnx_session


def default_parity_pairs() -> Pairs:
    """The bundled parity sample: 400 SST-2 dev sentences, 400 Icecat (query, title) pairs and edge cases
    (empty, very long, non-ASCII, CJK, emoji, control characters, literal special tokens)."""
    with resources.as_file(resources.files("distilrank.plugin") / "parity_sample.jsonl") as path:
        return read_pairs(path, label_field=None)


@dataclass
class ExportResult:
    out_dir: str
    onnx: str
    tokenizer: str
    zip: str
    sha256: str
    zip_bytes: int
    parity: ParityReport
    interface: dict
    latency: dict
    card_json: str
    card_markdown: str
    precision: str = "fp32"
    quantization: dict | None = None


def _latency(model_path: Path, tokenizer_path: Path, pairs: Pairs) -> dict:
    from tokenizers import Tokenizer

    per_pair = ms_per_pair_single_calls(onnx_session(model_path, threads=1), Tokenizer.from_file(str(tokenizer_path)), pairs, n=100)
    return {"onnx_ms_per_pair_single_call": per_pair, "onnx_ms_per_100_single_calls": 100 * per_pair, "threads": 1,
            "includes_tokenization": True}


def export_student(
    student_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    parity_pairs: Pairs | None = None,
    tolerance: float = 1e-4,
    max_length: int | None = None,
    metrics: dict | None = None,
    quantize: bool = False,
    quality_pairs: Pairs | None = None,
    blend: BlendSettings | dict | None = None,
) -> ExportResult:
    """Export ``student_dir`` into ``out_dir``; raises :class:`DistilRankError` if parity fails (nothing is zipped then).

    With ``quantize``, an int8 graph is also made and shipped instead of the fp32 one only if it passes the
    quality gate on the labeled ``quality_pairs`` (see :mod:`distilrank.distill.export.quantize`). ``blend``
    (checked before anything is written) goes into the model card as ``blend``; ``distilrank plugin register``
    stores it with the model for the rescorer (:mod:`distilrank.plugin.blend`).
    """
    if quantize and (quality_pairs is None or quality_pairs.labels is None):
        raise DistilRankError("int8 quantization needs labeled quality data (--quality-data with labels)")
    blend_card = blend_entry(blend)
    student = load_student(student_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or Path(student_dir).resolve().name
    onnx_path = export_onnx(student.model, out / "model.onnx")
    tok_path = write_serving_tokenizer(Path(student_dir) / "tokenizer.json", out / "tokenizer.json", max_length=max_length)
    pairs = parity_pairs if parity_pairs is not None else default_parity_pairs()
    if max_length:  # the student's own featurisation must truncate like the shipped json
        from distilrank.distill.student.tokenizer import load_tokenizer

        student.tokenizer = load_tokenizer(tok_path)
    parity = check_parity(student, onnx_path, tok_path, pairs, tolerance=tolerance)
    if not parity.passed:
        raise DistilRankError(f"parity check failed: max |torch - onnx| = {parity.max_abs_diff:.3g} > {tolerance:g}; "
                              f"worst pairs: {json.dumps(parity.worst[:3], ensure_ascii=False)}")
    quantization = None
    shipped = onnx_path
    if quantize:
        from distilrank.distill.export.quantize import quantization_decision, quantize_int8

        int8_dir = out / "int8"
        int8_dir.mkdir(exist_ok=True)
        int8_path = quantize_int8(onnx_path, int8_dir / "model.onnx")
        quantization = quantization_decision(onnx_path, int8_path, tok_path, quality_pairs)
        if quantization["kept"]:
            shipped = int8_path
    zip_path = out / f"{name}.zip"
    sha = build_model_zip(shipped, tok_path, zip_path)
    interface = describe_interface(shipped)
    latency = _latency(shipped, tok_path, pairs)
    tok_spec = json.loads(tok_path.read_text(encoding="utf-8"))
    card = {
        "name": name,
        "function_name": "TEXT_SIMILARITY",
        "model_format": "ONNX",
        "interface": interface,
        "tokenizer": {"model": tok_spec["model"]["type"], "vocab_size": len(tok_spec["model"]["vocab"]),
                      "max_length": tok_spec["truncation"]["max_length"]},
        "zip": {"file": zip_path.name, "bytes": zip_path.stat().st_size, "sha256": sha},
        "student": student.model.config.to_dict(),
        "training": {k: v for k, v in student.metadata.items() if k in ("variant", "teachers", "combine", "temperature", "data", "config", "best_epoch", "gold")},
        "metrics": metrics or {},
        "parity": asdict(parity),
        "latency": latency,
        "precision": "int8" if shipped != onnx_path else "fp32",
        "quantization": quantization,
    }
    if blend_card is not None:
        card["blend"] = blend_card
    card_json, card_md = write_model_card(card, out)
    return ExportResult(str(out), str(onnx_path), str(tok_path), str(zip_path), sha, zip_path.stat().st_size, parity,
                        interface, latency, str(card_json), str(card_md), card["precision"], quantization)
