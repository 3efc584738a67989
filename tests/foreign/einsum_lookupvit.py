"""A LookupViT written independently of ours: einsum attention, scale applied to the query,
separate q/k/v Linear layers, a learned compressed-token resize by adaptive average pooling, and a
classifier on the mean of the compressed tokens. Test-only: exercises `--model` and the passes.

Factory contract: ``build(grid=(gh, gw))`` returns an nn.Module mapping (B, 3, 32, 32) to (B, 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.h = heads
        self.ln_q, self.ln_kv, self.ln_z, self.ln_s, self.ln_x = (nn.LayerNorm(dim) for _ in range(5))
        self.wq, self.wk, self.wv, self.oz = (nn.Linear(dim, dim) for _ in range(4))
        self.wvz, self.ox = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.mix = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        return t.view(b, n, self.h, d // self.h)  # (B, S, H, d)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hd = x.shape[-1] // self.h
        q = self.heads(self.wq(self.ln_q(z))) * hd**-0.5  # (B, M, H, d), scale on the query
        xn = self.ln_kv(x)
        k, v = self.heads(self.wk(xn)), self.heads(self.wv(xn))  # (B, N, H, d)
        s = torch.einsum("bmhd,bnhd->bhmn", q, k)  # (B, H, M, N)
        g = torch.einsum("bhmn,bnhd->bmhd", s.softmax(-1), v).flatten(2)  # (B, M, D)
        z = z + self.oz(g)
        z = z + self.mix(self.ln_z(z))
        vz = self.heads(self.wvz(self.ln_s(z)))  # (B, M, H, d)
        a = s.transpose(-1, -2).softmax(-1)  # (B, H, N, M)
        x = x + self.ox(torch.einsum("bhnm,bmhd->bnhd", a, vz).flatten(2))
        return x + self.mlp(self.ln_x(x)), z


class EinsumLookupViT(nn.Module):
    image_size = 32
    in_chans = 3

    def __init__(self, grid: tuple[int, int] = (2, 2), dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.grid = tuple(grid)
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.pos = nn.Parameter(torch.randn(1, dim, 8, 8) * 0.02)
        self.layers = nn.ModuleList(CrossLayer(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.embed(images) + self.pos  # (B, D, 8, 8)
        z = F.adaptive_avg_pool2d(grid, self.grid).flatten(2).transpose(1, 2)  # (B, M, D)
        x = grid.flatten(2).transpose(1, 2)  # (B, N, D)
        for layer in self.layers:
            x, z = layer(x, z)
        return self.fc(self.norm(z).mean(1) + self.norm(x).mean(1))


def build(grid: tuple[int, int] = (2, 2)) -> EinsumLookupViT:
    torch.manual_seed(0)
    return EinsumLookupViT(grid)


def not_a_module() -> str:
    return "not a module"


def wrong_output(grid: tuple[int, int] = (2, 2)) -> nn.Module:
    return nn.Identity()  # (B, 3, 32, 32) -> (B, 3, 32, 32): not logits
