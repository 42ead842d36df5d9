"""Exception types shared by the whole pipeline.

Every error raised for bad user input names *where* the problem is (file, line,
field) so the message alone is enough to fix it.
"""

from __future__ import annotations

from pathlib import Path


class DistilRankError(Exception):
    """Base class for all errors distilrank raises on purpose."""


class DataError(DistilRankError):
    """Malformed input data. ``str(err)`` is ``"<file>:<line>: <problem>"``."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ConfigError(DistilRankError):
    """Invalid configuration. ``str(err)`` names the config file and the field."""

    def __init__(self, source: str | Path, field: str, problem: str):
        self.source = str(source)
        self.field = field
        super().__init__(f"{source}: field '{field}': {problem}")
