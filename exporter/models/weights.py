"""Loading and saving weights: safetensors and torch checkpoints, strictly matched.

A mismatch raises :class:`WeightsMismatch`, which lists every missing, unexpected and
shape-mismatched key instead of loading part of a model. A checkpoint with NaN or Inf in any
floating-point tensor is refused at load, naming the tensors: every accuracy figure or validation
verdict computed from it would be meaningless. Torch checkpoints are read with
``torch.load(weights_only=True)`` (a restricted unpickler: tensors and plain containers, no code).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..io import atomic_path

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


class WeightsMismatch(UserError):
    def __init__(
        self,
        path: Path,
        missing: list[str],
        unexpected: list[str],
        shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes
        lines = [f"Weights {path} do not fit this model:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {_short(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {_short(unexpected)}")
        for key, want, got in shapes[:10]:
            lines.append(f"  shape mismatch: {key} expects {list(want)}, file has {list(got)}")
        if len(shapes) > 10:
            lines.append(f"  ... and {len(shapes) - 10} more shape mismatches")
        super().__init__(
            "\n".join(lines),
            "Check that the checkpoint belongs to this variant (and the same config overrides), "
            "or pick the matching variant with `lookupvit variants`.",
        )


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file or a torch checkpoint (plain or wrapped state dict)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Weights file {path} does not exist.", "Pass an existing .safetensors or .pt file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: report, don't trace back
        raise UserError(
            f"Cannot read weights {path}: {e}",
            "Weights must be a safetensors file or a torch checkpoint saved with torch.save(state_dict).",
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(
            f"{path} holds no state dict of tensors.",
            "Save weights with torch.save(model.state_dict(), path) or safetensors.",
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    check_finite(state, path)
    return state


def check_finite(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a state dict whose floating-point tensors hold NaN or Inf, naming them."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserError(
            f"Weights {path} hold NaN or Inf values in {len(bad)} tensor(s): {_short(bad)}.",
            "The checkpoint is corrupt or comes from a diverged training run; re-export or retrain it. "
            "Nothing computed from it would be meaningful.",
        )


def adapt_pos_embed(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Resize a checkpoint's position embedding to ``model``'s lookup grid, in place.

    Lets weights trained at one image size load into the same variant at another (``--image-size``):
    the square grid of position embeddings is resized bilinearly; a class-token entry is kept.
    """
    own = model.state_dict().get("pos_embed")
    got = state.get("pos_embed")
    cfg = getattr(model, "cfg", None)
    if own is None or got is None or cfg is None or cfg.is_video or own.shape == got.shape:
        return
    if own.ndim != 3 or got.ndim != 3 or own.shape[2] != got.shape[2]:
        return
    extra = own.shape[1] - math.prod(cfg.lookup_grid)  # 1 with a class token, else 0
    side = math.isqrt(got.shape[1] - extra)
    if extra < 0 or side * side != got.shape[1] - extra:
        return
    grid = got[:, extra:].transpose(1, 2).reshape(1, -1, side, side)  # (1, D, s, s)
    grid = F.interpolate(grid, size=cfg.lookup_grid, mode="bilinear", align_corners=False)
    state["pos_embed"] = torch.cat([got[:, :extra], grid.flatten(2).transpose(1, 2)], dim=1)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``model`` strictly; raise :class:`WeightsMismatch` listing all problems."""
    state = read_state_dict(path)
    adapt_pos_embed(state, model)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        (k, tuple(own[k].shape), tuple(state[k].shape))
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        raise WeightsMismatch(Path(path), missing, unexpected, shapes)
    model.load_state_dict(state, strict=True)
    return model


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Save ``model``'s state dict as safetensors, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return Path(path)
