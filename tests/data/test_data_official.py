"""Readers of the official CIFAR-10/100, STL-10 and IDX formats, downloads and checksums.

The real data cannot be downloaded on the project's machines: the readers are checked on files
the tests write in the official formats, on the 20 real CIFAR-10 test images that the foolbox
wheel ships (when ``PDENET_FOOLBOX_WHEEL`` names it; ``.ci/run`` fetches it), and on Fashion-MNIST
where Debian's package is installed.
"""

import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.data import load_dataset
from pdenet_analysis.data import official


def _write_cifar(folder, rng, n=10, hundred=False, images=None, labels=None):
    os.makedirs(folder, exist_ok=True)
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        x = images if images is not None else rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = labels if labels is not None else rng.integers(0, 100 if hundred else 10, len(x))
        d = {b"data": x.reshape(len(x), 3072), b"filenames": [b"x"] * len(x)}
        if hundred:
            d[b"fine_labels"], d[b"coarse_labels"] = list(map(int, y)), list(map(int, y // 5))
        else:
            d[b"labels"] = list(map(int, y))
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(d, f, protocol=2)
    return x, y


def test_cifar10_reader_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _write_cifar(str(tmp_path / "cifar-10-batches-py"), rng)
    s = load_dataset("cifar10", str(tmp_path))
    assert s.x_train.shape == (50, 3, 32, 32) and s.x_test.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal((s.x_test * 255).round().byte().numpy(), x)
    np.testing.assert_array_equal(s.y_test.numpy(), y)


def test_cifar100_reader_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    _, y = _write_cifar(str(tmp_path / "cifar-100-python"), rng, hundred=True)
    s = load_dataset("cifar100", str(tmp_path))
    assert s.n_classes == 100 and torch.equal(s.y_test, torch.as_tensor(y))


def test_cifar_reader_rejects_bad_files(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(str(folder), rng)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(pa.DataError, match="data_batch_3"):
        load_dataset("cifar10", str(tmp_path))
    os.remove(folder / "data_batch_3")
    with pytest.raises(pa.DataError, match="data_batch_3 is missing"):
        load_dataset("cifar10", str(tmp_path))


def test_stl10_reader_column_major_layout(tmp_path):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (4, 3, 96, 96), dtype=np.uint8)
    lab = np.array([1, 10, 3, 4], dtype=np.uint8)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split in ("train", "test"):
        img.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # official: column-major per channel
        lab.tofile(folder / f"{split}_y.bin")
    s = load_dataset("stl10", str(tmp_path))
    np.testing.assert_array_equal((s.x_train * 255).round().byte().numpy(), img)
    assert s.y_train.tolist() == [0, 9, 2, 3]
    with open(folder / "test_X.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(pa.DataError, match="truncated"):
        load_dataset("stl10", str(tmp_path))


def test_real_cifar10_images_from_foolbox_wheel(tmp_path):
    wheel = os.environ.get("PDENET_FOOLBOX_WHEEL")
    if not wheel or not os.path.exists(wheel):
        pytest.skip("set PDENET_FOOLBOX_WHEEL to foolbox-3.3.4's wheel (.ci/run does) to test on real CIFAR images")
    import matplotlib.image as mpimg

    images, labels = [], []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist() if re.search(r"data/cifar10_\d+_\d+\.png$", n)):
            arr = mpimg.imread(io.BytesIO(z.read(name)), format="png")
            images.append((np.asarray(arr)[..., :3] * 255).round().astype(np.uint8).transpose(2, 0, 1))
            labels.append(int(re.search(r"_(\d+)\.png$", name).group(1)))
    assert len(images) == 20
    x, y = np.stack(images), np.array(labels)
    _write_cifar(str(tmp_path / "cifar-10-batches-py"), None, images=x, labels=y)
    s = load_dataset("cifar10", str(tmp_path))
    np.testing.assert_array_equal((s.x_test * 255).round().byte().numpy(), x)
    assert s.y_test.tolist() == labels and 0.3 < float(s.x_test.mean()) < 0.7


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_download_verifies_checksum(tmp_path, monkeypatch):
    payload = b"pretend archive"
    good = official.hashlib.md5(payload).hexdigest()
    monkeypatch.setitem(official.DOWNLOADS, "toy", [("https://example.invalid/toy.bin", good)])
    official.download("toy", str(tmp_path), opener=lambda url: _FakeResponse(payload))
    assert (tmp_path / "toy.bin").read_bytes() == payload
    monkeypatch.setitem(official.DOWNLOADS, "toy2", [("https://example.invalid/toy2.bin", good)])
    with pytest.raises(pa.DataError, match="MD5 .* expected"):
        official.download("toy2", str(tmp_path), opener=lambda url: _FakeResponse(b"corrupted"))


def test_official_checksums_are_md5_hex():
    for name, files in official.DOWNLOADS.items():
        for url, md5 in files:
            assert re.fullmatch(r"[0-9a-f]{32}", md5) and url.startswith("http"), name


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_matches_published_statistics():
    s = load_dataset("fashion_mnist")
    assert s.x_train.shape == (60000, 1, 28, 28) and s.x_test.shape == (10000, 1, 28, 28)
    assert abs(float(s.x_train.mean()) - 0.2860) < 1e-4 and abs(float(s.x_train.std()) - 0.3530) < 1e-4
    assert s.y_train.bincount().tolist() == [6000] * 10


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_cpu_smoke_training():
    from pdenet_analysis.training import TrainConfig, train

    s = load_dataset("fashion_mnist")
    small = type(s)(s.x_train[:2000], s.y_train[:2000], s.x_test[:500], s.y_test[:500], "fashion_mnist")
    torch.manual_seed(0)
    model = pa.build_preset("fashion_mnist-hamiltonian").float()
    r = train(model, small, TrainConfig(epochs=3, batch_size=50, progress=False, augment=True, flip=True))
    assert r["test_accuracy"] > 0.6  # ten classes: chance is 0.1


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but a plain pickle.load would call it


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_load_without_running_code(tmp_path, protocol):
    """A batch written with any pickle protocol reads; one that names any other callable is refused."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-10-batches-py"
    x, _ = _write_cifar(str(folder), rng)
    d = {b"data": x.reshape(len(x), 3072), b"labels": [0] * len(x)}
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(d, f, protocol=protocol)
    assert load_dataset("cifar10", str(tmp_path)).x_test.shape == (10, 3, 32, 32)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({**d, b"x": _RunsCode()}, f, protocol=protocol)
    with pytest.raises(pa.DataError, match="test_batch .*names posix.getcwd.*could run code"):
        load_dataset("cifar10", str(tmp_path))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump([1, 2], f, protocol=protocol)
    with pytest.raises(pa.DataError, match="holds a list"):
        load_dataset("cifar10", str(tmp_path))


def test_corrupt_gzip_and_out_of_range_idx_labels_are_data_errors(tmp_path):
    import gzip
    import struct

    def idx(path, arr, gz):
        raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()
        (gzip.open if gz else open)(path, "wb").write(raw)

    rng = np.random.default_rng(4)
    for split, (xn, yn) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        idx(tmp_path / (xn + ".gz"), rng.integers(0, 256, (5, 28, 28)), True)
        idx(tmp_path / yn, np.array([0, 1, 2, 3, 12 if split == "test" else 4]), False)
    with pytest.raises(pa.DataError, match="t10k-labels-idx1-ubyte has label 12, outside the 10 classes"):
        load_dataset("fashion_mnist", str(tmp_path))
    raw = bytearray((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a damaged deflate stream
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(bytes(raw))
    with pytest.raises(pa.DataError, match="train-images-idx3-ubyte.gz cannot be read"):
        load_dataset("fashion_mnist", str(tmp_path))
