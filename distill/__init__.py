"""distilrank.distill: distil BERT-family cross-encoders into a tiny n-gram student."""

__version__ = "0.1.0"
