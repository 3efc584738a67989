"""The model families (docs/paper.md): LookupViT image/video/feature variants and ViT baselines.

Importing this package registers every variant.
"""

from . import lookupvit, vit  # noqa: F401  (registers the variants)
from .config import Grid, LookupViTConfig, ModelConfig, ViTConfig, grid_label, parse_grid, parse_grids
from .cost import Cost, model_cost
from .registry import Variant, build_model, create_model, get_variant, list_variants, weights_id
from .weights import WeightsMismatch, load_weights, save_weights

__all__ = [
    "Cost", "Grid", "LookupViTConfig", "ModelConfig", "Variant", "ViTConfig", "WeightsMismatch",
    "build_model", "create_model", "get_variant", "grid_label", "list_variants", "load_weights",
    "model_cost", "parse_grid", "parse_grids", "save_weights", "weights_id",
]
