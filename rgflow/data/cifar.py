"""CIFAR-10 (32x32 RGB, 10 classes) from the official binary or Python-pickle distribution.

The binary version stores records of 1 label byte followed by 3,072 pixel bytes (the red, green
and blue planes, each 32x32 row-major). The Python version stores pickled dicts with `data`
(uint8 (N, 3072), same pixel order) and `labels`. Those pickles are read with an unpickler that
only rebuilds numpy arrays, so a hostile file cannot run code.
"""

from __future__ import annotations

import codecs
import importlib
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rgflow.data.base import DatasetFormatError, DatasetNotFoundError, ImageDataset, no_root_error

__all__ = ["CIFAR10_LAYOUT", "load_cifar10", "read_cifar_bin", "read_cifar_pickle"]

RECORD_PIXELS = 3 * 32 * 32
NUM_CLASSES = 10
BIN_FOLDER = "cifar-10-batches-bin"
PY_FOLDER = "cifar-10-batches-py"
_BatchReader = Callable[[Path], tuple[np.ndarray, np.ndarray]]

TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_BATCHES = ("test_batch",)

CIFAR10_LAYOUT = f"""\
  root/{BIN_FOLDER}/data_batch_1.bin ... data_batch_5.bin, test_batch.bin   (binary version)
  or root/{PY_FOLDER}/data_batch_1 ... data_batch_5, test_batch   (Python version)
  (root may also be one of these two folders itself)"""


def load_cifar10(
    split: str = "train", root: str | os.PathLike | None = None, *, size: int | None = None
) -> ImageDataset:
    """Loads CIFAR-10 from a folder the user gives.

    Args:
        split: "train" (50,000 images) or "test" (10,000).
        root: Folder holding cifar-10-batches-bin/ or cifar-10-batches-py/ (or either folder).
        size: Keep only the first `size` images; only the batch files needed are read.

    Returns:
        ImageDataset with images uint8 (N, 3, 32, 32) and labels int64 (N,).
    """
    hint = "Pass root= pointing at the folder that holds the extracted CIFAR-10 archive."
    if root is None:
        raise no_root_error("cifar10", CIFAR10_LAYOUT, hint)

    files, reader = _find_batches(Path(root), split, hint)
    images, labels = _read_batches(files, reader, size)

    return ImageDataset(
        name="cifar10",
        split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
    )


def read_cifar_bin(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads one batch file of the binary version.

    Returns:
        images: uint8 (N, 3, 32, 32).
        labels: int64 (N,).
    """
    path = Path(path)
    data = path.read_bytes()

    if len(data) == 0 or len(data) % (RECORD_PIXELS + 1):
        raise DatasetFormatError(
            f"{path} holds {len(data)} bytes, not a whole number of CIFAR-10 records of "
            f"{RECORD_PIXELS + 1} bytes; the file is damaged or not a CIFAR-10 batch"
        )

    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_PIXELS + 1)
    images = records[:, 1:].reshape(-1, 3, 32, 32)

    return images, _check_labels(records[:, 0], path)


def read_cifar_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads one batch file of the Python version, refusing anything but plain arrays.

    Returns:
        images: uint8 (N, 3, 32, 32).
        labels: int64 (N,).
    """
    path = Path(path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(path.read_bytes())).load()
    except _PICKLE_ERRORS as error:
        raise DatasetFormatError(f"cannot read the CIFAR-10 batch {path}: {error}") from error

    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path} holds a {type(batch).__name__}, not a CIFAR-10 dict")

    batch = {_as_str(key): value for key, value in batch.items()}
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetFormatError(f"{path}: 'data' is missing or not a uint8 (N, 3072) array")
    if data.shape[1] != RECORD_PIXELS or "labels" not in batch:
        raise DatasetFormatError(f"{path}: 'data' is {data.shape} or 'labels' is missing")

    labels = _check_labels(np.asarray(batch["labels"]), path)
    if len(labels) != len(data):
        raise DatasetFormatError(f"{path}: {len(data)} images but {len(labels)} labels")

    return data.reshape(-1, 3, 32, 32), labels


def _find_batches(root: Path, split: str, hint: str) -> tuple[list[Path], _BatchReader]:
    """The split's batch files (binary version preferred) and their reader."""
    stems = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    versions = [
        (root / BIN_FOLDER, ".bin", read_cifar_bin),
        (root / PY_FOLDER, "", read_cifar_pickle),
        (root, ".bin", read_cifar_bin),
        (root, "", read_cifar_pickle),
    ]

    for folder, suffix, reader in versions:
        files = [folder / f"{stem}{suffix}" for stem in stems]
        if files[0].is_file():
            _require_all(files)
            return files, reader

    raise DatasetNotFoundError(
        f"cifar10: no {stems[0]}[.bin] found in {root / BIN_FOLDER}, {root / PY_FOLDER} "
        f"or {root}.\nExpected layout:\n{CIFAR10_LAYOUT}\nNothing is downloaded by rgflow. {hint}",
        path=root,
    )


def _read_batches(
    files: list[Path], reader: _BatchReader, size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Reads batch files in order until `size` images are at hand."""
    images, labels = [], []
    count = 0

    for path in files:
        batch_images, batch_labels = reader(path)
        images.append(batch_images)
        labels.append(batch_labels)
        count += len(batch_labels)
        if size is not None and count >= size:
            break

    images = np.ascontiguousarray(np.concatenate(images)[:size])
    labels = np.concatenate(labels)[:size]

    return images, labels


def _require_all(files: list[Path]) -> None:
    for path in files:
        if not path.is_file():
            raise DatasetNotFoundError(
                f"cifar10: {path} is missing (other batch files are in that folder). "
                "Nothing is downloaded by rgflow; restore the file from the CIFAR-10 archive.",
                path=path,
            )


def _check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(f"{path}: labels are not a list of integers")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetFormatError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")

    return labels.astype(np.int64)


def _as_str(key: object) -> object:
    return key.decode("latin1") if isinstance(key, bytes) else key


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """codecs.encode restricted to latin-1, which protocol-2 pickles use to store bytes."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused codecs.encode with encoding {encoding!r}")

    return codecs.encode(text, "latin1")


def _numpy_attr(module_names: tuple[str, ...], attr: str) -> object:
    """An attribute from the first importable numpy module of `module_names`."""
    for module_name in module_names:
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue

    raise pickle.UnpicklingError(f"this numpy has no {attr} in {module_names}")


_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
)
_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")

# (module, name) in the pickle -> a function returning the object it may stand for.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    **{
        (module, "_reconstruct"): lambda: _numpy_attr(_MULTIARRAY, "_reconstruct")
        for module in _MULTIARRAY
    },
    **{(module, "scalar"): lambda: _numpy_attr(_MULTIARRAY, "scalar") for module in _MULTIARRAY},
    **{
        (module, "_frombuffer"): lambda: _numpy_attr(_NUMERIC, "_frombuffer")
        for module in _NUMERIC
    },
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and nothing else.

    Python 2 strings are decoded as latin-1, as numpy requires for arrays pickled by Python 2.
    """

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, encoding="latin1")

    def find_class(self, module: str, name: str) -> object:
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a CIFAR-10 batch may only hold "
                "numpy arrays, lists, strings and numbers (the file may be hostile)"
            )

        return factory()
