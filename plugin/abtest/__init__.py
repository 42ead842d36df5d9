"""Offline, cluster-independent A/B testing of rerank pipelines.

One job per module (judged query sets are read by :mod:`distilrank.judgments`, in the core):

* :mod:`.metrics` -- per-query NDCG/MRR/Precision/Recall@k of a *returned ranked list*.
* :mod:`.stats` -- paired randomization test, paired bootstrap CI, Holm, latency percentiles.
* :mod:`.interleaving` -- team-draft interleaving with a simulated click model.
* :mod:`.router` -- stdlib-only sticky traffic router for live staging experiments.
* :mod:`.offline` -- run every query through every arm via an injected ``search_fn``.
* :mod:`.report` -- ``report.json`` (strict JSON) + self-contained ``report.html``.
* :mod:`.fold_aliases` -- each cross-validation fold's student and teacher served behind per-fold
  aliases and A/B-tested against BM25 on the cluster, all folds in one report.

Nothing is imported here eagerly, so ``distilrank.plugin.abtest.router`` stays importable
without numpy.
"""
