"""The message of a :class:`~distilrank.errors.DataError` as a regex, for ``pytest.raises(..., match=...)``."""

import re
from pathlib import Path


def error_at(path: Path, line: int | None, text: str) -> str:
    """Regex for a DataError message at ``path:line`` (``path`` alone when ``line`` is None) containing ``text``."""
    where = re.escape(str(path)) + (f":{line}" if line is not None else "")
    return where + ": .*" + re.escape(text)
