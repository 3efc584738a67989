"""The analytic cost model against torch's FLOP counter and the real parameter count."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from exporter.models import build_model, create_model, get_variant, list_variants, model_cost


def counted_macs(model, grid):
    c = model.cfg
    x = torch.randn(1, *c.input_shape)
    # the math SDPA backend decomposes attention into matmuls the counter sees on CPU
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x) if grid is None else model(x, grid=grid)
    return counter.get_total_flops() / 2  # FLOPs -> MACs


@pytest.mark.parametrize(
    "name,grids",
    [
        ("lookupvit_tiny32", [(2, 2), (5, 3)]),
        ("lookupvit_digits", [(1, 1), (6, 6)]),
        ("lookupvit_tiny32_video", [(1, 2, 2), (2, 6, 6)]),
        ("lookupvit_tiny32_features", [(2, 2), (4, 4)]),
        ("lookupvit_ti16", [(3, 3), (10, 10)]),
        ("vit_tiny32", [None]),
        ("vit_ti16", [None]),
    ],
)
def test_macs_match_flop_counter(name, grids):
    model = create_model(name, pretrained=False)
    for grid in grids:
        analytic = model_cost(model.cfg, grid).macs
        counted = counted_macs(model, grid)
        assert abs(analytic - counted) <= 0.01 * counted, (name, grid, analytic, counted)


@pytest.mark.parametrize("pool", ["lookup", "compressed"])
def test_macs_match_for_pool_choices(pool):
    model = create_model("lookupvit_tiny32", pool=pool, mlp_ratio_lookup=0.5)
    analytic = model_cost(model.cfg, (3, 3)).macs
    assert abs(analytic - counted_macs(model, (3, 3))) <= 0.01 * analytic


@pytest.mark.parametrize("variant", [v.name for v in list_variants()])
def test_param_count_matches_model(variant):
    with torch.device("meta"):  # no memory for the large variants
        model = build_model(get_variant(variant).config)
    assert model_cost(model.cfg).params == sum(p.numel() for p in model.parameters())


def test_published_vit_b16_figure():
    cost = model_cost(get_variant("vit_b16").config)
    assert 17.4 <= cost.gmacs <= 17.6
    assert abs(cost.params / 1e6 - 86.6) < 0.1


def test_lookupvit_b16_cheaper_than_vit_b16_at_small_grids():
    vit = model_cost(get_variant("vit_b16").config).macs
    cfg = get_variant("lookupvit_b16").config
    for g in [3, 5, 7]:
        assert model_cost(cfg, (g, g)).macs < vit


def test_design_formula_with_rc4():
    """docs/paper.md's per-layer formula (Cost model), with rl = 1, rc = 4."""
    cfg = get_variant("lookupvit_b16").config
    n, m, d, rl, rc = 196, 49, 768, 1, 4
    per_layer = (3 + 2 * rl) * n * d * d + (7 + 2 * rc) * m * d * d + 3 * n * m * d + 2 * m * m * d
    b = model_cost(cfg, (7, 7)).breakdown
    assert b["lookup"] + b["compressed"] + b["attention"] == 12 * per_layer


def test_macs_grow_with_grid():
    cfg = get_variant("lookupvit_b16").config
    macs = [model_cost(cfg, (g, g)).macs for g in range(1, 15)]
    assert macs == sorted(macs)
