"""Score (query, document) pairs with a model zip locally, exactly as ML Commons does (the reference for parity).

ML Commons' TEXT_SIMILARITY path tokenises each ``(query_text, doc)`` pair with the zip's ``tokenizer.json``
(``encode(query, doc)``, no padding), runs the ONNX graph on ``[1, seq]`` and returns element 0 of the output:
the raw logit. :class:`LocalScorer` does the same with ONNX Runtime and the ``tokenizers`` library.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np

from distilrank.pairs import Pairs
from distilrank.plugin.serving_contract import onnx_session, score_like_ml_commons


class LocalScorer:
    """ONNX Runtime session + tokenizer of one model zip. ``score`` returns float32 logits, one per document."""

    def __init__(self, zip_path: str | Path, threads: int = 1):
        from tokenizers import Tokenizer

        self.zip_path = Path(zip_path)
        with zipfile.ZipFile(self.zip_path) as zf, tempfile.TemporaryDirectory(prefix="distilrank-score-") as tmp:
            onnx_name = next(n for n in zf.namelist() if n.endswith(".onnx"))
            zf.extract(onnx_name, tmp)
            self.session = onnx_session(Path(tmp) / onnx_name, threads=threads)
            self.tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode("utf-8"))

    def score(self, query: str, docs: list[str]) -> np.ndarray:
        """Logits ``[len(docs)]`` for ``query`` against each document (same scale as the node's ``_score``)."""
        return score_like_ml_commons(self.session, self.tokenizer, Pairs([query] * len(docs), list(docs)))


def score_with_zip(zip_path: str | Path, query: str, docs: list[str]) -> list[float]:
    """One-shot :meth:`LocalScorer.score` as a list of floats."""
    return [float(x) for x in LocalScorer(zip_path).score(query, docs)]
