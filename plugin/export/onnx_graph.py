"""Write the student as an ONNX graph with exactly the interface ML Commons feeds.

Contract (ML Commons 2.12 - 3.8, ``TEXT_SIMILARITY``, ``model_format: ONNX``):

* inputs: exactly ``input_ids``, ``attention_mask``, ``token_type_ids``, int64,
  shape ``[batch, seq]`` with both axes dynamic (ML Commons sends ``[1, seq]``, no padding);
* output: exactly one float32 tensor ``logits`` of shape ``[batch, 1]``, the raw
  relevance logit (no sigmoid; ML Commons returns it as ``_score``);
* opset <= 17 and IR version <= 8 (the cluster bundles ONNX Runtime 1.16.3, 1.14 on 2.12-2.14).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from distill.atomic import atomic_path
from distill.errors import DistilRankError
from distill.student.model import StudentModel

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
MAX_OPSET = 17
MAX_IR_VERSION = 8


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


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def describe_interface(path: str | Path) -> dict:
    """Inputs, outputs, opsets, IR version and operator set of an ONNX file (JSON-serialisable)."""
    proto = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}
    dtype = onnx.helper.tensor_dtype_to_np_dtype
    return {
        "ir_version": proto.ir_version,
        "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "inputs": [{"name": i.name, "dtype": str(dtype(i.type.tensor_type.elem_type)), "shape": _dims(i)}
                   for i in proto.graph.input if i.name not in initializers],
        "outputs": [{"name": o.name, "dtype": str(dtype(o.type.tensor_type.elem_type)), "shape": _dims(o)} for o in proto.graph.output],
        "operators": sorted({n.op_type for n in proto.graph.node}),
        "parameters": int(sum(int(torch.tensor(i.dims).prod()) if len(i.dims) else 1 for i in proto.graph.initializer)),
    }


def interface_problems(info: dict) -> list[str]:
    """Every way ``info`` (from :func:`describe_interface`) breaks the ML Commons contract; empty if none."""
    problems = []
    names = [i["name"] for i in info["inputs"]]
    if sorted(names) != sorted(INPUT_NAMES):
        problems.append(f"inputs are {names}, expected exactly {list(INPUT_NAMES)}")
    for i in info["inputs"]:
        if i["dtype"] != "int64":
            problems.append(f"input {i['name']} is {i['dtype']}, expected int64")
        if len(i["shape"]) != 2 or any(isinstance(d, int) and d > 0 for d in i["shape"]):
            problems.append(f"input {i['name']} has shape {i['shape']}, expected two dynamic axes [batch, sequence]")
    if len(info["outputs"]) != 1:
        problems.append(f"{len(info['outputs'])} outputs, expected exactly one")
    for o in info["outputs"]:
        if o["dtype"] != "float32":
            problems.append(f"output {o['name']} is {o['dtype']}, expected float32")
        if len(o["shape"]) != 2 or o["shape"][1] != 1:
            problems.append(f"output {o['name']} has shape {o['shape']}, expected [batch, 1]")
    if info["opsets"].get("ai.onnx", 0) > MAX_OPSET:
        problems.append(f"opset {info['opsets']['ai.onnx']} > {MAX_OPSET}")
    if set(info["opsets"]) - {"ai.onnx"}:
        problems.append(f"custom operator domains {sorted(set(info['opsets']) - {'ai.onnx'})} are not available in ML Commons")
    if info["ir_version"] > MAX_IR_VERSION:
        problems.append(f"IR version {info['ir_version']} > {MAX_IR_VERSION}")
    return problems
