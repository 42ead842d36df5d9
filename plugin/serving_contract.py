"""The serving contract both halves share, without PyTorch: what a model zip must look like and how ML Commons runs it.

* The ONNX interface ML Commons feeds (``TEXT_SIMILARITY``, ``model_format: ONNX``, 2.12 - 3.8): exactly the inputs
  ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, ``[batch, seq]``, both axes dynamic; ML Commons sends
  ``[1, seq]`` without padding) and one float32 output ``logits`` ``[batch, 1]``, the raw relevance logit; opset <= 17,
  IR version <= 8 (the cluster bundles ONNX Runtime 1.16.3).  :func:`describe_interface` reads a graph,
  :func:`interface_problems` lists every way it breaks that contract.
* How ML Commons scores: one ``(query, doc)`` pair per ONNX Runtime run, ids from the zip's ``tokenizer.json``
  (:func:`score_like_ml_commons`), on a session with one intra-op thread (:func:`onnx_session`).

The exporter (``distilrank.distill.export``, which needs PyTorch) validates every export against this module; the serving side
(``distilrank.plugin.model_package``, ``distilrank.plugin.local_scoring``, ``distilrank.plugin.deploy``) imports only this module.
* The zip's identity: :func:`sha256_file`, the lowercase-hex SHA-256 ML Commons checks (``model_content_hash_value``),
  the one file hash of the project.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from distilrank.pairs import Pairs
from distilrank.timing import best_of_seconds

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
MAX_OPSET = 17
MAX_IR_VERSION = 8


def update_sha256(h: hashlib._Hash, path: str | Path, chunk: int = 1 << 20) -> hashlib._Hash:
    """Feed the bytes of the file at ``path`` into the running hash ``h`` in ``chunk``-byte blocks; returns ``h``."""
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Lowercase hex SHA-256 of a file, read in ``chunk``-byte blocks (memory stays flat for any size)."""
    return update_sha256(hashlib.sha256(), path, chunk).hexdigest()


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
        "parameters": int(sum(math.prod(i.dims) for i in proto.graph.initializer)),
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


def onnx_session(model_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads (ML Commons runs one pair at a time)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def score_like_ml_commons(session: ort.InferenceSession, tokenizer: Tokenizer, pairs: Pairs) -> np.ndarray:
    """Logits ``[N]`` float32, one ``(query, doc)`` pair per run, as ML Commons does it."""
    out = np.empty(len(pairs), dtype=np.float32)
    for i, (q, d) in enumerate(pairs):
        enc = tokenizer.encode(q, d)
        feed = {"input_ids": np.array([enc.ids], dtype=np.int64), "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([enc.type_ids], dtype=np.int64)}
        outputs = session.run(None, feed)
        out[i] = outputs[0].reshape(-1)[0]  # ML Commons takes element 0 of every output
    return out


def ms_per_pair_single_calls(session: ort.InferenceSession, tokenizer: Tokenizer, pairs: Pairs, *, n: int = 100, repeats: int = 5) -> float:
    """Best-of-``repeats`` milliseconds per pair, scoring the first ``n`` pairs one per call (tokenisation included)."""
    sample = pairs.select(range(min(n, len(pairs))))
    best = best_of_seconds(lambda: score_like_ml_commons(session, tokenizer, sample), repeats, warmup=1)
    return 1000 * best / len(sample)
