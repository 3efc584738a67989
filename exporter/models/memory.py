"""Memory a model needs, estimated from its configuration's shapes before anything is allocated.

float32 throughout (4 bytes per value). The estimates are lower bounds of the dominant terms, used
to refuse work that cannot fit this machine (``--batch 100000000``, ``--image-size 100000``) with a
figure, instead of letting the allocator fail after minutes or the kernel kill the process:

- parameters: the analytic count of :func:`~exporter.models.cost.model_cost` (the lookup-grid
  position embedding grows with the square of the image size);
- the input batch: B x C x H x W;
- one inference forward (no gradients), the largest live activations of one layer: a LookupViT's
  lookup tokens (B, N, D) with their LayerNorm, keys/values and MLP hidden (B, N, rl D), the
  gather and scatter logits (B, H, M, N), and the compressed tokens' MLP hidden (B, M, rc D);
  a ViT's tokens (B, S, D), its attention logits (B, H, S, S) and MLP hidden (B, S, r D).
"""

from __future__ import annotations

import math

from .config import Grid, LookupViTConfig, ModelConfig
from .cost import model_cost

BYTES = 4  # float32


def parameter_bytes(cfg: ModelConfig, grid: Grid | None = None) -> int:
    g = grid if grid is not None or not isinstance(cfg, LookupViTConfig) else cfg.lookup_grid
    return BYTES * model_cost(cfg, g).params


def input_bytes(cfg: ModelConfig, batch: int) -> int:
    return BYTES * batch * math.prod(cfg.input_shape)


def activation_bytes(cfg: ModelConfig, batch: int, grid: Grid | None = None) -> int:
    """The largest live activations of one inference layer (module docstring)."""
    d, h = cfg.dim, cfg.heads
    if isinstance(cfg, LookupViTConfig):
        n = cfg.num_lookup_tokens
        m = math.prod(grid) if grid is not None else n
        per_image = 4 * n * d + n * cfg.mlp_hidden(cfg.mlp_ratio_lookup) + 2 * h * m * n + m * cfg.mlp_hidden(cfg.mlp_ratio_compressed)
    else:
        s = cfg.num_lookup_tokens + 1
        per_image = 4 * s * d + h * s * s + s * cfg.mlp_hidden(cfg.mlp_ratio)
    return BYTES * batch * per_image


def export_bytes(cfg: ModelConfig, batch: int, grid: Grid | None = None) -> int:
    """Exporting: the module's parameters, their copy in the ONNX graph, and the example batch
    (torch.export traces with fake tensors, so no activations are allocated)."""
    return 2 * parameter_bytes(cfg, grid) + input_bytes(cfg, batch)


def inference_bytes(cfg: ModelConfig, batch: int, grid: Grid | None = None) -> int:
    """Running one batch: parameters, the input batch and one layer's activations."""
    return parameter_bytes(cfg, grid) + input_bytes(cfg, batch) + activation_bytes(cfg, batch, grid)
