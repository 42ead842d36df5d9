"""Progress off a terminal: plain lines (one per stage, rate-limited), never carriage-return frames.

The bars run in a real subprocess whose stderr is a pipe, as in a CI log or ``cmd 2> log``.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from distilrank.progress import bar_disabled, line_interval, progress_bar

SCRIPT = textwrap.dedent("""
    import sys, time
    from distilrank.progress import progress_bar
    mode = sys.argv[1]
    if mode == "epochs":
        for e in range(3):
            for _ in progress_bar(range(20), desc=f"epoch {e + 1}/3", unit="batch"):
                pass
        with progress_bar(total=7, desc="score", unit="row", leave=False) as bar:
            for _ in range(7):
                bar.update(1)
    elif mode == "slow":
        for _ in progress_bar(range(40), desc="slow", unit="step", interval=0.25):
            time.sleep(0.03)
    elif mode == "off":
        for _ in progress_bar(range(20), desc="off", progress=False):
            pass
""")


def _stderr(mode: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120, env={**os.environ, **env}, check=True)
    return proc.stderr


def test_one_line_per_epoch_on_a_pipe():
    err = _stderr("epochs", DISTILRANK_PROGRESS_INTERVAL="60")
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3", "score"], err
    assert all("100%" in line for line in lines) and "20/20" in lines[0] and "7/7" in lines[3]


def test_lines_are_rate_limited_while_a_stage_runs():
    err = _stderr("slow")
    lines = err.splitlines()
    assert "\r" not in err
    # 40 steps of 30 ms (>= 1.2 s) at one line per 0.25 s: a few progress lines plus the closing one, not 40
    assert 3 <= len(lines) <= 8, err
    assert lines[-1].startswith("slow: 100% 40/40")
    done = [int(line.split()[2].split("/")[0]) for line in lines]
    assert done == sorted(done) and len(set(done)) == len(done)  # never the same line twice


def test_progress_false_is_silent():
    assert _stderr("off") == ""


def test_a_terminal_gets_the_redrawn_bar():
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            for _ in progress_bar(range(5), desc="tty", stream=tty, mininterval=0):
                pass
            tty.flush()
            drawn = os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert "\r" in drawn and "tty" in drawn


def test_interval_setting_and_the_disable_rule(monkeypatch):
    monkeypatch.setenv("DISTILRANK_PROGRESS_INTERVAL", "2.5")
    assert line_interval() == 2.5
    monkeypatch.setenv("DISTILRANK_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="DISTILRANK_PROGRESS_INTERVAL"):
        line_interval()
    monkeypatch.delenv("DISTILRANK_PROGRESS_INTERVAL")
    assert line_interval() == 30.0
    assert bar_disabled(None) is None and bar_disabled(True) is False and bar_disabled(False) is True
