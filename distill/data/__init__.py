"""Reading and writing (query, text[, label]) pairs."""

from distilrank.distill.data.pairs import Pairs

__all__ = ["Pairs"]
