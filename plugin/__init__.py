"""distilrank.plugin: serve a distilled student as an OpenSearch ML Commons ranking stage."""
