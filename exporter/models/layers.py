"""Building blocks shared by LookupViT and the ViT baseline.

Everything here is plain tensor ops with static shapes per grid (no data-dependent Python control
flow in ``forward``) so that torch's dynamo ONNX exporter traces it cleanly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Image patches (conv p x p, stride p) or video tubelets (conv t x p x p) to tokens.

    (B, C, H, W) -> (B, H/p * W/p, D);  (B, C, T, H, W) -> (B, T/t * H/p * W/p, D)
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int, tubelet: int | None = None):
        super().__init__()
        self.proj: nn.Module
        if tubelet is None:
            self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        else:
            k = (tubelet, patch_size, patch_size)
            self.proj = nn.Conv3d(in_chans, dim, k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, [T',] H', W')
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, S, D) -> (B, H, S, d)"""
    b, s, d = x.shape
    return x.reshape(b, s, heads, d // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, S, d) -> (B, S, D)"""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection.

    Uses ``scaled_dot_product_attention``: the dynamo exporter writes it as the ONNX ``Attention``
    op at opset 23 and as MatMul-Softmax-MatMul below that.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads)  # (B, S, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, S, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, S, d)
        return self.proj(merge_heads(out))  # (B, S, D)


class Block(nn.Module):
    """Pre-LN transformer block: x += MHSA(LN(x)); x += MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
