"""Offline, cluster-independent A/B testing of rerank pipelines.

One job per module:

* :mod:`.judgments` -- load judged query sets (CSV/TSV, JSON/JSONL, OpenSearch
  Search-Relevance-Workbench / ESCI) into :class:`~.judgments.Judgments`.
* :mod:`.metrics` -- per-query NDCG/MRR/Precision/Recall@k of a *returned ranked list*.
* :mod:`.stats` -- paired randomization test, paired bootstrap CI, Holm, latency percentiles.
* :mod:`.interleaving` -- team-draft interleaving with a simulated click model.
* :mod:`.router` -- stdlib-only sticky traffic router for live staging experiments.
* :mod:`.offline` -- run every query through every arm via an injected ``search_fn``.
* :mod:`.report` -- ``report.json`` (strict JSON) + self-contained ``report.html``.

Nothing is imported here eagerly, so ``distilrank.plugin.abtest.router`` stays importable
without numpy.
"""
