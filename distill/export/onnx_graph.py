"""Write the student as an ONNX graph with exactly the interface ML Commons feeds (the contract, and its check, are
in the torch-free :mod:`distilrank.plugin.serving_contract`; every export is validated against it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from distilrank.atomic import atomic_path
from distilrank.distill.student.model import StudentModel
from distilrank.errors import DistilRankError
from distilrank.plugin.serving_contract import INPUT_NAMES, MAX_IR_VERSION, MAX_OPSET, OUTPUT_NAME, describe_interface, interface_problems


def export_onnx(model: StudentModel, path: str | Path, *, opset: int = MAX_OPSET) -> Path:
    """Export ``model`` (eval mode) to ``path`` atomically and check the interface."""
    if opset > MAX_OPSET:
        raise DistilRankError(f"opset {opset} > {MAX_OPSET}: ML Commons' ONNX Runtime 1.16 cannot load it")
    model = model.eval()
    ids = torch.tensor([[2, 10, 11, 3, 12, 13, 14, 3]], dtype=torch.long).clamp(max=model.config.vocab_size - 1)
    return export_module_onnx(model, ids, path, opset=opset)


def export_module_onnx(module: torch.nn.Module, ids: torch.Tensor, path: str | Path, *, opset: int = MAX_OPSET) -> Path:
    """Export any ``module(input_ids, attention_mask, token_type_ids) -> logits [batch, 1]`` (eval mode) to
    ``path`` atomically, with the ML Commons interface, and check it.  ``ids``: example ids ``[1, 8]``
    (a query/document pair: token types 0 on the first half, 1 on the second)."""
    if opset > MAX_OPSET:
        raise DistilRankError(f"opset {opset} > {MAX_OPSET}: ML Commons' ONNX Runtime 1.16 cannot load it")
    module = module.eval()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]], dtype=torch.long)
    mask = torch.ones_like(ids)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes[OUTPUT_NAME] = {0: "batch"}
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        # The TorchScript exporter keeps every named input, emits IR 8 at opset 17 and needs no onnxscript.
        torch.onnx.export(module, (ids, mask, types), str(tmp), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        if proto.ir_version > MAX_IR_VERSION:
            proto.ir_version = MAX_IR_VERSION
        proto.producer_name = "distilrank"
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    problems = interface_problems(describe_interface(path))
    if problems:
        raise DistilRankError(f"{path}: exported graph does not match the ML Commons interface: {'; '.join(problems)}")
    return path
