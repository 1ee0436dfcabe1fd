"""Datasets: loaders on small files written in the exact real formats, and the real digits.

Fixtures: `_write_idx` writes IDX files byte for byte as the Fashion-MNIST distribution does
(magic 0x00000803 / 0x00000801, big-endian uint32 sizes, uint8 data, optionally gzip), and
`tests.nn.fixtures.write_cifar` writes CIFAR batches as the official archives do.
"""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from tests.nn.fixtures import cifar_pickle as _cifar_pickle
from tests.nn.fixtures import write_cifar as _write_cifar
from thermosgd.nn.data import (
    FASHION_MNIST_DIR,
    Dataset,
    data_location,
    iid_batches,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    make_teacher_student,
    read_idx,
    with_label_noise,
)

# ------------------------------------------------------------------ format writers


def _idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_idx(path, arr, gz=True):
    data = _idx_bytes(arr)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fmnist_dir(tmp_path, n_train=30, n_test=12, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, gz)
        arrays[prefix] = (images, labels)
    return arrays


# ------------------------------------------------------------------ IDX / Fashion-MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a", arr, gz)
    out = read_idx(tmp_path / ("a.gz" if gz else "a"))
    assert out.dtype == np.uint8 and np.array_equal(out, arr)
    ints = np.array([1, -2, 3], dtype=">i4")
    _write_idx(tmp_path / "b", ints, gz=False)
    assert np.array_equal(read_idx(tmp_path / "b"), [1, -2, 3])


def test_read_idx_rejects_corrupt_files(tmp_path):
    good = _idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    (tmp_path / "magic").write_bytes(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(good[:-5])
    with pytest.raises(ValueError, match="size mismatch"):
        read_idx(tmp_path / "short")
    (tmp_path / "gz").write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(tmp_path / "gz")
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(tmp_path / "missing")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files(tmp_path, gz):
    arrays = _fmnist_dir(tmp_path, gz=gz)
    ds = load_fashion_mnist(tmp_path)
    assert ds.name == "fashion-mnist" and ds.num_classes == 10
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (12, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert np.array_equal(ds.y_train.numpy(), arrays["train"][1])
    assert np.array_equal(ds.y_test.numpy(), arrays["t10k"][1])
    # Per-channel normalization with training statistics (float32: |mean| ~ 1e-7).
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1) < 1e-3
    raw = arrays["train"][0].astype(np.float64) / 255
    expected = (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), expected, rtol=0, atol=1e-5)
    flat = load_fashion_mnist(tmp_path, flatten=True)
    assert flat.x_train.shape == (30, 784) and flat.input_shape == (784,)


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    _fmnist_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="missing t10k-labels"):
        load_fashion_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8), gz=False)
    with pytest.raises(ValueError, match="12 images but 5 labels"):
        load_fashion_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(12, 10, dtype=np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        load_fashion_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(12, dtype=np.uint8), gz=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((12, 27, 28), dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="28, 28"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR), reason="dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist():
    ds = load_fashion_mnist()
    assert ds.n_train == 60_000 and ds.n_test == 10_000
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10


# ------------------------------------------------------------------ CIFAR


@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar10(tmp_path, as_tar):
    truth = _write_cifar(tmp_path, "cifar10", as_tar=as_tar)
    ds = load_cifar10(tmp_path)
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_test.shape == (8, 3, 32, 32)
    y = np.concatenate([truth[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert np.array_equal(ds.y_train.numpy(), y)
    # Rows are channel-major (1024 R, 1024 G, 1024 B): pixel (0, 0) of channel 1 is column 1024.
    x = np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)]).astype(np.float64) / 255
    g = x[:, 1024:2048]
    np.testing.assert_allclose(
        ds.x_train[:, 1, 0, 0].numpy(), (g[:, 0] - g.mean()) / g.std(), atol=1e-5
    )
    per_channel = ds.x_train.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-4)


def test_cifar_download_not_used_when_files_exist(tmp_path, monkeypatch):
    _write_cifar(tmp_path, "cifar10")

    def no_network(*a, **k):
        raise AssertionError("network access")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    assert load_cifar10(tmp_path, download=True).n_train == 40


@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar100_fine_and_coarse(tmp_path, as_tar):
    truth = _write_cifar(tmp_path, "cifar100", as_tar=as_tar)
    fine = load_cifar100(tmp_path)
    assert fine.num_classes == 100 and fine.n_train == 8 and fine.n_test == 8
    assert np.array_equal(fine.y_train.numpy(), truth["train"][1])
    coarse = load_cifar100(tmp_path, coarse=True)
    assert coarse.num_classes == 20 and np.array_equal(coarse.y_test.numpy(), truth["test"][1] // 5)


def test_cifar_errors(tmp_path):
    with pytest.raises(ValueError, match="download=True"):
        load_cifar10(tmp_path)
    _write_cifar(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch: not a CIFAR python pickle"):
        load_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2)
    )
    with pytest.raises(ValueError, match="missing key"):
        load_cifar10(tmp_path)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(
        _cifar_pickle(np.zeros((2, 3072), np.uint8), [0, 10], b"labels")
    )
    with pytest.raises(ValueError, match="labels outside"):
        load_cifar10(tmp_path)


