"""distilrank.distill.ranking: the product-search experiment (catalogue pools, teachers, folds, live serving)."""
