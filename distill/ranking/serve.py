"""The ``[serve]`` stage of a ranking run: each fold's student and teacher exported, then reranking on the real node,
A/B vs BM25 (:mod:`distilrank.plugin.abtest.fold_aliases`).

For every fold directory ``out_dir/folds/fold-<i>/`` (in fold order)::

    1. export   students/distilled          -> <serve.out>/exports/fold-<i>/student/  (ONNX zip, parity-checked)
                teachers/<cross-encoder>/best -> <serve.out>/exports/fold-<i>/teacher/  (skipped when already exported
                                                 from the same files: resumable)
    2. serve, search and undeploy with :func:`distilrank.plugin.abtest.fold_aliases.compare_fold_aliases`: aliases
       {alias_prefix}-fold-<i>-student / -teacher reranking the BM25 top ``serve.depth`` on [document.index_field]
       (the text the models were trained on), the fold's *test* queries (split.json) through the arms bm25 /
       student / teacher, runs cached in <serve.out>/runs/fold-<i>.json

Each fold is exported when the comparison asks for it, so a fold is exported, served and searched before the next
one is exported.  The runs of all folds are evaluated once against the human judgments (grades 3/2/1/0; ``ndcg@k``
with exponential gain, ``ndcg_esci@k`` with :func:`distilrank.grades.esci_gain`) into
``<serve.out>/report.json`` and ``report.html``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from distilrank.atomic import write_json
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.fold_aliases import FoldAliasSetup, FoldModels, alias_names, compare_fold_aliases

Log = Callable[[str], None]
STUDENT_VARIANT = "distilled"


def fold_dirs(out_dir: Path) -> list[tuple[int, Path]]:
    """``[(i, out_dir/folds/fold-<i>)]`` in fold order."""
    found = []
    for d in (Path(out_dir) / "folds").glob("fold-*"):
        suffix = d.name.split("-", 1)[1]
        if d.is_dir() and suffix.isdigit():
            found.append((int(suffix), d))
    return sorted(found)


# --- exports (resumable) -------------------------------------------------------------------

def _fingerprint(src: Path) -> str:
    """Names, sizes and mtimes of every file under ``src``: changes when the model is retrained."""
    h = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(src)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _existing_export(out: Path, fingerprint: str) -> dict | None:
    from distilrank.plugin.serving_contract import sha256_file

    marker = out / "export.json"
    if not marker.exists():
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    zip_path = Path(done.get("zip", ""))
    if done.get("source_fingerprint") != fingerprint or not zip_path.is_file() or sha256_file(zip_path) != done.get("sha256"):
        return None
    return {**done, "reused": True}


def export_fold_models(cfg: RankingRunConfig, fold: int, fdir: Path, out: Path, parity, log: Log) -> dict[str, dict]:
    """Export (or reuse) the fold's distilled student and cross-encoder teacher; ``{"student": {...}, "teacher": {...}}``
    with ``zip``, ``sha256``, ``name``, ``reused``."""
    from distilrank.distill.export.exporter import default_parity_pairs, export_student
    from distilrank.distill.export.teacher_export import default_teacher_parity_pairs, export_cross_encoder_teacher
    from distilrank.pairs import Pairs

    names = alias_names(cfg.serve.alias_prefix, fold)
    ce = next(t for t in cfg.teachers if t.kind == "cross-encoder")
    sources = {"student": fdir / "students" / STUDENT_VARIANT, "teacher": fdir / "teachers" / ce.name / "best"}
    done = {}
    for role, src in sources.items():
        if not src.is_dir():
            raise DistilRankError(f"{fdir}: no {role} to serve at {src} (did the fold finish?)")
        dest = out / role
        fp = _fingerprint(src)
        prev = _existing_export(dest, fp)
        if prev:
            done[role] = prev
            continue
        t0 = time.perf_counter()
        if role == "student":
            res = export_student(src, dest, name=names[role], parity_pairs=Pairs.concat([default_parity_pairs(), parity], source="bundled parity sample + ESCI pairs"),
                                 metrics={"fold": fold, "variant": STUDENT_VARIANT})
            info = {"zip": res.zip, "sha256": res.sha256, "max_abs_diff": res.parity.max_abs_diff, "n_pairs": res.parity.n_pairs,
                    "onnx_ms_per_pair": res.latency["onnx_ms_per_pair_single_call"]}
        else:
            res = export_cross_encoder_teacher(src, dest, name=names[role], parity_pairs=Pairs.concat(
                [parity, default_teacher_parity_pairs()], source="ESCI pairs + bundled Icecat pairs and edge cases"))
            info = {"zip": res["zip"], "sha256": res["sha256"], "max_abs_diff": res["parity"]["max_abs_diff"],
                    "n_pairs": res["parity"]["n_pairs"], "onnx_ms_per_pair": res["latency"]["onnx_ms_per_pair_single_call"]}
        info.update({"name": names[role], "source": str(src), "source_fingerprint": fp})
        write_json(dest / "export.json", info)
        log(f"serve fold {fold}: exported {role} {Path(info['zip']).name} (parity max |torch - onnx| {info['max_abs_diff']:.1e} "
            f"over {info['n_pairs']} pairs, {info['onnx_ms_per_pair']:.2f} ms/pair) in {time.perf_counter() - t0:.0f}s")
        done[role] = {**info, "reused": False}
    return done


def _parity_pairs(queries: list[str], judged: dict[str, dict[str, float]], texts: dict[str, str], n: int = 48):
    """Up to ``n`` real (query, product text) pairs: the fold's test queries with their judged products, round robin."""
    from distilrank.pairs import Pairs

    per_q = [[(q, texts[d]) for d in judged.get(q, {}) if d in texts] for q in queries]
    rows = [r for rank in range(max(map(len, per_q), default=0)) for lst in per_q if rank < len(lst) for r in [lst[rank]]][:n]
    if not rows:
        raise DistilRankError("no judged product of the fold's test queries is in the catalogue: nothing to check parity on")
    return Pairs([q for q, _ in rows], [t for _, t in rows], source="ESCI test queries x judged products")



