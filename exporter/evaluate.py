"""Task accuracy (top-1) of a PyTorch model on a labelled dataset, per compressed grid."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .data import LabelledData
from .models.config import Grid, grid_label
from .models.cost import model_cost


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
def predict(model: nn.Module, images: np.ndarray, grid: Grid | None, batch_size: int = 256) -> np.ndarray:
    """Class predictions (N,) of ``model`` at ``grid`` (None: a model without grids)."""
    preds = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size])
        logits = model(x) if grid is None else model(x, grid=grid)
        preds.append(logits.argmax(-1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate(
    model: nn.Module, data: LabelledData, grids: list[Grid] | None, variant: str = "", weights: str = ""
) -> EvaluationResult:
    """Top-1 of ``model`` on ``data`` at each grid (``None`` or empty for a ViT)."""
    result = EvaluationResult(variant, weights, data.source)
    for grid in grids or [None]:
        t0 = time.perf_counter()
        pred = predict(model, data.images, grid)
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
