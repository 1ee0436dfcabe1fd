"""Datasets for the network experiments, all offline, without torchvision.

* `load_digits`: scikit-learn's 8x8 digits (1797 samples, ships with scikit-learn),
  standardized, with an optional fixed-seed fraction of labels replaced by uniformly random
  labels (`with_label_noise`). Without label noise a 64-32-32 BN-MLP interpolates and T -> 0
  (reference-implementation 8.2); 30% noise keeps the network from interpolating.
* `load_fashion_mnist`: the IDX files (``.gz`` or raw) as installed by the Debian package
  ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist/``, or any directory.
* `load_cifar10` / `load_cifar100`: the standard python-pickle archives (the extracted
  ``cifar-10-batches-py/`` / ``cifar-100-python/`` directories or the ``.tar.gz`` archives) in a
  user directory; ``download=True`` fetches the archive (the only network access here; opt-in).
* `make_teacher_student`: a synthetic classification set labelled by a random teacher network.

Images are normalized per channel with the training set's mean and standard deviation (no
augmentation, as in the paper). Each loader returns a `Dataset` of tensors kept on the chosen
device: x float32, y int64 (class indices, as ``F.cross_entropy`` wants them).
`iid_batches` draws minibatch indices i.i.d. with replacement, as the paper does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from thermosgd._validate import check_fraction, check_int

__all__ = [
    "CIFAR10_DIR",
    "CIFAR100_DIR",
    "CIFAR_DATA",
    "FASHION_MNIST_DIR",
    "Dataset",
    "data_location",
    "iid_batches",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "make_teacher_student",
    "normalize_per_channel",
    "read_idx",
    "with_label_noise",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
#: the CIFAR data sets: never on the machine unless the user puts them there
CIFAR_DATA = ("cifar10", "cifar100")
_CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"

_CIFAR = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "archive": "cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "dir": CIFAR10_DIR,
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "archive": "cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "dir": CIFAR100_DIR,
        "train": ["train"],
        "test": ["test"],
    },
}


# --------------------------------------------------------------------------------------------
# container
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors on one device: x float32 (N, ...), y int64 (N,) in [0, K)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0] or y.dim() != 1:
                raise ValueError(f"x_{split} and y_{split} must have the same number of rows")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError("x_train and x_test must have the same sample shape")

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> Dataset:
        """The same dataset with every tensor on ``device``."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def flatten(self) -> Dataset:
        """Samples flattened to vectors (N, prod(input_shape)), e.g. for the BN-MLP."""
        return replace(self, x_train=self.x_train.flatten(1), x_test=self.x_test.flatten(1))


def _make(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    name: str,
    device: str | torch.device,
) -> Dataset:
    for y, split in ((y_train, "train"), (y_test, "test")):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name}: {split} labels outside [0, {num_classes})")
    return Dataset(
        torch.as_tensor(np.ascontiguousarray(x_train, dtype=np.float32), device=device),
        torch.as_tensor(np.asarray(y_train, dtype=np.int64), device=device),
        torch.as_tensor(np.ascontiguousarray(x_test, dtype=np.float32), device=device),
        torch.as_tensor(np.asarray(y_test, dtype=np.int64), device=device),
        int(num_classes),
        name,
    )


