"""Training a LookupViT with a compressed grid sampled per step (the paper's multi-resolution
training), so that one checkpoint serves every grid from 1x1 up to the lookup grid.

This is how the shipped ``lookupvit_digits`` weights were made:

    lookupvit train lookupvit_digits --data digits -o exporter/weights/lookupvit_digits.safetensors
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_data
from .errors import UserError
from .io import check_writable_file
from .models import create_model, save_weights
from .models.config import LookupViTConfig


@dataclass
class TrainSettings:
    epochs: int = 120
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    label_smoothing: float = 0.1
    max_shift: int = 3  # random translation in pixels (augmentation)
    seed: int = 0


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation of each image by up to ``max_shift`` px, zero-padded: (B,C,H,W) -> same."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=float(x.min()))
    out = torch.empty_like(x)
    offs = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen)
    for i in range(b):
        dy, dx = int(offs[i, 0]), int(offs[i, 1])
        out[i] = pad[i, :, dy : dy + h, dx : dx + w]
    return out


def train(
    variant: str,
    out: str | Path,
    data: str = "digits",
    settings: TrainSettings | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train ``variant`` from its seeded initialisation on ``data``'s train split; save safetensors."""
    s = settings or TrainSettings()
    check_writable_file(out)  # before training, not after it
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    model = create_model(variant, pretrained=False, seed=s.seed)
    cfg = model.cfg
    if not isinstance(cfg, LookupViTConfig) or cfg.is_video:
        raise UserError(f"{variant} is not an image LookupViT.", "Train an image LookupViT variant.")
    train_set = load_data(data, cfg, split="train")
    test_set = load_data(data, cfg, split="test") if data == "digits" else None
    x_all = torch.from_numpy(train_set.images)
    y_all = torch.from_numpy(train_set.labels)
    steps_per_epoch = math.ceil(len(y_all) / s.batch_size)
    total, warmup = s.epochs * steps_per_epoch, s.warmup_epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: (k + 1) / warmup if k < warmup else 0.5 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup)))
    )
    gen = torch.Generator().manual_seed(s.seed)
    h, w = cfg.lookup_grid
    for epoch in range(s.epochs):
        model.train()
        perm = torch.randperm(len(y_all), generator=gen)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * s.batch_size : (i + 1) * s.batch_size]
            x = _shift(x_all[idx], s.max_shift, gen)
            g = random.randint(1, min(h, w))  # multi-resolution: a fresh grid every step
            loss = F.cross_entropy(model(x, grid=(g, g)), y_all[idx], label_smoothing=s.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
        if test_set is not None and (epoch + 1) % 10 == 0:
            model.eval()
            with torch.inference_mode():
                accs = []
                for g in cfg.default_grids:
                    pred = model(torch.from_numpy(test_set.images), grid=g).argmax(-1).numpy()
                    accs.append(f"g{g[0]}={100 * np.mean(pred == test_set.labels):.1f}")
            log(f"epoch {epoch + 1:3d}  loss {running / steps_per_epoch:.3f}  held-out top-1 {' '.join(accs)}")
    model.eval()
    meta = {"variant": variant, "data": data, "epochs": str(s.epochs), "seed": str(s.seed)}
    return save_weights(model, out, metadata=meta)
