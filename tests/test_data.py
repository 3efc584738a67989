import numpy as np
import pytest

from exporter.data import load_data
from exporter.errors import UserError
from exporter.models import get_variant

DIGITS = get_variant("lookupvit_digits").config
RGB = get_variant("lookupvit_tiny32").config


def test_digits_split_is_deterministic_and_disjoint():
    test = load_data("digits", DIGITS, "test")
    train = load_data("digits", DIGITS, "train")
    assert len(test) == 360 and len(train) == 1437
    assert test.images.shape == (360, 1, 32, 32) and test.images.dtype == np.float32
    assert np.array_equal(load_data("digits", DIGITS, "test").labels, test.labels)
    assert set(np.unique(test.labels)) == set(range(10))
    # normalised with mean 0.5, std 0.5: values in [-1, 1]
    assert test.images.min() >= -1.0 - 1e-6 and test.images.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    arr = {"NHW": imgs[..., 0], "NHWC": imgs, "NCHW": imgs.transpose(0, 3, 1, 2)}[layout]
    np.savez(tmp_path / "d.npz", images=arr, labels=np.arange(5) % 2)
    data = load_data(tmp_path / "d.npz", RGB)
    assert data.images.shape == (5, 3, 32, 32)
    assert list(data.labels) == [0, 1, 0, 1, 0]


def test_folder_dataset(tmp_path):
    from PIL import Image

    for cls in ["cat", "dog"]:
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    data = load_data(tmp_path, DIGITS)
    assert data.images.shape == (6, 1, 32, 32)
    assert list(data.labels) == [0, 0, 0, 1, 1, 1]
    assert data.class_names == ["cat", "dog"]


def test_bad_sources(tmp_path):
    with pytest.raises(UserError, match="neither"):
        load_data(tmp_path / "missing.npz", RGB)
    np.savez(tmp_path / "x.npz", pictures=np.zeros((2, 8, 8)))
    with pytest.raises(UserError, match="'images' and 'labels'"):
        load_data(tmp_path / "x.npz", RGB)
    with pytest.raises(UserError, match="no class sub-folders"):
        load_data(tmp_path, RGB)
    with pytest.raises(UserError, match="video"):
        load_data("digits", get_variant("lookupvit_tiny32_video").config)
