"""One entry point for teacher scoring on either engine (:class:`~distilrank.distill.teacher.engine_config.EngineConfig`).

``local``: :func:`distilrank.distill.teacher.scoring.score_transfer_set` in this process (a transfer set is read into
memory first: the default for small sets).  ``ray``: :func:`distilrank.distill.teacher.ray_scoring.score_transfer_set_ray`
(a pair table is first written as a transfer set in ``out_dir/transfer-set``).  Both write ``logits.npy`` and
``meta.json`` in ``out_dir`` (read with :func:`distilrank.distill.teacher.scoring.load_logits`) and return a report with
``rows_scored``, ``rows_per_second`` and ``complete``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distilrank.distill.config import TeacherConfig
from distilrank.distill.data.transfer import TransferSet, transfer_set_from_pairs
from distilrank.distill.teacher.engine_config import EngineConfig
from distilrank.pairs import Pairs


def score_with_engine(engine: EngineConfig, teacher_path: str | Path, source: Pairs | TransferSet, out_dir: str | Path, *,
                      batch_size: int = TeacherConfig.score_batch_size, max_length: int = TeacherConfig.max_length,
                      device: str = "auto", precision: str = "auto", progress: bool | None = None,
                      log: Callable[[str], None] | None = None) -> dict:
    """Score every row of ``source`` with the teacher at ``teacher_path`` into ``out_dir`` on ``engine``."""
    engine.check()
    if engine.engine == "local":
        from distilrank.distill.teacher.scoring import score_transfer_set

        pairs = source.to_pairs() if isinstance(source, TransferSet) else source
        rep = score_transfer_set(teacher_path, pairs, out_dir, batch_size=batch_size, max_length=max_length, device=device,
                                 precision=precision, progress=progress)
        return {"engine": "local", **rep}
    from distilrank.distill.teacher.ray_scoring import score_transfer_set_ray

    ts = source if isinstance(source, TransferSet) else transfer_set_from_pairs(source, Path(out_dir) / "transfer-set")
    return score_transfer_set_ray(teacher_path, ts, out_dir, engine, batch_size=batch_size, max_length=max_length, device=device,
                                  precision=precision, log=log)
