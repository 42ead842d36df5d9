"""Paths the tests share, whatever folder of the mirrored tree (tests/distill/..., tests/plugin/...) they live in."""

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
TESTS_DATA = TESTS_DIR / "data"
REPO_ROOT = TESTS_DIR.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
