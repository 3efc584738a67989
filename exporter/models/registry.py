"""The variant registry: named model factories, registered by decorator (timm style).

A variant is a function returning a config; the registry builds the model from it, initialises it
deterministically from a seed, and loads the variant's shipped weights when it has any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError, closest
from .config import LookupViTConfig, ModelConfig, ViTConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class Variant:
    name: str
    family: str  # image, video, features, vit
    config: ModelConfig
    description: str
    weights: Path | None = None  # weights shipped with the package (loaded by default)
    dataset: str | None = None  # the labelled data its shipped weights were trained on (validation's default data)


_VARIANTS: dict[str, Variant] = {}


def register_variant(
    family: str, description: str, weights: str | None = None, dataset: str | None = None
) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    """Register ``fn`` (returning a config) under its function name."""

    def wrap(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        name = fn.__name__
        if name in _VARIANTS:
            raise RuntimeError(f"variant {name} registered twice")
        path = WEIGHTS_DIR / weights if weights else None
        _VARIANTS[name] = Variant(name, family, fn(), description, path, dataset)
        return fn

    return wrap


def list_variants() -> list[Variant]:
    return [_VARIANTS[k] for k in sorted(_VARIANTS)]


def get_variant(name: str) -> Variant:
    try:
        return _VARIANTS[name]
    except KeyError:
        near = closest(name, _VARIANTS)
        hint = f"Did you mean {', '.join(near)}? " if near else ""
        raise UserError(
            f"Unknown variant {name!r}.",
            f"{hint}Run `lookupvit variants` to list the {len(_VARIANTS)} registered variants.",
        ) from None


def build_model(config: ModelConfig, seed: int = 0) -> nn.Module:
    """Instantiate the model for ``config`` with a deterministic initialisation from ``seed``."""
    from .lookupvit import LookupViT
    from .vit import ViT

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(config, LookupViTConfig):
            return LookupViT(config).eval()
        if isinstance(config, ViTConfig):
            return ViT(config).eval()
    raise TypeError(f"no model for config type {type(config).__name__}")


def create_model(
    name: str,
    weights: str | Path | None = None,
    pretrained: bool = True,
    seed: int = 0,
    **overrides: object,
) -> nn.Module:
    """Build variant ``name`` in eval mode.

    ``weights`` loads a checkpoint (safetensors or torch); otherwise the variant's shipped weights
    are loaded when ``pretrained`` and it has some; otherwise the parameters are a seeded random
    initialisation. ``overrides`` replace config fields (e.g. ``depth=2, image_size=32``).
    """
    from .weights import load_weights

    variant = get_variant(name)
    config = variant.config
    if overrides:
        fields = {f.name for f in dataclasses.fields(config)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise UserError(
                f"Unknown config field(s) {', '.join(bad)} for {name}.",
                f"Valid fields: {', '.join(sorted(fields))}.",
            )
        config = config.replace(**overrides)
    model = build_model(config, seed=seed)
    if weights is not None:
        load_weights(model, weights)
    elif pretrained and variant.weights is not None:
        load_weights(model, variant.weights)
    return model


def weights_id(name: str | None, weights: str | Path | None = None) -> str:
    """What a model's parameters are: ``sha256:<hex>`` of the checkpoint ``weights`` loads (else of the
    variant ``name``'s shipped weights), or ``seed:0`` for a seeded random initialisation."""
    from ..io import sha256_file

    if weights:
        return "sha256:" + sha256_file(weights)
    shipped = get_variant(name).weights if name else None
    return "sha256:" + sha256_file(shipped) if shipped is not None else "seed:0"
