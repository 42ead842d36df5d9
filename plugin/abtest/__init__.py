"""Offline, cluster-independent A/B testing of rerank pipelines.

One job per module (judged query sets are read by :mod:`distilrank.judgments`, in the core):

* :mod:`.metrics` -- per-query NDCG/MRR/Precision/Recall@k of a *returned ranked list*.
* :mod:`.stats` -- paired randomization test, paired bootstrap CI, Holm, latency percentiles.
* :mod:`.interleaving` -- team-draft interleaving with a simulated click model.
* :mod:`.router` -- stdlib-only sticky traffic router for live staging experiments.
* :mod:`.offline` -- run every query through every arm via an injected ``search_fn``.
* :mod:`.report` -- ``report.json`` (strict JSON) + self-contained ``report.html``.
* :mod:`.online`, :mod:`.online_run`, :mod:`.online_config`, :mod:`.online_report` -- ``ab online``: live A/B from a
  UBI click log (user-level bootstrap CIs and permutation p-values).
* :mod:`.click_interleaving` -- team-draft interleaving credit from logged clicks.
* :mod:`.coec` -- click-derived judgments (clicks over expected clicks), written for SRW and as CSV.
* :mod:`.srw_schema`, :mod:`.srw_export`, :mod:`.srw_push` -- Search Relevance Workbench interchange.
* :mod:`.fold_aliases` -- each cross-validation fold's student and teacher served behind per-fold
  aliases and A/B-tested against BM25 on the cluster, all folds in one report.

Nothing is imported here eagerly, so ``distilrank.plugin.abtest.router`` stays importable
without numpy.
"""
