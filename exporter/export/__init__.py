"""Export stage: PyTorch LookupViT (a variant or a user factory) -> ONNX, with provenance."""

from .grid_input import GRID_INPUT_NAME, GridInput
from .metadata import ModelMetadata, factory_refusal, read_model_metadata
from .onnx_export import ExportResult, check_batch, check_opset, export_onnx, read_metadata
from .source import LoadedModel, ModelSource, dynamic_grid_source, export_sources, load_source, resolve_variant_source

__all__ = [
    "GRID_INPUT_NAME", "ExportResult", "GridInput", "LoadedModel", "ModelMetadata", "ModelSource", "check_batch", "check_opset", "dynamic_grid_source", "export_onnx",
    "export_sources",
    "factory_refusal", "load_source", "read_metadata", "read_model_metadata", "resolve_variant_source",
]
