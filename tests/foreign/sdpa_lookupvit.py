"""A LookupViT written independently of ours (test-only): the gather uses
``scaled_dot_product_attention``, the lookup keys and values come from one fused KV Linear, the
scatter hand-writes its softmax over the transposed logits (recomputed, scale multiplied on the
logits), and the compressed tokens' self-attention is hand-written over a fused QKV Linear.

Factory contract: ``build(grid=(gh, gw))`` returns an nn.Module mapping (B, 3, 32, 32) to (B, 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, s, d = t.shape
    return t.reshape(b, s, heads, d // heads).permute(0, 2, 1, 3)  # (B, H, S, d)


def merge(t: torch.Tensor) -> torch.Tensor:
    b, h, s, d = t.shape
    return t.permute(0, 2, 1, 3).reshape(b, s, h * d)  # (B, S, D)


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.h, self.scale = heads, (dim // heads) ** -0.5
        self.ln_z, self.ln_x, self.ln_sa, self.ln_mlp, self.ln_v = (nn.LayerNorm(dim) for _ in range(5))
        self.q, self.kv, self.o_z = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.qkv, self.o_sa = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.v_z, self.o_x = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q = split(self.q(self.ln_z(z)), self.h)  # (B, H, M, d)
        kv = self.kv(self.ln_x(x)).reshape(b, n, 2, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]  # each (B, H, N, d)
        z = z + self.o_z(merge(F.scaled_dot_product_attention(q, k, v)))  # gather (B, M, D)

        m = z.shape[1]
        qkv = self.qkv(self.ln_sa(z)).reshape(b, m, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        sq, sk, sv = qkv.unbind(0)  # each (B, H, M, d)
        att = (sq @ sk.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, H, M, M)
        z = z + self.o_sa(merge(att @ sv))
        z = z + self.mlp(self.ln_mlp(z))

        logits = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, M, N), recomputed for the scatter
        p = torch.softmax(logits.transpose(-2, -1), dim=-1)  # (B, H, N, M), over the M compressed tokens
        x = x + self.o_x(merge(p @ split(self.v_z(self.ln_v(z)), self.h)))  # (B, N, D)
        return x, z


class SdpaLookupViT(nn.Module):
    image_size = 32
    in_chans = 3

    def __init__(self, grid: tuple[int, int] = (2, 2), dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.grid = tuple(grid)
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.pos = nn.Parameter(torch.randn(1, 64, dim) * 0.02)
        self.layers = nn.ModuleList(Layer(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(2 * dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images).flatten(2).transpose(1, 2) + self.pos  # (B, N, D)
        b, _, d = x.shape
        z = F.interpolate(x.transpose(1, 2).reshape(b, d, 8, 8), size=self.grid, mode="bilinear")
        z = z.flatten(2).transpose(1, 2)  # (B, M, D)
        for layer in self.layers:
            x, z = layer(x, z)
        return self.fc(torch.cat([self.norm(z).mean(1), self.norm(x).mean(1)], dim=-1))


def build(grid: tuple[int, int] = (2, 2)) -> SdpaLookupViT:
    torch.manual_seed(0)
    return SdpaLookupViT(grid)
