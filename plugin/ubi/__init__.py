"""User Behavior Insights (UBI): OpenSearch's standard click log, read and written by distilrank.

One job per module:

* :mod:`.records` -- the joined, typed form of a UBI log that every analysis reads (:class:`LoggedSearch`).
"""
