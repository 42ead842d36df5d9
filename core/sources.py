"""One input data file as a setting (:class:`DataSource`, the ``[data]`` / ``[[transfer]]`` tables and the column
flags of every command) and :func:`read_source`, which reads it into :class:`~distilrank.pairs.Pairs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilrank.pairs import Pairs
from distilrank.settings import setting

FORMATS = ("auto", "jsonl", "csv", "tsv", "parquet", "amazon-reviews")


@dataclass
class DataSource:
    """One input file (or directory for ``format = "amazon-reviews"``).

    ``use = "train"`` instead of ``path`` reuses the labeled training rows without their labels (transfer sets only).
    """

    path: str = setting("", help="input file, or directory for format amazon-reviews")
    format: str = setting("auto", help="file format (auto: from the extension; a directory is amazon-reviews)", choices=FORMATS)
    query_field: str = setting("query", help="query column ('' = single-text mode, query empty)")
    text_field: str = setting("text", help="text/title column")
    label_field: str = setting("label", help="label column ('' = unlabeled)")
    limit: int | None = setting(None, help="read only the first N rows (none: all)")
    sentences: bool = setting(True, help="amazon-reviews: one row per review sentence (false: one row per review)")
    use: str = setting("", help="'train': reuse the labeled training rows without labels (transfer sources only)")


def read_source(source: DataSource | str | Path, *, require_labels: bool = False, **fields: Any) -> Pairs:
    """The rows of one data source: a :class:`DataSource`, or a path with ``DataSource`` fields as keywords
    (``read_source("dev.tsv", query_field="", text_field="sentence")``).  Amazon-review directories are split
    into sentences unless ``sentences=False``.  Raises :class:`~distilrank.errors.DataError` naming the file and line."""
    from distilrank.formats.amazon_reviews import read_amazon_reviews
    from distilrank.formats.pairs import read_pairs

    src = source if isinstance(source, DataSource) else DataSource(path=str(source), **fields)
    if src.format == "amazon-reviews" or (src.format == "auto" and Path(src.path).is_dir()):
        return read_amazon_reviews(src.path, sentences=src.sentences, limit=src.limit)
    return read_pairs(src.path, query_field=src.query_field or None, text_field=src.text_field,
                      label_field=src.label_field or None, format=src.format, require_labels=require_labels, limit=src.limit)
