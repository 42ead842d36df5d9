"""Export a trained student as an ML Commons ``TEXT_SIMILARITY`` ONNX model (zip + model card)."""

from plugin.export.exporter import ExportResult, export_student

__all__ = ["ExportResult", "export_student"]