def test_cifar_not_found_says_where_to_put_it(tmp_path):
    with pytest.raises(ValueError) as e:
        load_cifar10(tmp_path / "nowhere")
    msg = str(e.value)
    assert "\n" not in msg and "put cifar-10-python.tar.gz" in msg and "--data-dir" in msg
    assert "cifar.html" in msg
    _write_cifar(tmp_path, "cifar100", as_tar=True)  # the other CIFAR is there
    with pytest.raises(ValueError, match=r"CIFAR-100 is there, this run needs CIFAR-10"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match=r"CIFAR-10 is there, this run needs CIFAR-100"):
        _cifar100_in_cifar10_dir(tmp_path)
    assert "cifar-100-python.tar.gz" in data_location("cifar100")
    assert FASHION_MNIST_DIR in data_location("fashion-mnist")
    assert data_location("digits") == "digits needs no files"


def _cifar100_in_cifar10_dir(tmp_path):
    d = tmp_path / "c10"
    d.mkdir()
    _write_cifar(d, "cifar10")
    load_cifar100(d)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_pickles_cannot_run_code(tmp_path):
    _write_cifar(tmp_path, "cifar10")
    evil = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(evil)
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar10(tmp_path)


# ------------------------------------------------------------------ digits


def test_digits_real_data():
    ds = load_digits()
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.x_train.shape == (1797, 64) and ds.n_test == 0
    assert torch.bincount(ds.y_train).min() >= 174
    std = ds.x_train.std(0, unbiased=False)
    # Standardized per feature; the 3 constant (always-zero) pixels stay 0 instead of NaN.
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert int((std < 1e-6).sum()) == 3 and torch.allclose(
        std[std > 1e-6], torch.ones(1), atol=1e-5
    )
    img = load_digits(as_images=True, test_fraction=0.2)
    assert img.x_train.shape == (1438, 1, 8, 8) and img.x_test.shape == (359, 1, 8, 8)


def test_digits_label_noise():
    clean, noisy = load_digits(), load_digits(label_noise=0.3)
    changed = int((clean.y_train != noisy.y_train).sum())
    # round(0.3 * 1797) = 539 positions get a uniform label; each keeps its label w.p. 1/10, so
    # changed ~ Binomial(539, 0.9): mean 485, sd 7. The seed is fixed, the window is +-5 sd.
    assert 450 <= changed <= 520
    assert torch.equal(noisy.x_train, clean.x_train)
    assert torch.equal(load_digits(label_noise=0.3).y_train, noisy.y_train)  # fixed seed
    assert not torch.equal(load_digits(label_noise=0.3, seed=2).y_train, noisy.y_train)
    split = load_digits(label_noise=0.5, test_fraction=0.25)
    split_clean = load_digits(test_fraction=0.25)
    assert torch.equal(split.y_test, split_clean.y_test)  # test labels stay clean
    with pytest.raises(ValueError, match=r"label_noise == 1\.5, must be <= 1"):
        load_digits(label_noise=1.5)
    assert with_label_noise(clean, 1.0).name == "digits-noise1"  # every label redrawn: allowed
    with pytest.raises(ValueError, match=r"test_fraction == 1\.0, must be < 1"):
        load_digits(test_fraction=1.0)


# ------------------------------------------------------------------ synthetic, container, batches


def test_teacher_student():
    a, b = (
        make_teacher_student(500, 100, 16, 5, seed=3),
        make_teacher_student(500, 100, 16, 5, seed=3),
    )
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.shape == (500, 16) and a.num_classes == 5
    assert torch.bincount(a.y_train, minlength=5).min() > 0
    noisy = with_label_noise(a, 0.2, seed=1)
    assert 0 < int((noisy.y_train != a.y_train).sum()) <= 100
    assert noisy.name == "teacher-student-noise0.2"
    with pytest.raises(ValueError, match="num_classes == 1, must be >= 2"):
        make_teacher_student(num_classes=1)
    with pytest.raises(ValueError, match="n_test == -1, must be >= 0"):
        make_teacher_student(n_test=-1)


def test_dataset_container():
    ds = make_teacher_student(20, 10, 4, 3)
    assert ds.to("cpu").device.type == "cpu" and ds.input_shape == (4,)
    with pytest.raises(ValueError, match="same number of rows"):
        Dataset(
            torch.zeros(3, 2),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(1, 2),
            torch.zeros(1, dtype=torch.long),
            2,
            "x",
        )


def test_iid_batches():
    gen = torch.Generator().manual_seed(1)
    batches = list(iid_batches(10, 128, gen, num_batches=3))
    assert len(batches) == 3 and all(b.shape == (128,) and b.dtype == torch.int64 for b in batches)
    assert all(int(b.min()) >= 0 and int(b.max()) < 10 for b in batches)
    assert len(torch.unique(batches[0])) < 128  # with replacement: duplicates in a batch
    # Exactly the paper's draw: torch.randint(0, N, (128,)) from the same generator.
    ref = torch.Generator().manual_seed(1)
    assert all(torch.equal(b, torch.randint(0, 10, (128,), generator=ref)) for b in batches)
    grid = next(iid_batches(1797, 128, torch.Generator().manual_seed(0), num_configs=16))
    assert grid.shape == (16, 128)
    endless = iid_batches(5, 2, torch.Generator().manual_seed(0))
    assert len([next(endless) for _ in range(50)]) == 50
    with pytest.raises(ValueError, match="batch_size == 0, must be >= 1"):
        next(iid_batches(10, 0, gen))
    with pytest.raises(ValueError, match=r"generator == 0, must be a torch\.Generator"):
        next(iid_batches(10, 2, 0))
    with pytest.raises(ValueError, match="num_batches == -1, must be >= 0"):
        next(iid_batches(10, 2, gen, num_batches=-1))
