"""Progress bars, one rule for the whole project.

``progress=None`` shows a bar on a terminal and log lines elsewhere, ``True`` always shows progress, ``False``
never.  On a terminal (the stream's ``isatty()``) :func:`progress_bar` is a plain tqdm bar redrawn in place.
Anywhere else (a pipe, a log file, CI) carriage-return frames would pile up into one huge line, so the bar
prints plain lines instead: one line when the stage ends (every bar, so one line per stage or epoch) and, while
it runs, at most one line every ``interval`` seconds (:data:`LINE_INTERVAL_S` by default; the environment
variable ``DISTILRANK_PROGRESS_INTERVAL`` overrides it), never a line before the first step is done.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

LINE_INTERVAL_S = 30.0
_CONTROL = re.compile(r"\r|\x1b\[[0-9;]*[A-Za-z]")  # tqdm's carriage returns and cursor moves


def bar_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` argument for ``progress`` (tqdm reads ``None`` as "disable when not a terminal").

    Kept for code that builds its own ``tqdm``; new code calls :func:`progress_bar`, which prints lines off a terminal.
    """
    return None if progress is None else not progress


def line_interval() -> float:
    """Seconds between two progress lines off a terminal: ``$DISTILRANK_PROGRESS_INTERVAL`` or :data:`LINE_INTERVAL_S`."""
    raw = os.environ.get("DISTILRANK_PROGRESS_INTERVAL")
    if raw is None or not raw.strip():
        return LINE_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"DISTILRANK_PROGRESS_INTERVAL must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"DISTILRANK_PROGRESS_INTERVAL must be >= 0 seconds, got {raw!r}")
    return value


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class _LineWriter:
    """The file a line-mode bar writes to: each status tqdm draws becomes one line; bare returns and clears vanish."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, s: str) -> int:
        text = _CONTROL.sub("", s).rstrip()
        if text:
            self.stream.write(text + "\n")
            self.stream.flush()
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


class _LineBar(tqdm):
    """tqdm that prints a status line (no bar, no ``\\r``) only after progress and once more when it closes."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._printed_n: float | None = None
        self._closing = False
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its line (leave=False): there is no line to clear
            return True
        if msg is None and (self.n == self._printed_n or (self.n <= self.initial and not self._closing)):
            return True  # nothing new to say (the opening 0% frame, a repeat of the last line)
        self.fp.write(self.__str__() if msg is None else msg)
        self._printed_n = self.n
        return True

    def close(self) -> None:
        if not self.disable and not self._closing:
            self._closing = True
            self.display()  # the stage's one closing line, also for leave=False bars
        super().close()


def progress_bar(iterable: Iterable | None = None, *, progress: bool | None = None, desc: str | None = None,
                 total: float | None = None, unit: str = "it", stream: IO[str] | None = None,
                 interval: float | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``) following the project's progress rule.

    ``progress``: ``None`` = a bar on a terminal, lines elsewhere; ``True`` = the same, but never silent; ``False`` =
    nothing.  ``stream`` defaults to ``sys.stderr``.  Off a terminal the result prints at most one line every
    ``interval`` seconds (default :func:`line_interval`) and one final line when it closes (use it as a context
    manager or exhaust the iterable).  Other keyword arguments (``initial``, ``leave``, ``unit_scale``,
    ``postfix``...) go to tqdm unchanged.
    """
    out = sys.stderr if stream is None else stream
    if progress is False:
        return tqdm(iterable, desc=desc, total=total, unit=unit, file=out, disable=True, **kwargs)
    if _is_terminal(out):
        return tqdm(iterable, desc=desc, total=total, unit=unit, file=out, **kwargs)
    every = line_interval() if interval is None else float(interval)
    kwargs.update(mininterval=every, maxinterval=max(every, 1e-3), miniters=1, ncols=0, ascii=True, dynamic_ncols=False)
    return _LineBar(iterable, desc=desc, total=total, unit=unit, file=_LineWriter(out), **kwargs)
