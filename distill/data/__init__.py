"""Reading and writing (query, text[, label]) pairs."""

from distilrank.pairs import Pairs

__all__ = ["Pairs"]
