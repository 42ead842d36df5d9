"""Paths the tests share, whatever folder of the mirrored tree (tests/distill/..., tests/plugin/...) they live in,
and :func:`needs_data`, the one gate of the tests that read the shared real data."""

import inspect
import os
import re
from pathlib import Path

import pytest

from distilrank.data_root import PREFIX, require_data
from distilrank.errors import DataError

TESTS_DIR = Path(__file__).resolve().parent
TESTS_DATA = TESTS_DIR / "data"
REPO_ROOT = TESTS_DIR.parent
REQUIRE_DATA = "DISTILRANK_REQUIRE_DATA"
DATA_SETTING = re.compile(r'"' + re.escape(PREFIX) + r'/([^"/]+)')


def needs_data(subpath: str) -> Path:
    """``subpath`` of the shared data (:func:`distilrank.data_root.require_data`).  Where it is missing the calling
    test is skipped with the reason, or fails when ``DISTILRANK_REQUIRE_DATA`` is set (``.ci/run`` sets it)."""
    try:
        return require_data(subpath)
    except DataError as exc:
        missing = exc
    caller = next(f for f in inspect.stack(context=0) if f.filename != __file__)  # the test that asked
    where = f"{os.path.relpath(caller.filename, REPO_ROOT)}:{caller.lineno} {caller.function}"
    if os.environ.get(REQUIRE_DATA, "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{where}: {missing}\n({REQUIRE_DATA} is set, so missing shared data is a failure)", pytrace=False)
    pytest.skip(f"{where}: shared data {subpath} not present: {missing.path} (set DISTILRANK_DATA to run this test)")


def needs_config_data(config: Path) -> None:
    """:func:`needs_data` for every shared data set the TOML ``config`` names as ``"${DISTILRANK_DATA}/<set>/..."``."""
    for name in dict.fromkeys(DATA_SETTING.findall(config.read_text(encoding="utf-8"))):
        needs_data(name)
