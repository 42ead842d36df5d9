"""Student training that streams: batches come from the memory-mapped token ids and the Parquet logits.

Memory is one block of rows (``block_rows``, default ``batch_size * bucket_batches``, the same window the
in-memory path buckets by length) plus the model, whatever the number of pairs.  Order: each epoch visits
the blocks of rows ``[0, N - n_val)`` in a random order, and inside a block the rows in length-bucketed,
shuffled batches (:mod:`distilrank.distill.data.batching`).  So the transfer set itself should be in random order
(:func:`distilrank.distill.data.transfer.write_transfer_set` keeps the order it is given).  The validation rows are the
last ``n_val = int(N * val_fraction)`` rows (none under 50 rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from distilrank.distill.config import StudentSection
from distilrank.distill.data.batching import shuffled_bucketed_batches
from distilrank.distill.data.token_ids import TokenIds, tokenizer_digest
from distilrank.distill.student.model import StudentConfig, StudentModel
from distilrank.distill.student.predict import batch_tensors, predict_encoded
from distilrank.distill.student.train import StudentTrainResult, _build_model, _fit_soup, _run_settings, _validate_targets

TargetRange = Callable[[int, int], np.ndarray]  # (start, stop) -> float32 targets of rows [start, stop)


class ParquetColumn:
    """Rows ``[start, stop)`` of one numeric column of a Parquet file whose rows are in row-id order
    (the accepted ``logits.parquet`` of :mod:`distilrank.distill.teacher.ray_scoring`); reads only the row groups needed."""

    def __init__(self, path: str | Path, column: str = "logit"):
        import pyarrow.parquet as pq

        self.path, self.column = Path(path), column
        self._file = pq.ParquetFile(self.path)
        sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __call__(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        last = int(np.searchsorted(self._starts, stop, side="left"))
        table = self._file.read_row_groups(list(range(first, max(first + 1, last))), columns=[self.column])
        values = table.column(self.column).to_numpy()
        offset = start - int(self._starts[first])
        return np.asarray(values[offset : offset + stop - start], dtype=np.float32)


def mapped_targets(read: TargetRange, transform: Callable[[np.ndarray], np.ndarray]) -> TargetRange:
    """``read`` followed by ``transform`` (e.g. ``lambda z: soft_targets(z, T)`` on teacher logits)."""
    return lambda start, stop: np.asarray(transform(read(start, stop)), dtype=np.float32)


class StreamedRows:
    """Row source of the student's epoch loop (:class:`distilrank.distill.student.train.TrainRows`) reading blocks from disk."""

    def __init__(self, ids: TokenIds, targets: TargetRange, config: StudentSection, block_rows: int | None = None):
        self.ids, self.targets, self.config = ids, targets, config
        self.block_rows = block_rows or config.batch_size * config.bucket_batches
        self.n_rows = len(ids)
        self.n_val = int(self.n_rows * config.val_fraction) if self.n_rows >= 50 else 0
        self.n_train = self.n_rows - self.n_val

    def _block(self, start: int, stop: int) -> tuple:
        enc = self.ids.block(start, stop)
        targets = self.targets(start, stop)
        if targets.shape != (stop - start,):
            raise ValueError(f"targets for rows {start}..{stop} have shape {targets.shape}, expected ({stop - start},)")
        _validate_targets(targets, self.config.loss, f"rows {start}..{stop} of {self.ids.path}")
        return enc, targets

    def _ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return [(s, min(stop, s + self.block_rows)) for s in range(start, stop, self.block_rows)]

    def n_batches(self) -> int:
        return sum(-(-(b - a) // self.config.batch_size) for a, b in self._ranges(0, self.n_train))

    def batches(self, rng: np.random.Generator) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """One epoch: blocks in random order, length-bucketed shuffled batches inside each block."""
        cfg, ranges = self.config, self._ranges(0, self.n_train)
        for b in rng.permutation(len(ranges)):
            enc, targets = self._block(*ranges[b])
            target_t = torch.from_numpy(targets)
            for sel in shuffled_bucketed_batches(np.arange(len(enc)), enc.lengths, cfg.batch_size, self.block_rows, rng):
                yield batch_tensors(enc, sel), target_t[sel]

    def validation(self, model: StudentModel) -> tuple[np.ndarray, np.ndarray]:
        """Student logits and targets of the last ``n_val`` rows, block by block."""
        preds, targets = [], []
        for a, b in self._ranges(self.n_train, self.n_rows):
            enc, t = self._block(a, b)
            preds.append(predict_encoded(model, enc))
            targets.append(t)
        return np.concatenate(preds), np.concatenate(targets)


def train_student_streamed(
    ids: TokenIds,
    targets: TargetRange,
    tokenizer: Tokenizer,
    out_dir: str | Path,
    *,
    model_config: StudentConfig | None = None,
    config: StudentSection | None = None,
    block_rows: int | None = None,
    resume: bool = True,
    progress: bool | None = None,
    metadata: dict | None = None,
    init_embeddings: np.ndarray | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> StudentTrainResult:
    """:func:`distilrank.distill.student.train.train_student` on token ids on disk (:func:`distilrank.distill.data.token_ids.build_token_ids`)
    and ``targets(start, stop)`` (e.g. :class:`ParquetColumn` of teacher logits through :func:`mapped_targets`).

    Same outputs in ``out_dir`` and the same resumable ``state.pt``; ``tokenizer`` must be the one the ids
    were built with (checked by digest)."""
    config = config or StudentSection()
    if tokenizer_digest(tokenizer) != ids.meta["tokenizer_digest"]:
        raise ValueError(f"{ids.path}: token ids were built with another tokenizer than the one given")
    if len(ids) == 0:
        raise ValueError(f"no training pairs in {ids.path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model_config = model_config or StudentConfig(vocab_size=tokenizer.get_vocab_size())
    rows = StreamedRows(ids, targets, config, block_rows)
    settings = _run_settings(model_config, config, len(ids), streamed={"data": ids.meta["data_digest"], "block_rows": rows.block_rows})
    return _fit_soup(rows, lambda: _build_model(model_config, init_embeddings), tokenizer, out, config, rng=rng,
                     run_settings=settings, resume=resume, progress=progress, metadata=metadata, on_epoch=on_epoch)
