"""Optional int8 dynamic quantization of the exported student, kept only when it pays.

Weights of the MLP (``MatMul``/``Gemm``) and of the embedding table (``Gather``)
become int8 (``onnxruntime.quantization.quantize_dynamic``; activations are
quantized at run time with ``DynamicQuantizeLinear``, supported by ONNX
Runtime 1.16).  The quantized graph is kept only if, on a labeled dev set, its
accuracy is at most ``max_loss_points`` percentage points below the fp32 graph
*and* it is faster one pair per call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from distilrank.errors import DistilRankError
from distilrank.metrics import accuracy
from distilrank.pairs import Pairs
from distilrank.plugin.serving_contract import describe_interface, interface_problems, ms_per_pair_single_calls, onnx_session, score_like_ml_commons


def quantize_int8(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write an int8 dynamically quantized copy of ``fp32_path`` and check its interface."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # silence the "pre-processing" advice
    quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Gather"])
    problems = interface_problems(describe_interface(out_path))
    if problems:
        raise DistilRankError(f"{out_path}: quantized graph breaks the ML Commons interface: {'; '.join(problems)}")
    return Path(out_path)


def quantization_decision(fp32_path: str | Path, int8_path: str | Path, tokenizer_path: str | Path, labeled: Pairs,
                          *, max_loss_points: float = 0.2) -> dict:
    """Accuracy (percent) and one-pair-per-call latency of both graphs on ``labeled``; ``kept`` says which wins."""
    if labeled.labels is None:
        raise DistilRankError(f"{labeled.source}: the quantization quality gate needs labels")
    tok = Tokenizer.from_file(str(tokenizer_path))
    fp32, int8 = onnx_session(fp32_path), onnx_session(int8_path)
    z32, z8 = score_like_ml_commons(fp32, tok, labeled), score_like_ml_commons(int8, tok, labeled)
    acc32, acc8 = 100 * accuracy(z32, labeled.labels), 100 * accuracy(z8, labeled.labels)
    ms32 = ms_per_pair_single_calls(fp32, tok, labeled, n=200)
    ms8 = ms_per_pair_single_calls(int8, tok, labeled, n=200)
    loss = acc32 - acc8
    return {"fp32_accuracy": acc32, "int8_accuracy": acc8, "loss_points": loss, "max_loss_points": max_loss_points,
            "fp32_ms_per_pair": ms32, "int8_ms_per_pair": ms8, "speedup": ms32 / ms8,
            "max_abs_diff_vs_fp32": float(np.max(np.abs(z32 - z8))), "n": len(labeled),
            "fp32_bytes": Path(fp32_path).stat().st_size, "int8_bytes": Path(int8_path).stat().st_size,
            "kept": bool(loss < max_loss_points and ms8 < ms32)}
