"""Reading and writing (query, text[, label]) pairs."""

from distill.data.pairs import Pairs

__all__ = ["Pairs"]
