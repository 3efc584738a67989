"""Test-only foreign models whose ``forward`` names its image argument ``x`` or ``img`` rather than
``images``: export must not depend on the argument's name (the dynamic batch is given positionally).

``build_x`` / ``build_img`` return the einsum LookupViT of :mod:`tests.foreign.einsum_lookupvit`
behind a forward with that argument name, mapping (B, 3, 32, 32) to (B, 10).
"""

from __future__ import annotations

import torch
from torch import nn

from .einsum_lookupvit import build


class ForwardX(nn.Module):
    image_size = 32
    in_chans = 3

    def __init__(self, grid: tuple[int, int] = (2, 2)):
        super().__init__()
        self.inner = build(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class ForwardImg(ForwardX):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.inner(img)


def build_x(grid: tuple[int, int] = (2, 2)) -> ForwardX:
    return ForwardX(grid)


def build_img(grid: tuple[int, int] = (2, 2)) -> ForwardImg:
    return ForwardImg(grid)


class DataDependent(ForwardX):
    """Python control flow on a tensor's value: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.inner(x)
        return -self.inner(x)


def build_data_dependent(grid: tuple[int, int] = (2, 2)) -> DataDependent:
    return DataDependent(grid)
