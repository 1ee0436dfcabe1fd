"""Data-set fixtures in the exact real formats, for the loader tests (tests/nn/test_data.py)
and the end-to-end runs of the CIFAR presets (tests/workflows/test_reproduce.py).

`write_cifar` writes CIFAR batches as the official archives do (protocol-2 pickles of dicts
with bytes keys b'data' (uint8 N x 3072, channel-major rows) and b'labels' (a list) or
b'fine_labels' / b'coarse_labels'), as a directory or a .tar.gz; `cifar_pickle` is one batch.
"""

import io
import pickle
import tarfile

import numpy as np

__all__ = ["cifar_pickle", "write_cifar"]


def cifar_pickle(x: np.ndarray, labels, label_key: bytes) -> bytes:
    """One CIFAR batch file: a protocol-2 pickle of {b'batch_label', label_key, b'data'}."""
    return pickle.dumps(
        {b"batch_label": b"x", label_key: list(map(int, labels)), b"data": x}, protocol=2
    )


def write_cifar(tmp_path, which: str = "cifar10", n: int = 8, as_tar: bool = False,
                seed: int = 0) -> dict:
    """A CIFAR-10 / -100 archive of ``n`` random images per batch file under ``tmp_path``
    (the extracted folder, or the .tar.gz with ``as_tar``); returns {file: (x, labels)}."""
    rng = np.random.default_rng(seed)
    if which == "cifar10":
        folder, names, files = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            {},
        )
    else:
        folder, names, files = "cifar-100-python", ["train", "test"], {}
    truth = {}
    for name in names:
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        if which == "cifar10":
            y = rng.integers(0, 10, size=n)
            files[name] = cifar_pickle(x, y, b"labels")
        else:
            y = rng.integers(0, 100, size=n)
            d = {
                b"data": x,
                b"fine_labels": list(map(int, y)),
                b"coarse_labels": list(map(int, y // 5)),
            }
            files[name] = pickle.dumps(d, protocol=2)
        truth[name] = (x, y)
    if as_tar:
        archive = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}[
            which
        ]
        with tarfile.open(tmp_path / archive, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        (tmp_path / folder).mkdir()
        for name, data in files.items():
            (tmp_path / folder / name).write_bytes(data)
    return truth
