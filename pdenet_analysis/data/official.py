"""Official distributions: addresses, checksums, downloads, and readers for CIFAR-10/100 and STL-10.

Checksums are the MD5 of the files as their publishers distribute them (the same values that
torchvision checks). A download is verified before it is unpacked. Files already on disk are
validated by structure (magic numbers, sizes, label ranges), not by checksum: repackagers such as
Debian recompress them.

Formats:
* CIFAR-10 ``cifar-10-python.tar.gz``: pickled dicts ``data_batch_1..5`` and ``test_batch`` with
  ``data`` (uint8, N×3072: the R, G, B planes of a 32×32 image, row-major) and ``labels``.
* CIFAR-100 ``cifar-100-python.tar.gz``: ``train`` and ``test`` with ``fine_labels`` (100 classes).
* STL-10 ``stl10_binary.tar.gz``: ``train_X.bin``/``test_X.bin`` (uint8, each image 3×96×96 stored
  column-major), ``train_y.bin``/``test_y.bin`` (labels 1..10).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import urllib.request

import numpy as np
import torch

from ..errors import DataError
from .split import Split

DOWNLOADS = {
    "cifar10": [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")],
    "cifar100": [("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")],
    "stl10": [("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb")],
    "fashion_mnist": [
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
    "mnist": [
        ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
}


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: str, md5: str) -> None:
    got = md5sum(path)
    if got != md5:
        raise DataError(f"{path} has MD5 {got}, expected {md5}: the file is corrupt or incomplete; delete it and download again")


def download(name: str, root: str, opener=urllib.request.urlopen) -> str:
    """Download ``name``'s official files into ``root``, verify their checksums, unpack archives."""
    if name not in DOWNLOADS:
        raise DataError(f"no official download for {name!r}; downloadable: {', '.join(sorted(DOWNLOADS))}")
    os.makedirs(root, exist_ok=True)
    for url, md5 in DOWNLOADS[name]:
        path = os.path.join(root, os.path.basename(url))
        if not (os.path.exists(path) and md5sum(path) == md5):
            tmp = path + ".part"
            try:
                with opener(url) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                raise DataError(f"downloading {url} failed ({e}); download it by hand into {root}") from e
            os.replace(tmp, path)
            verify(path, md5)
        if path.endswith(".tar.gz"):
            with tarfile.open(path) as t:
                t.extractall(root, filter="data")
    return root


#: the only globals a CIFAR python batch may name: numpy's array reconstruction (under the module
#: names numpy 1 and 2 pickle it with) and the codec Python 2 pickles use for byte strings
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and refuses every other global, so
    that a data file cannot run code (a plain ``pickle.load`` would call whatever the file names)."""

    def find_class(self, module, name):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never holds (refused: "
                                     "loading it could run code)")


def _unpickle(path: str) -> dict:
    if not os.path.exists(path):
        raise DataError(f"data file {path} is missing")
    try:
        with open(path, "rb") as f:
            d = _DataOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - pickle raises many types on a bad file
        raise DataError(f"data file {path} is not a CIFAR python batch ({type(e).__name__}: {e}); download it again") from e
    if not isinstance(d, dict):
        raise DataError(f"data file {path} is not a CIFAR python batch (it holds a {type(d).__name__}, not a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar_batch(path: str, label_key: str = "labels", n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(images N×3×32×32 uint8, labels N) from one CIFAR python batch, validated."""
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"data file {path} lacks 'data' or {label_key!r}: is it the right CIFAR version?")
    data, labels = np.asarray(d["data"]), np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"data file {path} has data {data.dtype} {data.shape} and {len(labels)} labels; "
                        "expected uint8 N×3072 and N labels")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
        raise DataError(f"data file {path} has labels outside 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def read_stl10(x_path: str, y_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×3×96×96 uint8, labels 0..9) from STL-10 binary files, validated."""
    for p in (x_path, y_path):
        if not os.path.exists(p):
            raise DataError(f"data file {p} is missing")
    x = np.fromfile(x_path, dtype=np.uint8)
    y = np.fromfile(y_path, dtype=np.uint8).astype(np.int64)
    per = 3 * 96 * 96
    if x.size % per or x.size // per != y.size:
        raise DataError(f"{x_path} holds {x.size} bytes ({x.size / per:.2f} images) but {y_path} has {y.size} labels: "
                        "a file is truncated or corrupt; download again")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{y_path} has labels outside 1..10")
    return x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), y - 1


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0


def load_cifar(root: str, coarse: bool = False, hundred: bool = False):
    """CIFAR-10 (or -100 with ``hundred``) from ``root`` (containing the unpacked folder)."""

    if hundred:
        folder = os.path.join(root, "cifar-100-python") if os.path.isdir(os.path.join(root, "cifar-100-python")) else root
        key, n = ("coarse_labels", 20) if coarse else ("fine_labels", 100)
        xtr, ytr = read_cifar_batch(os.path.join(folder, "train"), key, n)
        xte, yte = read_cifar_batch(os.path.join(folder, "test"), key, n)
        return Split(_to_tensor(xtr), torch.from_numpy(ytr), _to_tensor(xte), torch.from_numpy(yte), "cifar100", n)
    folder = os.path.join(root, "cifar-10-batches-py") if os.path.isdir(os.path.join(root, "cifar-10-batches-py")) else root
    parts = [read_cifar_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = read_cifar_batch(os.path.join(folder, "test_batch"))
    return Split(_to_tensor(xtr), torch.from_numpy(ytr), _to_tensor(xte), torch.from_numpy(yte), "cifar10")


def load_stl10(root: str):

    folder = os.path.join(root, "stl10_binary") if os.path.isdir(os.path.join(root, "stl10_binary")) else root
    xtr, ytr = read_stl10(os.path.join(folder, "train_X.bin"), os.path.join(folder, "train_y.bin"))
    xte, yte = read_stl10(os.path.join(folder, "test_X.bin"), os.path.join(folder, "test_y.bin"))
    return Split(_to_tensor(xtr), torch.from_numpy(ytr), _to_tensor(xte), torch.from_numpy(yte), "stl10")
