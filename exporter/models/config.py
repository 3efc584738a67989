"""Configuration dataclasses for the model families, and compressed-grid handling.

The LookupViT paper (Koner et al., arXiv 2407.12753, ECCV 2024) leaves some points open; each one
is an explicit field here with a documented default (see docs/paper.md).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UserError

Grid = tuple[int, ...]
"""A compressed-token grid: ``(gh, gw)`` for images, ``(gt, gh, gw)`` for video."""

Pool = Literal["compressed", "lookup", "both"]
Scatter = Literal["logits", "probs"]
Head = Literal["logits", "features"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LookupViTConfig:
    """A LookupViT: N lookup tokens ``x`` (the patch grid) and M compressed tokens ``z``.

    Video models set ``frames > 1``: the lookup grid becomes ``(frames / tubelet, H / p, W / p)``
    and compressed grids are 3-D.
    """

    image_size: int = 224
    patch_size: int = 16  # lookup patch p: the lookup grid is image_size / p per side
    in_chans: int = 3
    num_classes: int = 1000  # 0: no classifier (feature extractor only)
    dim: int = 768  # D
    depth: int = 12
    heads: int = 12  # H, head width d = D / H
    mlp_ratio_lookup: float = 1.0  # rl: the cheap MLP on the many lookup tokens (rl < rc)
    mlp_ratio_compressed: float = 4.0  # rc: the full MLP on the few compressed tokens
    pool: Pool = "both"  # what the classifier pools: both streams (concat), compressed, or lookup
    scatter: Scatter = "logits"  # scatter uses softmax_M(S^T) (paper) or gather's softmax_N(S)^T
    antialias: bool = False  # antialiased resize of the lookup grid to the compressed grid
    head: Head = "logits"  # logits: class scores; features: both normalised token streams
    frames: int = 1  # video: input frames T (1 for images)
    tubelet: int = 1  # video: frames per tubelet (temporal patch size)
    ln_eps: float = 1e-6
    default_grids: tuple[Grid, ...] = ((3, 3), (5, 5), (7, 7), (10, 10))
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        _check_common(self.image_size, self.patch_size, self.dim, self.heads, self.depth)
        if self.frames % self.tubelet:
            raise UserError(
                f"frames={self.frames} is not a multiple of tubelet={self.tubelet}.",
                "Choose a frame count divisible by the tubelet size (e.g. frames=16, tubelet=2).",
            )
        _check_choice("pool", self.pool, ("compressed", "lookup", "both"))
        _check_choice("scatter", self.scatter, ("logits", "probs"))
        _check_choice("head", self.head, ("logits", "features"))
        if self.antialias and self.is_video:
            raise UserError(
                "antialias=True is not available for video models (trilinear resize has no "
                "antialiased form in PyTorch or ONNX Resize).",
                "Set antialias=False for video variants.",
            )
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise UserError(
                f"mean/std have {len(self.mean)}/{len(self.std)} entries but in_chans={self.in_chans}.",
                "Give one mean and one std per input channel.",
            )
        for g in self.default_grids:
            check_grid(g, self.lookup_grid)

    @property
    def is_video(self) -> bool:
        return self.frames > 1

    @property
    def lookup_grid(self) -> Grid:
        side = self.image_size // self.patch_size
        if self.is_video:
            return (self.frames // self.tubelet, side, side)
        return (side, side)

    @property
    def num_lookup_tokens(self) -> int:
        return math.prod(self.lookup_grid)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample: (C, H, W) for images, (C, T, H, W) for video."""
        s = self.image_size
        if self.is_video:
            return (self.in_chans, self.frames, s, s)
        return (self.in_chans, s, s)

    def mlp_hidden(self, ratio: float) -> int:
        return int(round(self.dim * ratio))

    def replace(self, **changes: object) -> LookupViTConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ViTConfig:
    """A plain ViT (Dosovitskiy et al.) with a class token: the baseline of the same width."""

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    ln_eps: float = 1e-6
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    default_grids: tuple[Grid, ...] = field(default=())  # a ViT has no compressed grid

    def __post_init__(self) -> None:
        _check_common(self.image_size, self.patch_size, self.dim, self.heads, self.depth)

    is_video = False
    frames = 1

    @property
    def lookup_grid(self) -> Grid:
        side = self.image_size // self.patch_size
        return (side, side)

    @property
    def num_lookup_tokens(self) -> int:
        return math.prod(self.lookup_grid)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_chans, self.image_size, self.image_size)

    def mlp_hidden(self, ratio: float) -> int:
        return int(round(self.dim * ratio))

    def replace(self, **changes: object) -> ViTConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


