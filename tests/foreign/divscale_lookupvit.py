"""A LookupViT written independently of ours (test-only): tokens kept in (B, S, H, d) layout, the
logits by ``matmul`` over permuted heads and *divided* by sqrt(d), the scatter as a softmax over the
compressed axis (dim -2) of the shared logits followed by a transpose, and an SDPA self-attention
with separate q/k/v Linear layers and an explicit ``scale``.

Factory contract: ``build(grid=(gh, gw))`` returns an nn.Module mapping (B, 3, 32, 32) to (B, 10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.h, self.root = heads, math.sqrt(dim // heads)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(6))
        self.wq, self.wk, self.wv, self.oz, self.wvz, self.ox = (nn.Linear(dim, dim) for _ in range(6))
        self.sq, self.sk, self.sv, self.so = (nn.Linear(dim, dim) for _ in range(4))
        self.mlp_z = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mlp_x = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        b, s, d = t.shape
        return t.view(b, s, self.h, d // self.h)  # (B, S, H, d)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_q, n_kv, n_sa, n_mz, n_vz, n_mx = self.norms
        q = self.heads(self.wq(n_q(z))).permute(0, 2, 1, 3)  # (B, H, M, d)
        xn = n_kv(x)
        kt = self.heads(self.wk(xn)).permute(0, 2, 3, 1)  # (B, H, d, N)
        v = self.heads(self.wv(xn)).transpose(1, 2)  # (B, H, N, d)
        logits = torch.matmul(q, kt) / self.root  # (B, H, M, N)
        g = torch.matmul(logits.softmax(dim=-1), v)  # (B, H, M, d)
        z = z + self.oz(g.transpose(1, 2).flatten(2))

        zn = n_sa(z)
        sq, sk, sv = (self.heads(f(zn)).transpose(1, 2) for f in (self.sq, self.sk, self.sv))  # (B, H, M, d)
        sa = F.scaled_dot_product_attention(sq, sk, sv, scale=1.0 / self.root)
        z = z + self.so(sa.transpose(1, 2).flatten(2))
        z = z + self.mlp_z(n_mz(z))

        vz = self.heads(self.wvz(n_vz(z))).transpose(1, 2)  # (B, H, M, d)
        a = logits.softmax(dim=-2).transpose(-1, -2)  # (B, H, N, M): softmax over the M compressed tokens
        x = x + self.ox(torch.matmul(a, vz).transpose(1, 2).flatten(2))
        return x + self.mlp_x(n_mx(x)), z


class DivScaleLookupViT(nn.Module):
    image_size = 32
    in_chans = 3

    def __init__(self, grid: tuple[int, int] = (2, 2), dim: int = 48, depth: int = 2, heads: int = 3):
        super().__init__()
        self.grid = tuple(grid)
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.pos = nn.Parameter(torch.randn(1, 64, dim) * 0.02)
        self.layers = nn.ModuleList(Layer(dim, heads) for _ in range(depth))
        self.norm_x, self.norm_z = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images).flatten(2).transpose(1, 2) + self.pos  # (B, N, D)
        b, _, d = x.shape
        z = F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(b, d, 8, 8), self.grid)
        z = z.flatten(2).transpose(1, 2)  # (B, M, D)
        for layer in self.layers:
            x, z = layer(x, z)
        return self.fc(self.norm_z(z).mean(1) + self.norm_x(x).mean(1))


def build(grid: tuple[int, int] = (2, 2)) -> DivScaleLookupViT:
    torch.manual_seed(0)
    return DivScaleLookupViT(grid)
