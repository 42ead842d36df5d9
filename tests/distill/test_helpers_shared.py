"""The shared helpers: one file hash, one best-of-N timer, one report page."""

import hashlib

import pytest

from distilrank.plugin.serving_contract import sha256_file, update_sha256
from distilrank.reporting import STYLE, html_page
from distilrank.timing import best_of_seconds


def test_sha256_file_streams_in_blocks(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: several blocks at chunk=4096
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    assert sha256_file(f) == hashlib.sha256(data).hexdigest()
    assert sha256_file(f, chunk=4096) == hashlib.sha256(data).hexdigest()
    h = hashlib.sha256(b"prefix")
    assert update_sha256(h, f).hexdigest() == hashlib.sha256(b"prefix" + data).hexdigest()


def test_best_of_seconds_counts_calls_and_keeps_the_minimum():
    calls = []
    best = best_of_seconds(lambda: calls.append(1), 4, warmup=2)
    assert len(calls) == 6 and 0.0 <= best < 1.0
    with pytest.raises(ValueError, match="repeats"):
        best_of_seconds(lambda: None, 0)


def test_html_page_escapes_the_title_and_inlines_the_one_style_sheet():
    page = html_page("a <b> & c", "<p>x</p>")
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and f"<style>{STYLE}</style>" in page
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("<body><p>x</p></body></html>")


def test_reporting_and_shared_helpers_load_neither_matplotlib_nor_torch():
    import subprocess
    import sys

    code = ("import sys, distilrank.reporting, distilrank.progress, distilrank.timing, distilrank.plugin.serving_contract, distilrank.plugin.abtest.report; "
            "print(sorted(m for m in ('matplotlib', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
