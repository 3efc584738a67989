"""Export stage: PyTorch LookupViT (a variant or a user factory) -> ONNX, with provenance."""

from .onnx_export import ExportResult, check_batch, check_opset, export_onnx, read_metadata, read_sidecar
from .source import LoadedModel, ModelSource, load_source, resolve_variant_source, source_from_json

__all__ = [
    "ExportResult", "LoadedModel", "ModelSource", "check_batch", "check_opset", "export_onnx", "load_source",
    "read_metadata", "read_sidecar", "resolve_variant_source", "source_from_json",
]