# --- the stage ---------------------------------------------------------------------------------

def serve_setup(cfg: RankingRunConfig, out_dir: Path) -> FoldAliasSetup:
    """The ``[serve]``, ``[index]``, ``[document]`` and ``[eval]`` settings the comparison on the node needs."""
    sv = cfg.serve
    return FoldAliasSetup(index=cfg.index.name, bm25_fields=tuple(cfg.index.bm25_fields), field=cfg.document.index_field,
                          depth=sv.depth, k=cfg.eval.k, group=sv.group, alias_prefix=sv.alias_prefix, out=Path(out_dir) / sv.out,
                          undeploy_after=sv.undeploy_after, seed=cfg.seed, config=cfg.source, judgments_file=cfg.judgments.path)


def serve_and_compare(cfg: RankingRunConfig, transport, out_dir: Path, log: Log) -> dict:
    """Export, serve and A/B every fold's student and teacher against BM25 on the node; one merged report.

    Returns :func:`distilrank.plugin.abtest.fold_aliases.compare_fold_aliases`'s summary: ``{"report": {"html",
    "json"}, "arms", "folds", "queries", "depth", "k", "ndcg" (mean nDCG@k, exponential gain), "ndcg_esci" (ESCI
    gains), "latency_ms" ({arm: {p50, p99, p50_added, p99_added}}), "reranked_share" ({arm: share of queries whose
    top k differs from bm25's}), "comparisons", "seconds"}``.
    """
    from distilrank.judgments import load_judgments

    folds = fold_dirs(out_dir)
    if not folds:
        raise DistilRankError(f"{Path(out_dir) / 'folds'}: no fold directories to serve")
    if not any(t.kind == "cross-encoder" for t in cfg.teachers):
        raise DistilRankError(f"{cfg.source}: [serve] needs a cross-encoder teacher (the teacher arm)")
    human = load_judgments(cfg.judgments.path, grade_map=cfg.judgments.grade_map or None)
    setup = serve_setup(cfg, out_dir)
    return compare_fold_aliases(transport, setup, _exported_folds(cfg, folds, human, setup.out, log), human, log=log)


def _exported_folds(cfg: RankingRunConfig, folds: list[tuple[int, Path]], human, ab_dir: Path, log: Log) -> Iterator[FoldModels]:
    """Each fold's test queries (split.json) and its exported models, exported when asked for (the catalogue, for the
    parity pairs, is read when the first fold is)."""
    from distilrank.catalogue import read_catalogue

    catalogue = read_catalogue(cfg.catalogue.path, id_field=cfg.catalogue.id_field, limit=cfg.catalogue.limit)
    texts = dict(zip(catalogue.ids, catalogue.texts(cfg.document)))
    for i, fdir in folds:
        split = json.loads((fdir / "split.json").read_text(encoding="utf-8"))
        queries = list(dict.fromkeys(split["test"]))
        missing = [q for q in queries if q not in human]
        if missing:
            raise DistilRankError(f"{fdir / 'split.json'}: test queries without judgments in {cfg.judgments.path}, e.g. {missing[0]!r}")
        exports = export_fold_models(cfg, i, fdir, ab_dir / "exports" / f"fold-{i}",
                                     _parity_pairs(queries, {q: dict(human[q]) for q in queries}, texts), log)
        yield FoldModels(i, queries, exports)


__all__ = ["serve_and_compare", "serve_setup", "export_fold_models", "fold_dirs"]
