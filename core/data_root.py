"""Where the shared real data lives (SST-2, Amazon reviews, Icecat, ESCI): one setting, ``DISTILRANK_DATA``.

``data_root()`` is the folder named by the environment variable ``DISTILRANK_DATA`` when it is set and not
empty (a relative value is taken relative to the current working directory).  Unset, it is ``shared/data``
beside the distilrank checkout: ``<checkout>/../shared/data``.  The checkout is the one this source file lives in
(a checkout and its editable install, ``pip install -e .``), else the nearest folder at or above the working
directory that holds distilrank's ``pyproject.toml`` (an installed wheel run from a checkout, as
``make test-serving`` does); outside any checkout ``DISTILRANK_DATA`` must be set.

Configs name data files as ``"${DISTILRANK_DATA}/esci-shopping/products.jsonl"``; :func:`config_path` expands
that prefix and resolves every other relative path against the config file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from distilrank.errors import DataError

ENV = "DISTILRANK_DATA"
PREFIX = "${" + ENV + "}"


def data_root() -> Path:
    """The absolute, resolved folder of the shared data (it need not exist; :func:`require_data` checks)."""
    value = os.environ.get(ENV, "")
    if value:
        return Path(value).expanduser().resolve()
    checkout = _checkout()
    return ((checkout or Path.cwd()).parent / "shared" / "data").resolve()


def _is_checkout(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    return (folder / "core" / "data_root.py").is_file() and pyproject.is_file() and 'name = "distilrank"' in pyproject.read_text()


def _checkout() -> Path | None:
    """The distilrank checkout of this source file, else the one at or above the working directory, else ``None``."""
    here = Path(__file__).resolve().parents[1]
    if _is_checkout(here):
        return here
    cwd = Path.cwd().resolve()
    return next((d for d in (cwd, *cwd.parents) if _is_checkout(d)), None)


def require_data(subpath: str | Path = "") -> Path:
    """``data_root() / subpath`` if it exists; otherwise :class:`DataError` naming the path looked at, whether
    it came from ``DISTILRANK_DATA`` or the default, and how to point distilrank at the data."""
    path = data_root() / subpath
    if path.exists():
        return path
    if os.environ.get(ENV):
        origin = f"{ENV} is {os.environ[ENV]!r}"
    else:
        origin = f"{ENV} is unset, so the default was looked at: shared/data beside the checkout"
    raise DataError(path, None, f"shared data not found ({origin}); to fix it, set {ENV} to the folder that holds "
                                f"sst2/, amazon-reviews/, icecat/ and esci-shopping/ (export {ENV}=/path/to/shared/data)")


def expand_data_path(text: str) -> str:
    """``text`` with a leading ``${DISTILRANK_DATA}`` replaced by :func:`data_root`; any other text unchanged."""
    if text == PREFIX or text.startswith(PREFIX + "/"):
        return str(data_root()) + text[len(PREFIX):]
    return text


def config_path(base: Path, text: str) -> Path:
    """A path setting of a config in folder ``base``: ``${DISTILRANK_DATA}`` expanded, then made absolute
    against ``base`` (an absolute path stays as it is) and resolved."""
    return (base / expand_data_path(text)).resolve()
