"""Blitzer et al. (2007) Amazon reviews: ``*.review`` pseudo-XML files of ``<review>`` elements.

Each ``<review>`` holds elements such as ``<title>`` and ``<review_text>``; the polarity is in the file name
(``*.positive.review`` / ``*.negative.review``).  Errors name the file and the line of the ``<review>`` tag.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from distilrank.errors import DataError
from distilrank.formats.lines import decoded_lines
from distilrank.formats.sentences import split_sentences
from distilrank.pairs import Pairs

_REVIEW_TAG = re.compile(r"<(/?)review>")


@lru_cache(maxsize=32)
def _element(name: str) -> re.Pattern[str]:
    return re.compile(rf"<{re.escape(name)}>(.*?)</{re.escape(name)}>", re.S)


def _review_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand files and directories (their ``*.review`` files, in name order)."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.review"))
            if not found:
                raise DataError(p, None, "no *.review files in this directory")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise DataError(p, None, "file not found")
    if not files:
        raise DataError("<amazon-reviews>", None, "no review files given")
    return files


def _decode_review_file(path: Path, encoding: str) -> str:
    """The text of ``path``; ``"auto"``: UTF-8, else Latin-1 (the files circulate in both encodings)."""
    if encoding == "auto":
        try:
            return "".join(line for _, line in decoded_lines(path, "utf-8"))
        except DataError:
            encoding = "latin-1"
    return "".join(line for _, line in decoded_lines(path, encoding))


def _review_blocks(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """``(line, body)`` of each ``<review>...</review>`` element; unbalanced tags are errors."""
    counted_to, line = 0, 1  # running line count, so the whole file is scanned once

    def line_at(pos: int) -> int:
        nonlocal counted_to, line
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        return line

    start: int | None = None
    start_line = 0
    count = 0
    for m in _REVIEW_TAG.finditer(text):
        if m.group(1) != "/":
            if start is not None:
                raise DataError(path, start_line, "<review> not closed before the next <review>")
            start, start_line = m.end(), line_at(m.start())
        else:
            if start is None:
                raise DataError(path, line_at(m.start()), "</review> without an opening <review>")
            count += 1
            yield start_line, text[start : m.start()]
            start = None
    if start is not None:
        raise DataError(path, start_line, "<review> not closed at end of file")
    if count == 0:
        raise DataError(path, None, "no <review> elements found (is this a Blitzer .review file?)")


def _element_text(block: str, name: str) -> str | None:
    m = _element(name).search(block)
    return html.unescape(m.group(1)).strip() if m else None


def read_amazon_reviews(
    paths: str | Path | Sequence[str | Path],
    *,
    field: str = "review_text",
    include_title: bool = False,
    sentences: bool = False,
    min_words: int = 3,
    with_labels: bool = False,
    limit: int = 0,
    encoding: str = "auto",
) -> Pairs:
    """Read Blitzer et al. (2007) ``*.review`` pseudo-XML files as single-text pairs.

    Args:
        paths: a file, a directory (its ``*.review`` files in name order), or a list of either.
        field: the element holding the text (``review_text``, ``title``, ...); every
            review must have it.
        include_title: prefix the text with ``"<title>. "`` when the review has a title.
        sentences: emit one row per sentence (:func:`split_sentences`) with at
            least ``min_words`` words, since SST-2 is sentence-level; otherwise
            one row per review.  Reviews with no text yield no rows.
        with_labels: attach 1 for ``*.positive.review`` and 0 for
            ``*.negative.review`` (other names are then an error).
        limit: ``> 0`` stops after that many rows.
        encoding: ``"auto"`` tries UTF-8 and falls back to Latin-1 per file.

    Returns:
        :class:`Pairs` with empty queries; HTML entities decoded, whitespace normalised.

    Raises:
        DataError: missing file, unbalanced ``<review>`` tags, or a review without ``field``.
    """
    files = _review_files(paths)
    texts: list[str] = []
    labels: list[float] = []
    for f in files:
        polarity = 1.0 if ".positive." in f.name else 0.0 if ".negative." in f.name else None
        if with_labels and polarity is None:
            raise DataError(f, None, "cannot tell polarity from the file name (*.positive.review / *.negative.review)")
        for line, block in _review_blocks(f, _decode_review_file(f, encoding)):
            body = _element_text(block, field)
            if body is None:
                raise DataError(f, line, f"review without <{field}>")
            title = _element_text(block, "title") if include_title and field != "title" else None
            text = f"{title}. {body}" if title else body
            if sentences:
                pieces = [s for s in split_sentences(text) if len(s.split()) >= min_words]
            else:
                pieces = [" ".join(text.split())] if text.strip() else []
            for piece in pieces:
                if limit and len(texts) >= limit:
                    break
                texts.append(piece)
                labels.append(polarity or 0.0)
        if limit and len(texts) >= limit:
            break
    source = str(paths) if isinstance(paths, (str, Path)) else ",".join(str(p) for p in paths)
    return Pairs([""] * len(texts), texts, np.asarray(labels, np.float32) if with_labels else None, source=source)
