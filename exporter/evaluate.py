"""Task accuracy (top-1) of a PyTorch model on a labelled dataset, per compressed grid."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .data import LabelledData
from .models.config import Grid, grid_label
from .models.cost import model_cost

DEFAULT_EVAL_BATCH = 256  # images per forward pass (`evaluate --batch`)


@dataclass
class GridAccuracy:
    grid: str  # label, e.g. "7" or "4x7x7"; "-" for a ViT
    top1: float  # percent
    correct: int
    total: int
    gmacs: float  # analytic, per image
    seconds: float


@dataclass
class EvaluationResult:
    variant: str
    weights: str
    data: str
    rows: list[GridAccuracy] = field(default_factory=list)
    meaningless: list[str] = field(default_factory=list)  # why the figures mean nothing (--allow-meaningless)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@torch.inference_mode()
def predict(model: nn.Module, images: np.ndarray, grid: Grid | None, batch_size: int = DEFAULT_EVAL_BATCH) -> np.ndarray:
    """Class predictions (N,) of ``model`` at ``grid`` (None: a model without grids)."""
    preds = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size])
        logits = model(x) if grid is None else model(x, grid=grid)
        preds.append(logits.argmax(-1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate(
    model: nn.Module, data: LabelledData, grids: list[Grid] | None, variant: str = "", weights: str = "",
    batch_size: int = DEFAULT_EVAL_BATCH,
) -> EvaluationResult:
    """Top-1 of ``model`` on ``data`` at each grid (``None`` or empty for a ViT)."""
    result = EvaluationResult(variant, weights, data.source)
    for grid in grids or [None]:
        t0 = time.perf_counter()
        pred = predict(model, data.images, grid, batch_size)
        correct = int((pred == data.labels).sum())
        result.rows.append(
            GridAccuracy(
                grid=grid_label(grid) if grid else "-",
                top1=100.0 * correct / max(len(data), 1),
                correct=correct,
                total=len(data),
                gmacs=model_cost(model.cfg, grid).gmacs,
                seconds=time.perf_counter() - t0,
            )
        )
    return result


def evaluate_variant(variant: str, weights: str | None = None, data: str = "digits", grids: str | None = None,
                     batch_size: int = DEFAULT_EVAL_BATCH, allow_meaningless: bool = False,
                     say: Callable[[str], None] = lambda _t: None) -> EvaluationResult:
    """``lookupvit evaluate``: top-1 of a registered variant per compressed grid (``grids``, default its
    default grids) on the dataset ``data``. Refuses (:class:`~exporter.errors.UserError`) where the figure
    would mean nothing (random weights; classes, channels or image size that do not fit the data),
    unless ``allow_meaningless``: then the reasons are in ``meaningless``. ``say`` gets the notes and a
    line before the work."""
    from .data import InputSpec, load_data
    from .data_fit import accuracy_fit, require_meaningful
    from .models import create_model, get_variant, parse_grids, weights_id

    v = get_variant(variant)
    cfg = v.config
    grid_list = parse_grids(grids, cfg.lookup_grid) if grids and cfg.default_grids else list(cfg.default_grids)
    dataset = load_data(data, cfg)
    model = create_model(variant, weights=weights)
    weights_name = str(weights) if weights else (v.weights.name if v.weights else "random init (seed 0)")
    classes = None if cfg.num_classes == 0 or getattr(cfg, "head", "logits") != "logits" else cfg.num_classes
    fit = accuracy_fit(dataset, InputSpec(cfg.input_shape, tuple(cfg.mean), tuple(cfg.std)), classes,
                       weights_id(variant, weights))
    notes = require_meaningful(fit, variant, allow_meaningless)
    for note in notes:
        say(note)
    say(f"Evaluating {variant} ({weights_name}) on {dataset.source}: {len(dataset)} images")
    result = evaluate(model, dataset, grid_list, variant=variant, weights=weights_name, batch_size=batch_size)
    result.meaningless = notes
    return result
