"""Plain ViT baselines (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

Same widths as the LookupViT variants, a class token, pre-LN blocks with MLP ratio 4: the standard
shapes, so that vit_b16 is the 86.6 M-parameter, 17.6 GMAC ViT-B/16 at 224 px.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ViTConfig
from .layers import Block, PatchEmbed
from .registry import register_variant


class ViT(nn.Module):
    """(B, C, H, W) -> (B, classes)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.patch_embed = PatchEmbed(cfg.in_chans, d, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_lookup_tokens + 1, d))
        hidden = cfg.mlp_hidden(cfg.mlp_ratio)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, hidden, cfg.ln_eps) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.head = nn.Linear(d, cfg.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, N + 1, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))  # (B, classes)


_VIT = "ViT-{size}/{p} baseline, 224 px"


@register_variant("vit", _VIT.format(size="Ti", p=16))
def vit_ti16() -> ViTConfig:
    return ViTConfig(dim=192, depth=12, heads=3)


@register_variant("vit", _VIT.format(size="S", p=16))
def vit_s16() -> ViTConfig:
    return ViTConfig(dim=384, depth=12, heads=6)


@register_variant("vit", _VIT.format(size="B", p=16))
def vit_b16() -> ViTConfig:
    return ViTConfig(dim=768, depth=12, heads=12)


@register_variant("vit", _VIT.format(size="L", p=16))
def vit_l16() -> ViTConfig:
    return ViTConfig(dim=1024, depth=24, heads=16)


@register_variant("vit", _VIT.format(size="B", p=8))
def vit_b8() -> ViTConfig:
    return ViTConfig(dim=768, depth=12, heads=12, patch_size=8)


@register_variant("vit", "ViT baseline for tests: 32 px, patch 4, 2 layers, width 64")
def vit_tiny32() -> ViTConfig:
    return ViTConfig(image_size=32, patch_size=4, num_classes=10, dim=64, depth=2, heads=4)
