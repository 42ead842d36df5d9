"""A regex sentence splitter for review prose (no model, no language data)."""

from __future__ import annotations

import re

_SENTENCE_BREAK = re.compile(
    r"""(?:(?<=[.!?])|(?<=[.!?]["')\]]))\s+(?=["'(\[]?[A-Z0-9])   # end punctuation, space, capital or digit
      | \s*\n[ \t]*\n\s*                                          # blank line (paragraph)
      | [ \t]*\n[ \t]*(?=["'(\[]?[A-Z0-9*•-])                      # line break before a capital / list item
    """,
    re.X,
)
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "jr.", "sr.", "no.", "e.g.", "i.e.", "prof.", "mt."}


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences with a simple regex; whitespace inside each sentence is normalised.

    A boundary is ``.``/``!``/``?`` (optionally followed by a closing quote or
    bracket) then whitespace then a capital letter or digit; a blank line; or a
    line break before a capital, digit or list bullet.  A break after a common
    abbreviation (``Mr.``, ``e.g.``) or a single initial (``C.``) is undone.
    Empty pieces are dropped.
    """
    pieces = [" ".join(p.split()) for p in _SENTENCE_BREAK.split(text)]
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out:
            last = out[-1].rsplit(" ", 1)[-1].lower()
            if last in _ABBREVIATIONS or (len(last) == 2 and last[0].isalpha() and last[1] == "."):
                out[-1] = f"{out[-1]} {piece}"
                continue
        out.append(piece)
    return out
