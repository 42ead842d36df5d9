"""Export a trained student as an ML Commons ``TEXT_SIMILARITY`` ONNX model (zip + model card).

Needs PyTorch (the training side); the attributes load lazily so that importing a torch-free submodule such as
``distilrank.plugin.model_zip`` does not import the exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ExportResult", "export_student"]

if TYPE_CHECKING:
    from distilrank.distill.export.exporter import ExportResult, export_student


def __getattr__(name: str) -> Any:
    if name in __all__:
        from distilrank.distill.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'distilrank.distill.export' has no attribute {name!r}")
