"""The serving half imports no training code: an operator who only registers zips, or a front end that only routes
traffic, needs neither PyTorch nor transformers."""

import subprocess
import sys

import pytest

SERVING_MODULES = ["distilrank.plugin.api", "distilrank.plugin.cli", "distilrank.plugin.local_scoring", "distilrank.plugin.abtest.router", "distilrank.plugin.model_package",
                   "distilrank.plugin.deploy", "distilrank.plugin.register", "distilrank.plugin.rescore", "distilrank.plugin.serving_contract", "distilrank.plugin.model_zip"]


def test_serving_modules_leave_torch_and_transformers_out():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in SERVING_MODULES)
            + "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"serving modules imported {out}"


def test_the_exporter_still_loads_on_demand():
    pytest.importorskip("torch", reason="the exporter is training-side (the [train] extra)")
    code = "import sys, distilrank.distill.export as e\nassert 'torch' not in sys.modules\ne.export_student\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"
