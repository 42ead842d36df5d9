"""The one rule for progress bars: ``progress=None`` shows them on a terminal only, ``True`` always, ``False`` never."""

from __future__ import annotations


def bar_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` argument for ``progress`` (tqdm reads ``None`` as "disable when not a terminal")."""
    return None if progress is None else not progress
