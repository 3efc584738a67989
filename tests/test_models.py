import pytest
import torch

from exporter.errors import UserError
from exporter.models import create_model, get_variant, list_variants, parse_grid, parse_grids
from exporter.models.config import LookupViTConfig, grid_label

REQUIRED = [
    "lookupvit_ti16", "lookupvit_s16", "lookupvit_b16", "lookupvit_l16", "lookupvit_b8",
    "lookupvit_b16_video", "vit_b16", "lookupvit_digits",
]


def test_registry_has_required_variants():
    names = {v.name for v in list_variants()}
    assert len(names) >= 12
    assert set(REQUIRED) <= names
    assert {"vit_ti16", "vit_s16", "vit_l16"} <= names
    families = {v.family for v in list_variants()}
    assert families == {"image", "video", "features", "vit"}


def test_unknown_variant_suggests_close_names():
    with pytest.raises(UserError) as e:
        get_variant("lookupvit_b61")
    assert "lookupvit_b16" in str(e.value)


def test_unknown_override_is_named():
    with pytest.raises(UserError, match="depht"):
        create_model("lookupvit_tiny32", depht=3)


def test_image_224_variants_default_grids():
    for name in ["lookupvit_ti16", "lookupvit_s16", "lookupvit_b16", "lookupvit_l16", "lookupvit_b8"]:
        assert [g[0] for g in get_variant(name).config.default_grids] == [3, 5, 7, 10]


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (4, 4), (8, 8)])
def test_image_shapes_at_grids(grid):
    model = create_model("lookupvit_tiny32", pretrained=False)
    out = model(torch.randn(3, 3, 32, 32), grid=grid)
    assert out.shape == (3, 10)
    x, z = model.forward_features(torch.randn(2, 3, 32, 32), grid=grid)
    assert x.shape == (2, 64, 64)
    assert z.shape == (2, grid[0] * grid[1], 64)


@pytest.mark.parametrize("grid", [(1, 1, 1), (2, 4, 4), (2, 8, 8), (1, 3, 5)])
def test_video_shapes_at_grids(grid):
    model = create_model("lookupvit_tiny32_video", pretrained=False)
    video = torch.randn(2, 3, 4, 32, 32)  # (B, C, T, H, W)
    assert model(video, grid=grid).shape == (2, 10)
    x, z = model.forward_features(video, grid=grid)
    assert x.shape == (2, 2 * 8 * 8, 64)
    assert z.shape == (2, grid[0] * grid[1] * grid[2], 64)


@pytest.mark.parametrize("grid", [(2, 2), (5, 5)])
def test_feature_head_returns_both_streams(grid):
    model = create_model("lookupvit_tiny32_features")
    lookup, compressed = model(torch.randn(2, 3, 32, 32), grid=grid)
    assert lookup.shape == (2, 64, 64)
    assert compressed.shape == (2, grid[0] * grid[1], 64)


def test_any_variant_can_return_features():
    model = create_model("lookupvit_digits", head="features")
    lookup, compressed = model(torch.randn(1, 1, 32, 32), grid=(3, 3))
    assert lookup.shape == (1, 64, 64) and compressed.shape == (1, 9, 64)


def test_vit_shapes():
    model = create_model("vit_tiny32")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_real_size_b16_forward():
    model = create_model("lookupvit_ti16")
    assert model(torch.randn(1, 3, 224, 224), grid=(7, 7)).shape == (1, 1000)


def test_grid_change_leaves_parameters_unchanged():
    model = create_model("lookupvit_tiny32", pretrained=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for g in [(1, 1), (4, 4), (8, 8)]:
        model.set_grid(g)
        outs.append(model(x))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.allclose(outs[0], outs[1])  # the grid does change the computation


def test_seeded_initialisation_is_deterministic():
    a = create_model("lookupvit_tiny32", seed=3).state_dict()
    b = create_model("lookupvit_tiny32", seed=3).state_dict()
    c = create_model("lookupvit_tiny32", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["pos_embed"], c["pos_embed"])


def test_scatter_modes_differ_but_share_parameters():
    x = torch.randn(2, 3, 32, 32)
    a = create_model("lookupvit_tiny32", scatter="logits")
    b = create_model("lookupvit_tiny32", scatter="probs")
    assert a.state_dict().keys() == b.state_dict().keys()
    assert not torch.allclose(a(x), b(x))


@pytest.mark.parametrize("pool", ["compressed", "lookup", "both"])
def test_pool_choices(pool):
    model = create_model("lookupvit_tiny32", pool=pool)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_grid_parsing():
    assert parse_grid("7", (14, 14)) == (7, 7)
    assert parse_grid("3x5", (14, 14)) == (3, 5)
    assert parse_grid(10, (8, 14, 14)) == (8, 10, 10)  # capped at the temporal extent
    assert parse_grid("4x7x7", (8, 14, 14)) == (4, 7, 7)
    assert parse_grids("3,5,7", (14, 14)) == [(3, 3), (5, 5), (7, 7)]
    assert grid_label((7, 7)) == "7" and grid_label((4, 7, 7)) == "4x7x7"


@pytest.mark.parametrize(
    "spec,match",
    [("15", "does not fit"), ("0", "does not fit"), ("seven", "Cannot read"), ("2x2x2", "axes")],
)
def test_grid_errors(spec, match):
    with pytest.raises(UserError, match=match):
        parse_grid(spec, (14, 14))


def test_set_grid_rejects_too_large():
    with pytest.raises(UserError, match="does not fit"):
        create_model("lookupvit_tiny32").set_grid((9, 9))


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"image_size": 30}, "multiple of patch_size"),
        ({"heads": 5}, "divisible by heads"),
        ({"pool": "cls"}, "pool"),
        ({"frames": 5, "tubelet": 2}, "tubelet"),
        ({"frames": 4, "tubelet": 2, "antialias": True, "default_grids": ()}, "antialias"),
    ],
)
def test_config_errors(changes, match):
    with pytest.raises(UserError, match=match):
        LookupViTConfig(**{"image_size": 32, "patch_size": 4, "dim": 64, "heads": 4, "default_grids": (), **changes})
