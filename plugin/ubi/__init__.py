"""User Behavior Insights (UBI): OpenSearch's standard click log, written and read by distilrank.

One job per module:

* :mod:`.schema` -- the UBI 3.6 index mappings and field names (both spellings of the hit-ids field), pinned.
* :mod:`.indices` -- ``plugin ubi-init`` (create ``ubi_queries`` / ``ubi_events``), UBI plugin detection, ``ext.ubi``.
* :mod:`.search_log` -- run one search for a router assignment and log it (``ext.ubi`` or front-end logging).
* :mod:`.records` -- the joined, typed form of a UBI log that every analysis reads (:class:`LoggedSearch`).
* :mod:`.join` -- raw ``ubi_queries`` / ``ubi_events`` documents to records, malformed items counted.
* :mod:`.reader` -- a time range of both indices read from the cluster (point in time + ``search_after``).
* :mod:`.simulate` -- a session simulator writing labelled-simulated UBI logs from human judgments.
* :mod:`.arms` -- the router arms of an ``ab run`` config.

The analyses of a log (per-arm online metrics, interleaving credit, COEC judgments) are in
:mod:`distilrank.plugin.abtest`.
"""