ModelConfig = LookupViTConfig | ViTConfig


def _check_common(image_size: int, patch_size: int, dim: int, heads: int, depth: int) -> None:
    if image_size % patch_size:
        raise UserError(
            f"image_size={image_size} is not a multiple of patch_size={patch_size}.",
            "Pick an image size divisible by the patch size (e.g. 224 with patch 16 or 8).",
        )
    if dim % heads:
        raise UserError(
            f"dim={dim} is not divisible by heads={heads}.",
            "Choose heads so that the head width dim/heads is an integer.",
        )
    if depth < 1:
        raise UserError(f"depth={depth} must be at least 1.")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name}={value!r} is not one of {', '.join(allowed)}.")


def check_grid(grid: Grid, lookup_grid: Grid) -> Grid:
    """Validate a compressed grid against the lookup grid: same rank, each axis 1..lookup extent."""
    if len(grid) != len(lookup_grid):
        raise UserError(
            f"Grid {grid_dims(grid)} has {len(grid)} axes but this model's lookup grid "
            f"{grid_dims(lookup_grid)} has {len(lookup_grid)}.",
            "Give a single number (used on every axis) or one size per axis, e.g. 7 or 4x7x7.",
        )
    for g, n in zip(grid, lookup_grid):
        if not 1 <= g <= n:
            raise UserError(
                f"Grid {grid_dims(grid)} does not fit the lookup grid {grid_dims(lookup_grid)}: "
                "each compressed axis must be between 1 and the lookup extent.",
                f"Choose a grid no larger than {grid_dims(lookup_grid)}.",
            )
    return tuple(grid)


def read_grid_spec(spec: str | int) -> Grid:
    """Read ``"7"``, ``7``, ``"7x7"`` or ``"4x7x7"`` as sizes, without checking them against a model."""
    text = str(spec).strip().lower()
    try:
        return tuple(int(p) for p in text.split("x"))
    except ValueError:
        raise UserError(
            f"Cannot read grid {spec!r}.",
            "Write a grid as a number (7) or sizes joined by 'x' (7x7, 4x7x7).",
        ) from None


def parse_grid(spec: str | int | Grid, lookup_grid: Grid) -> Grid:
    """Parse ``"7"``, ``7``, ``"7x7"`` or ``"4x7x7"`` into a grid for a model with ``lookup_grid``.

    A single number means that size on every axis, capped at the lookup extent of each axis (so
    ``10`` on a video model with 8 temporal lookup positions is ``8x10x10``).
    """
    if isinstance(spec, tuple):
        return check_grid(spec, lookup_grid)
    parts = read_grid_spec(spec)
    if len(parts) == 1:
        g = parts[0]
        if g > max(lookup_grid):  # too large on every axis: let check_grid report it as given
            return check_grid((g,) * len(lookup_grid), lookup_grid)
        return check_grid(tuple(min(g, n) for n in lookup_grid), lookup_grid)
    return check_grid(parts, lookup_grid)


def parse_grids(spec: str, lookup_grid: Grid) -> list[Grid]:
    """Parse a comma-separated list of grids, e.g. ``"3,5,7"``: empty items dropped, each grid once
    (``3,,3`` and ``3,3x3`` are the one grid 3x3)."""
    items = [s for s in spec.split(",") if s.strip()]
    if not items:
        raise UserError("No grid given.", "Pass grids as a comma-separated list, e.g. --grids 3,5,7.")
    return list(dict.fromkeys(parse_grid(s, lookup_grid) for s in items))


def grid_label(grid: Grid) -> str:
    """``(7, 7)`` -> ``"7"``; ``(4, 7, 7)`` -> ``"4x7x7"``; used in file names and tables."""
    if len(set(grid)) == 1 and len(grid) == 2:
        return str(grid[0])
    return grid_dims(grid)


def grid_dims(grid: Grid) -> str:
    """Every axis spelled out: ``(7, 7)`` -> ``"7x7"`` (messages and metadata)."""
    return "x".join(str(g) for g in grid)
