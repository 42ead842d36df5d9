"""Score pairs with whatever tokenizers/onnxruntime this interpreter has (run under old versions by the tests).

Usage: python score_with_runtime.py MODEL.onnx TOKENIZER.json PAIRS.jsonl
Prints JSON: {"tokenizers": ver, "onnxruntime": ver|null, "ids": [[...], ...], "scores": [...]|null}.
Only the standard library, tokenizers, numpy and (optionally) onnxruntime are used, one pair per run as ML Commons does.
"""

import json
import sys

import numpy as np
import tokenizers

model_path, tokenizer_path, pairs_path = sys.argv[1:4]
tok = tokenizers.Tokenizer.from_file(tokenizer_path)
pairs = [json.loads(line) for line in open(pairs_path, encoding="utf-8") if line.strip()]
encodings = [tok.encode(p["query"], p["text"]) for p in pairs]
result = {"tokenizers": tokenizers.__version__, "onnxruntime": None, "ids": [e.ids for e in encodings],
          "type_ids": [e.type_ids for e in encodings], "scores": None}
try:
    import onnxruntime as ort
except ImportError:
    ort = None
if ort is not None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    scores = []
    for e in encodings:
        feed = {"input_ids": np.array([e.ids], dtype=np.int64), "attention_mask": np.array([e.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids], dtype=np.int64)}
        scores.append(float(session.run(None, feed)[0].reshape(-1)[0]))
    result["onnxruntime"], result["scores"] = ort.__version__, scores
print(json.dumps(result))
