"""Reading and writing data files, one module per format, all reporting problems as ``"<file>:<line>: <problem>"``.

* :mod:`~distilrank.formats.lines`: decoded physical lines with 1-based numbers (every text format reads through it);
* :mod:`~distilrank.formats.jsonl`: JSON lines, and whole JSON documents with the line of each object;
* :mod:`~distilrank.formats.delimited`: CSV and TSV records and header tables;
* :mod:`~distilrank.formats.parquet`: Parquet columns (pyarrow, the ``[train]`` extra, imported when used);
* :mod:`~distilrank.formats.amazon_reviews`: Blitzer et al. (2007) ``*.review`` files;
* :mod:`~distilrank.formats.sentences`: a regex sentence splitter;
* :mod:`~distilrank.formats.icecat`: Open Icecat ``products-*.json.zip`` files;
* :mod:`~distilrank.formats.pairs`: (query, text[, label]) tables in any of the formats above
  (:func:`~distilrank.formats.pairs.read_pairs`, :func:`~distilrank.formats.pairs.write_pairs`).

Judgment files (:mod:`distilrank.judgments`) and catalogues (:mod:`distilrank.catalogue`) read through the same
line, JSON and delimited readers.
"""
