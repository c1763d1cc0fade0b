"""The in-memory image dataset, the dataset description record and the data errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageDataset",
    "no_root_error",
    "pad_images",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for.

    The message names the path that was tried, shows the expected on-disk layout and says that
    nothing is downloaded.

    Attributes:
        path: The file or folder that was looked for, or None when no root was given.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class DatasetFormatError(ValueError):
    """A dataset file exists but its content is not what the format promises.

    Raised for a wrong IDX magic number, a truncated file, an unreadable image, or a pickle that
    asks for anything other than plain arrays. The message names the file.
    """


class DatasetInfo(NamedTuple):
    """What one dataset is and where it is looked for.

    Attributes:
        channels: Number of colour channels C of every image (1 or 3).
        image_size: Side L of the square images, after padding, cropping or resizing.
        default_root: Where the files are looked for when no root is given, or None when the
            dataset is generated or a root must be given.
        description: One line saying what the dataset is.
        layout: The expected on-disk layout below root, as text.
    """

    channels: int
    image_size: int
    default_root: str | None
    description: str
    layout: str


@dataclass(eq=False, repr=False)
class ImageDataset(Dataset):
    """Images of one dataset split, held in memory as uint8.

    Attributes:
        name: Dataset name, e.g. "msds1".
        split: "train", "test" (or "valid" for celeba32).
        images: uint8 tensor (N, C, L, L), contiguous.
        labels: Class labels int64 (N,), MSDS labels int32 (N, 4, 4, 6), or None.
        label_names: Names of the last label axis, e.g. ("x", "y", "angle", "R", "G", "B") for
            MSDS, or None.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor | None = None
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            raise ValueError(
                f"{self.name}: images must be a uint8 tensor, got {_describe(images)}"
            )

        if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError(
                f"{self.name}: images must have shape (N, C, L, L), got {tuple(images.shape)}"
            )

        if self.labels is not None and self.labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{self.name}: {images.shape[0]} images but {self.labels.shape[0]} labels; "
                "give one label entry per image"
            )

        self.images = images.contiguous()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        """Returns image uint8 (C, L, L) and its label (a tensor), or -1 when unlabelled."""
        label = -1 if self.labels is None else self.labels[index]

        return self.images[index], label

    @property
    def channels(self) -> int:
        """Number of colour channels C."""
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        """Image side L."""
        return self.images.shape[-1]

    def __repr__(self) -> str:
        labels = "None" if self.labels is None else f"{tuple(self.labels.shape)}"

        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, "
            f"images={tuple(self.images.shape)} uint8, labels={labels}, "
            f"label_names={self.label_names})"
        )


def pad_images(images: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-pads square images evenly on all sides, like torchvision's Pad.

    Args:
        images: uint8 array (N, C, l, l) with l <= size and size - l even.
        size: Output side L.

    Returns:
        uint8 array (N, C, L, L), contiguous.
    """
    pad = size - images.shape[-1]
    if pad < 0 or pad % 2:
        raise ValueError(f"cannot pad images of side {images.shape[-1]} evenly to {size}")

    half = pad // 2
    widths = ((0, 0), (0, 0), (half, half), (half, half))

    return np.ascontiguousarray(np.pad(images, widths))


def no_root_error(name: str, layout: str, hint: str) -> DatasetNotFoundError:
    """The error for a dataset that has no default location and was given no root."""
    return DatasetNotFoundError(
        f"{name}: no root given and there is no default location.\nExpected layout:\n{layout}\n"
        f"Nothing is downloaded by rgflow. {hint}"
    )


def _describe(value: object) -> str:
    dtype = getattr(value, "dtype", None)

    return (
        f"{type(value).__name__} of dtype {dtype}" if dtype is not None else type(value).__name__
    )
