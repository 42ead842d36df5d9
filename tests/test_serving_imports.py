"""The serving half imports no training code: an operator who only registers zips, or a front end that only routes
traffic, needs neither PyTorch nor transformers."""

import subprocess
import sys

SERVING_MODULES = ["plugin.api", "plugin.cli", "plugin.local_scoring", "plugin.abtest.router", "plugin.model_package",
                   "plugin.deploy", "plugin.register", "plugin.rescore", "plugin.serving_contract", "plugin.export.model_zip"]


def test_serving_modules_leave_torch_and_transformers_out():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in SERVING_MODULES)
            + "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"serving modules imported {out}"


def test_the_exporter_still_loads_on_demand():
    code = "import sys, plugin.export as e\nassert 'torch' not in sys.modules\ne.export_student\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"
