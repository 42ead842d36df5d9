"""distilrank: distil BERT-family cross-encoders into a tiny n-gram student and serve it in OpenSearch.

The installed package is ``distilrank`` with two halves, ``distilrank.distill`` (training, the ``[train]`` extra) and
``distilrank.plugin`` (serving, the base install).  This folder is the root package's source: setuptools'
``package-dir`` maps ``distilrank`` here and the halves to the repository's fixed top-level folders ``distill/`` and
``plugin/`` (see pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("distilrank")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
