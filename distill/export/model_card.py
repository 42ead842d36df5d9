"""Model card of an exported student: what it was trained on, how good and fast it is, how to call it."""

from __future__ import annotations

from pathlib import Path

from distilrank.atomic import atomic_open, write_json
from distilrank.errors import DistilRankError
from distilrank.plugin.blend import BlendSettings


def blend_entry(blend: BlendSettings | dict | None) -> dict | None:
    """The card's optional ``blend`` entry (:meth:`BlendSettings.to_dict`) from settings or their dict, validated;
    ``None`` stays ``None``. ``distilrank plugin register`` stores it with the model in the rescorer's upload record,
    and the rescorer blends with it when a search does not set the values itself."""
    if blend is None:
        return None
    if isinstance(blend, dict):
        try:
            blend = BlendSettings.from_dict(blend)
        except (TypeError, ValueError) as exc:
            raise DistilRankError(f"bad blend settings {blend!r}: {exc}") from None
    if not isinstance(blend, BlendSettings):
        raise DistilRankError(f"blend must be BlendSettings or a dict, got {type(blend).__name__}")
    return blend.to_dict()


def _metric_text(value: object) -> str:
    """``{"accuracy": 0.84751, "accuracy_ci95": [..]}`` -> ``accuracy 0.8475, accuracy_ci95 [0.8234, 0.8704]``."""
    def one(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, list):
            return "[" + ", ".join(one(x) for x in v) + "]"
        return str(v)

    if isinstance(value, dict):
        return ", ".join(f"{k} {one(v)}" for k, v in value.items())
    return one(value)


def write_model_card(card: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``model-card.json`` and a readable ``model-card.md``."""
    out = Path(out_dir)
    write_json(out / "model-card.json", card)
    iface = card["interface"]
    lines = [
        f"# {card['name']}",
        "",
        "Distilled n-gram student (BERT2DNN) for OpenSearch ML Commons, `function_name: TEXT_SIMILARITY`, `model_format: ONNX`.",
        "",
        "## Interface",
        "",
        "| tensor | dtype | shape |",
        "|---|---|---|",
        *[f"| input `{i['name']}` | {i['dtype']} | {i['shape']} |" for i in iface["inputs"]],
        *[f"| output `{o['name']}` | {o['dtype']} | {o['shape']} |" for o in iface["outputs"]],
        "",
        f"Opset {iface['opsets'].get('ai.onnx')}, IR version {iface['ir_version']}, {iface['parameters']:,} parameters. "
        "The output is a raw logit (higher = more relevant; no sigmoid), which ML Commons returns as the score.",
        f"Tokenizer: `tokenizer.json` ({card['tokenizer']['model']}, {card['tokenizer']['vocab_size']:,} tokens, truncation "
        f"{card['tokenizer']['max_length']} longest-first).",
        "",
        "## Artifact",
        "",
        f"* zip: `{card['zip']['file']}` ({card['zip']['bytes']:,} bytes)",
        f"* sha256 (`model_content_hash_value`): `{card['zip']['sha256']}`",
        "",
        "## Training",
        "",
        *[f"* {k}: {v}" for k, v in card.get("training", {}).items()],
        "",
        "## Quality",
        "",
        *([f"* {k}: {_metric_text(v)}" for k, v in card["metrics"].items()] if card.get("metrics") else ["* (no metrics given at export)"]),
        "",
        "## Parity and latency (measured at export)",
        "",
        f"* PyTorch vs ONNX Runtime (one pair per call, ids from the exported tokenizer.json): max |diff| "
        f"{card['parity']['max_abs_diff']:.2e} over {card['parity']['n_pairs']} pairs (tolerance {card['parity']['tolerance']:g})",
        f"* ONNX Runtime, 1 thread, one pair per call: {card['latency']['onnx_ms_per_pair_single_call']:.3f} ms/pair "
        f"({card['latency']['onnx_ms_per_100_single_calls']:.1f} ms per 100 pairs, tokenisation included)",
        f"* shipped precision: {card.get('precision', 'fp32')}",
        "",
    ]
    if card.get("blend"):
        b = card["blend"]
        lines += ["## Rescorer blend (stored with the model by `distilrank plugin register`)", "",
                  f"* `{b['query_weight']} * {b['normalization']}(first pass) + {b['model_weight']} * {b['normalization']}(logit)` "
                  "per shard window; a search body's `score_mode`, `query_weight`, `model_weight`, `normalization` override it", ""]
    q = card.get("quantization")
    if q:
        lines += ["## int8 quantization gate", "",
                  f"* accuracy fp32 {q['fp32_accuracy']:.2f}% vs int8 {q['int8_accuracy']:.2f}% on {q['n']} labeled pairs "
                  f"(loss {q['loss_points']:.2f} points, limit {q['max_loss_points']})",
                  f"* one pair per call: fp32 {q['fp32_ms_per_pair']:.3f} ms vs int8 {q['int8_ms_per_pair']:.3f} ms ({q['speedup']:.2f}x)",
                  f"* size: fp32 {q['fp32_bytes']:,} bytes, int8 {q['int8_bytes']:,} bytes",
                  f"* decision: {'int8 shipped' if q['kept'] else 'fp32 kept'}", ""]
    with atomic_open(out / "model-card.md") as fh:
        fh.write("\n".join(lines))
    return out / "model-card.json", out / "model-card.md"
