"""Offline data sets: shipped packages only, deterministic subsets, conversion to the model's input."""

import numpy as np
import pytest
import torch

from harness.data import batches, load_data, sources, to_model_input
from harness.data.base import ImageSet
from harness.errors import ConfigError, MissingDependencyError


def test_digits_split_is_stratified_and_deterministic():
    a, b = load_data("digits"), load_data("digits")
    assert np.array_equal(a.train.y, b.train.y) and np.array_equal(a.test.x, b.test.x)
    assert set(np.unique(a.test.y)) == set(range(10))
    assert len(a.train) + len(a.test) == 1797 and a.native_shape == (1, 8, 8)


def test_subsets_depend_on_the_seed_only():
    cfg = {"name": "digits", "n_train": 100, "n_test": 50, "seed": 3}
    a, b = load_data(cfg), load_data(cfg)
    c = load_data({**cfg, "seed": 4})
    assert len(a.train) == 100 and len(a.test) == 50
    assert np.array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.y, c.train.y)


def test_subset_larger_than_the_set_is_refused():
    with pytest.raises(ConfigError):
        load_data({"name": "digits", "n_train": 10**6})


def test_fashion_mnist_from_the_debian_package():
    if not sources.FASHION_MNIST_DIR.exists():
        pytest.skip("dataset-fashion-mnist not installed")
    d = load_data({"name": "fashion_mnist", "n_train": 500, "n_test": 200})
    assert d.native_shape == (1, 28, 28) and d.num_classes == 10 and len(d.test) == 200


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(MissingDependencyError, match="apt-get install dataset-fashion-mnist"):
        sources.fashion_mnist(tmp_path)


def test_mnist5k_and_lfw_are_offline_tasks():
    m = load_data("mnist5k")
    assert len(m.train) + len(m.test) == 5000 and m.native_shape == (1, 28, 28)
    lfw = load_data("lfw_person")
    assert lfw.num_classes == 2 and len(lfw.train) + len(lfw.test) == 200


def test_idx_reader_roundtrip(tmp_path):
    import gzip
    import struct

    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 2, 3, 4) + arr.tobytes())
    assert np.array_equal(sources.read_idx(p), arr)


def test_gray_images_become_the_models_rgb_resolution():
    x = np.full((2, 1, 8, 8), 255, np.uint8)
    x[:, :, :4] = 0
    t = to_model_input(x, (3, 16, 16))
    assert t.shape == (2, 3, 16, 16)
    assert torch.equal(t[:, 0], t[:, 2])  # replicated channels
    assert float(t.min()) == -1.0 and float(t.max()) == 1.0  # mean = std = 0.5 maps to [-1, 1]


def test_batches_cover_the_set_once_and_shuffle_deterministically():
    s = ImageSet(np.zeros((10, 1, 4, 4), np.uint8), np.arange(10))
    ys = torch.cat([y for _, y in batches(s, (1, 4, 4), 3, shuffle=True, seed=1)])
    ys2 = torch.cat([y for _, y in batches(s, (1, 4, 4), 3, shuffle=True, seed=1)])
    assert sorted(ys.tolist()) == list(range(10)) and torch.equal(ys, ys2)
