"""distilrank.distill.teacher.model: precision resolution, and the warning for bf16/fp16 on a CPU without it."""

from __future__ import annotations

import warnings

import pytest
import torch

from distilrank.distill.teacher import model


def test_auto_is_fp32_on_the_cpu_and_explicit_precisions_autocast():
    cpu = torch.device("cpu")
    assert model.resolve_precision(cpu, "auto") is None and model.resolve_precision(cpu, "no") is None
    assert model.resolve_precision(cpu, "bf16") is torch.bfloat16
    with pytest.raises(Exception, match="mixed_precision"):
        model.resolve_precision(cpu, "fp8")


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns_with_the_measured_cost(monkeypatch):
    monkeypatch.setattr(model, "cpu_flags", lambda: {"avx2", "fma"})  # the flags of a CPU without native bf16
    monkeypatch.setattr(model, "_warned", set())
    with pytest.warns(RuntimeWarning, match=r"bf16.*measured [0-9.]+x slower than fp32 here; set mixed_precision = \"auto\""):
        model.resolve_precision(torch.device("cpu"), "bf16")
    with warnings.catch_warnings():  # once per precision
        warnings.simplefilter("error")
        model.resolve_precision(torch.device("cpu"), "bf16")


def test_no_warning_where_the_cpu_has_native_bf16(monkeypatch):
    monkeypatch.setattr(model, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(model, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.resolve_precision(torch.device("cpu"), "bf16") is torch.bfloat16


def test_the_slowdown_is_a_measured_ratio():
    assert model.autocast_slowdown(torch.bfloat16, size=64, repeats=2) > 0