def normalize_per_channel(
    x_train: np.ndarray, x_test: np.ndarray, eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """(x - mean_c) / std_c for images (N, C, H, W), or per feature for (N, F) tables.

    Statistics (float64) come from the training set only; a constant channel/feature gets
    std 1 instead of 0.
    """
    axes = (0, 2, 3) if x_train.ndim == 4 else (0,)
    xt = x_train.astype(np.float64)
    mean = xt.mean(axis=axes, keepdims=True)
    std = xt.std(axis=axes, keepdims=True)
    std = np.where(std > eps, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _noisy_labels(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """round(fraction * N) labels, chosen without replacement, replaced by U{0..K-1} draws."""
    rng = np.random.default_rng(seed)
    n = len(y)
    k = round(fraction * n)
    y = y.copy()
    idx = rng.choice(n, size=k, replace=False)
    y[idx] = rng.integers(0, num_classes, size=k)
    return y


def with_label_noise(ds: Dataset, fraction: float, seed: int = 1) -> Dataset:
    """A fixed-seed ``fraction`` of the *training* labels replaced by uniformly random labels.

    The positions are drawn without replacement and each new label is uniform over all K
    classes (so about fraction/K of them keep their label, as in the reference). Test labels
    are left clean.
    """
    fraction = check_fraction("label_noise", fraction, include_one=True)
    if fraction == 0.0:
        return ds
    y = _noisy_labels(ds.y_train.cpu().numpy(), fraction, ds.num_classes, seed)
    name = f"{ds.name}-noise{fraction:g}"
    return replace(ds, y_train=torch.as_tensor(y, device=ds.device), name=name)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def load_digits(
    *,
    label_noise: float = 0.0,
    seed: int = 1,
    test_fraction: float = 0.0,
    as_images: bool = False,
    device: str | torch.device = "cpu",
) -> Dataset:
    """scikit-learn's digits (1797 x 8x8, 10 classes), standardized, optional label noise.

    ``test_fraction`` of the samples (a fixed-seed random split) is held out;
    the default 0 trains on all 1797 as the reference pilot does (the test tensors are then
    empty). Features are standardized with training statistics: per feature (N, 64) by default,
    or per channel for ``as_images=True`` (N, 1, 8, 8), e.g. for the ConvNet.
    ``label_noise`` replaces that fraction of the training labels (see `with_label_noise`).
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a declared extra
        raise ValueError("load_digits needs scikit-learn (pip install 'thermosgd[data]')") from e
    test_fraction = check_fraction("test_fraction", test_fraction)
    raw = _sk_digits()
    x = raw.data.astype(np.float64)
    y = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y)) if test_fraction > 0 else np.arange(len(y))
    n_test = round(test_fraction * len(y))
    te, tr = perm[:n_test], perm[n_test:]
    x_tr, x_te = x[tr], x[te]
    if as_images:
        x_tr, x_te = normalize_per_channel(x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8))
    else:
        x_tr, x_te = normalize_per_channel(x_tr, x_te)
    ds = _make(x_tr, y[tr], x_te, y[te], 10, "digits", device)
    return with_label_noise(ds, label_noise, seed)


# --------------------------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)
# --------------------------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from e
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from e
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a numpy array of its shape and dtype.

    Format: two zero bytes, a dtype code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions n, then n big-endian uint32 sizes and
    the data. Raises ValueError on a bad magic number or a size mismatch.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX size mismatch: header says {dims} ({expected} bytes), file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise ValueError(
        f"missing {stem}(.gz) in {root}; install the Debian package dataset-fashion-mnist "
        "or point root= (the CLI's --data-dir) at a directory holding the four IDX files"
    )


def load_fashion_mnist(
    root: str | os.PathLike = FASHION_MNIST_DIR,
    *,
    label_noise: float = 0.0,
    seed: int = 1,
    flatten: bool = False,
    device: str | torch.device = "cpu",
) -> Dataset:
    """Fashion-MNIST (60k train / 10k test, 28x28x1, 10 classes) from IDX files in ``root``.

    Expects train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    t10k-labels-idx1-ubyte, each optionally ``.gz`` (the Debian package's layout). Checks the
    magic numbers (images 0x00000803, labels 0x00000801), the 28x28 size, matching counts and
    label range. x is (N, 1, 28, 28) per-channel normalized ((N, 784) with ``flatten``).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"Fashion-MNIST directory {root} does not exist; install the Debian package "
            "dataset-fashion-mnist or point root= (the CLI's --data-dir) at a directory holding "
            "the four IDX files"
        )
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ip, lp = (
            _find_idx(root, f"{prefix}-images-idx3-ubyte"),
            _find_idx(root, f"{prefix}-labels-idx1-ubyte"),
        )
        images, labels = read_idx(ip), read_idx(lp)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{ip}: expected uint8 images of shape (N, 28, 28), got "
                f"{images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{lp}: expected a uint8 label vector, got {labels.dtype} {labels.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() >= 10:
            raise ValueError(f"{lp}: labels must be in 0..9, found {int(labels.max())}")
        arrays[split] = (images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, labels)
    x_tr, x_te = normalize_per_channel(arrays["train"][0], arrays["test"][0])
    ds = _make(x_tr, arrays["train"][1], x_te, arrays["test"][1], 10, "fashion-mnist", device)
    if flatten:
        ds = ds.flatten()
    return with_label_noise(ds, label_noise, seed)


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """Only what the CIFAR pickles need (numpy arrays, dicts, lists): refuses other globals."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise ValueError(f"{where}: not a CIFAR python pickle ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict in the pickle, got {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(d: dict, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or label_key not in d:
        raise ValueError(f"{where}: missing key 'data' or {label_key!r} (found {sorted(d)})")
    x = np.asarray(d["data"])
    y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(
            f"{where}: 'data' must be uint8 of shape (N, 3072), got {x.dtype} {x.shape}"
        )
    if len(y) != len(x):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels")
    return x.reshape(-1, 3, 32, 32), y


def _cifar_sources(root: Path, spec: dict) -> dict[str, bytes]:
    """File name -> bytes of the needed batch files, from the directory or the .tar.gz."""
    names = spec["train"] + spec["test"]
    folder = root / spec["dir"] if (root / spec["dir"]).is_dir() else root
    if all((folder / n).is_file() for n in names):
        return {n: (folder / n).read_bytes() for n in names}
    archive = root / spec["archive"]
    if archive.is_file():
        out: dict[str, bytes] = {}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if base in names and member.isfile():
                        f = tar.extractfile(member)
                        if f is not None:
                            out[base] = f.read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ValueError(f"{archive}: corrupt archive ({e})") from e
        missing = [n for n in names if n not in out]
        if missing:
            raise ValueError(f"{archive}: archive lacks {missing}")
        return out
    missing = [n for n in names if not (folder / n).is_file()]
    other = next((o for o in _CIFAR.values() if o is not spec
                  and ((root / o["archive"]).is_file() or (root / o["dir"]).is_dir())), None)
    wrong = (f" ({other['archive'].split('-python')[0].upper()} is there, this run needs "
             f"{spec['archive'].split('-python')[0].upper()})" if other else "")
    raise ValueError(
        f"CIFAR files not found under {root}{wrong}: put {spec['archive']} (or its extracted "
        f"{spec['dir']}/ with {', '.join(missing)}) in that directory, the one --data-dir "
        f"names (the archive: {_CIFAR_PAGE}), or call the loader with download=True to fetch "
        "it (needs internet)"
    )


def data_location(name: str) -> str:
    """Where the files of the data set ``name`` go, in words (for error messages): the CIFAR
    archive in the ``--data-dir`` directory, the Fashion-MNIST IDX files, or that the set
    needs no files."""
    if name in _CIFAR:
        spec = _CIFAR[name]
        return (f"the directory holding {spec['archive']} or its extracted {spec['dir']}/ "
                f"(the archive: {_CIFAR_PAGE}; nothing is downloaded)")
    if name == "fashion-mnist":
        return (f"the directory holding the four Fashion-MNIST IDX files (default "
                f"{FASHION_MNIST_DIR}, the Debian package dataset-fashion-mnist)")
    return f"{name} needs no files"


def _download(spec: dict, root: Path) -> None:
    """Fetch the archive into root (atomically) and check its MD5. Only with download=True."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec["archive"]
    if target.is_file():
        return
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".part")
    try:
        md5 = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec["url"], timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                md5.update(chunk)
                out.write(chunk)
        if md5.hexdigest() != spec["md5"]:
            raise ValueError(
                f"download of {spec['url']} has MD5 {md5.hexdigest()}, expected {spec['md5']}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_cifar(
    which: str,
    root,
    label_key: str,
    num_classes: int,
    download: bool,
    label_noise: float,
    seed: int,
    device,
) -> Dataset:
    spec = _CIFAR[which]
    root = Path(root)
    if download:
        try:
            _cifar_sources(root, spec)
        except ValueError:
            _download(spec, root)
    files = _cifar_sources(root, spec)
    parts = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for n in spec[split]:
            x, y = _cifar_batch(_unpickle(files[n], n), label_key, n)
            xs.append(x)
            ys.append(y)
        parts[split] = (np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys))
    x_tr, x_te = normalize_per_channel(parts["train"][0], parts["test"][0])
    ds = _make(x_tr, parts["train"][1], x_te, parts["test"][1], num_classes, which, device)
    return with_label_noise(ds, label_noise, seed)


def load_cifar10(
    root: str | os.PathLike,
    *,
    download: bool = False,
    label_noise: float = 0.0,
    seed: int = 1,
    device: str | torch.device = "cpu",
) -> Dataset:
    """CIFAR-10 (50k/10k, 3x32x32, 10 classes) from ``root``.

    ``root`` holds ``cifar-10-batches-py/`` (data_batch_1..5, test_batch) or
    ``cifar-10-python.tar.gz`` (or is the extracted directory itself). Pickles are read with an
    unpickler that only admits numpy arrays. ``download=True`` fetches the archive into ``root``
    (MD5-checked) when the files are missing; nothing is ever downloaded otherwise.
    x is (N, 3, 32, 32) float32, normalized per channel with training statistics.
    """
    return _load_cifar("cifar10", root, "labels", 10, download, label_noise, seed, device)


def load_cifar100(
    root: str | os.PathLike,
    *,
    download: bool = False,
    coarse: bool = False,
    label_noise: float = 0.0,
    seed: int = 1,
    device: str | torch.device = "cpu",
) -> Dataset:
    """CIFAR-100 (50k/10k, 3x32x32) from ``cifar-100-python/{train,test}`` or the .tar.gz.

    100 fine labels (``b'fine_labels'``), or the 20 coarse ones with ``coarse=True``.
    Otherwise as `load_cifar10`.
    """
    key, k = ("coarse_labels", 20) if coarse else ("fine_labels", 100)
    return _load_cifar("cifar100", root, key, k, download, label_noise, seed, device)


# --------------------------------------------------------------------------------------------
# synthetic teacher-student
# --------------------------------------------------------------------------------------------


def make_teacher_student(
    n_train: int = 2000,
    n_test: int = 1000,
    in_features: int = 32,
    num_classes: int = 10,
    *,
    hidden: int = 64,
    label_noise: float = 0.0,
    seed: int = 1,
    device: str | torch.device = "cpu",
) -> Dataset:
    """x ~ N(0, I); y = argmax_k (f_k(x) - mean_x f_k), f(x) = W2 relu(W1 x / sqrt(in)) / sqrt(h).

    Teacher weights are standard normal, drawn from ``numpy.random.default_rng(seed)`` (the
    same data on every device and platform). ``label_noise`` randomizes that fraction of the
    training labels (see `with_label_noise`), which keeps a student from interpolating.
    """
    for name, v in (("n_train", n_train), ("in_features", in_features), ("hidden", hidden)):
        check_int(name, v, min_val=1)
    check_int("n_test", n_test, min_val=0)
    check_int("num_classes", num_classes, min_val=2)
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((in_features, hidden))
    w2 = rng.standard_normal((hidden, num_classes))
    x = rng.standard_normal((n_train + n_test, in_features))
    logits = np.maximum(x @ w1 / np.sqrt(in_features), 0.0) @ w2 / np.sqrt(hidden)
    logits -= logits.mean(axis=0)  # centre each class's logit so that classes are balanced-ish
    y = logits.argmax(axis=1)
    ds = _make(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, "teacher-student", device
    )
    return with_label_noise(ds, label_noise, seed)


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------


def iid_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    *,
    num_batches: int | None = None,
    num_configs: int | None = None,
) -> Iterator[Tensor]:
    """Index batches drawn i.i.d. with replacement: ``torch.randint(0, n, (batch_size,))``.

    Exactly the paper's ``iid_batches=True`` sampling (duplicates within a batch can occur).
    Indices live on ``generator.device``. Endless unless ``num_batches`` is given. With
    ``num_configs=G`` each draw is (G, batch_size): an independent batch per config of a
    batched grid (the paper instead gives every run the same batch sequence: use the default
    and share the batch).
    """
    for name, v in (("n", n), ("batch_size", batch_size)):
        check_int(name, v, min_val=1)
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator == {generator!r}, must be a torch.Generator (every random thing takes a "
            "seed)"
        )
    if num_batches is not None:
        check_int("num_batches", num_batches, min_val=0)
    if num_configs is not None:
        check_int("num_configs", num_configs, min_val=1)
    shape = (batch_size,) if num_configs is None else (num_configs, batch_size)
    count = 0
    while num_batches is None or count < num_batches:
        yield torch.randint(0, n, shape, generator=generator, device=generator.device)
        count += 1
