import pytest
import torch

from exporter.errors import UserError
from exporter.models import WeightsMismatch, create_model, load_weights, save_weights


def test_safetensors_roundtrip(tmp_path):
    a = create_model("lookupvit_tiny32", seed=1)
    path = save_weights(a, tmp_path / "w.safetensors")
    b = create_model("lookupvit_tiny32", weights=path)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_torch_checkpoint(tmp_path, wrap):
    a = create_model("lookupvit_tiny32", seed=2)
    state = a.state_dict()
    if wrap:
        state = {wrap: {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(state, tmp_path / "w.pt")
    b = create_model("lookupvit_tiny32", weights=tmp_path / "w.pt")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(a(x), b(x))


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    src = create_model("lookupvit_tiny32").state_dict()
    src.pop("head.weight")
    src["extra.bias"] = torch.zeros(3)
    src["patch_embed.proj.weight"] = torch.zeros(64, 1, 4, 4)
    torch.save(src, tmp_path / "bad.pt")
    with pytest.raises(WeightsMismatch) as e:
        load_weights(create_model("lookupvit_tiny32"), tmp_path / "bad.pt")
    assert e.value.missing == ["head.weight"]
    assert e.value.unexpected == ["extra.bias"]
    assert e.value.shapes == [("patch_embed.proj.weight", (64, 3, 4, 4), (64, 1, 4, 4))]
    text = str(e.value)
    assert "missing (1): head.weight" in text and "extra.bias" in text and "[64, 1, 4, 4]" in text


def test_position_embedding_resized_for_another_image_size(tmp_path):
    """Weights trained at 32 px load into the same variant at 48 px (lookup grid 8x8 -> 12x12)."""
    path = save_weights(create_model("lookupvit_tiny32", seed=1), tmp_path / "w.safetensors")
    model = create_model("lookupvit_tiny32", weights=path, image_size=48)
    assert model.pos_embed.shape == (1, 144, 64)
    assert model(torch.randn(1, 3, 48, 48), grid=(3, 3)).shape == (1, 10)
    vit = save_weights(create_model("vit_tiny32", seed=1), tmp_path / "v.safetensors")
    resized = create_model("vit_tiny32", weights=vit, image_size=48)
    assert resized.pos_embed.shape == (1, 145, 64)  # class token kept
    assert torch.equal(resized.pos_embed[:, 0], create_model("vit_tiny32", seed=1).pos_embed[:, 0])


def test_other_variant_weights_rejected():
    with pytest.raises(WeightsMismatch):
        create_model("lookupvit_tiny32", weights=create_model_weights_path())


def create_model_weights_path():
    from exporter.models import get_variant

    return get_variant("lookupvit_digits").weights


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        create_model("lookupvit_tiny32", weights=tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="Cannot read weights"):
        create_model("lookupvit_tiny32", weights=tmp_path / "junk.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError, match="no state dict"):
        create_model("lookupvit_tiny32", weights=tmp_path / "list.pt")


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        save_weights(create_model("lookupvit_tiny32"), tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []
