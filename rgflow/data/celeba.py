"""CelebA faces at 32x32 (`celeba32`), read from torchvision's on-disk layout.

Each aligned 178x218 JPEG is center-cropped to 148x148 and resized to 32x32 with PIL bilinear
resampling, as the authors' `CenterCrop(148)` then `Resize(32)`. The random horizontal flip of
their pipeline is a training augmentation and is not applied here. The split is the official
partition file: 0 train, 1 valid, 2 test. Processed splits are cached as .npz files.
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from rgflow.data.base import DatasetFormatError, DatasetNotFoundError, ImageDataset, no_root_error
from rgflow.data.cache import read_arrays, resolve_cache_dir, write_arrays

__all__ = ["CELEBA_LAYOUT", "CELEBA_SPLITS", "celeba_transform", "load_celeba32"]

CROP = 148
IMAGE_SIZE = 32
PROCESS_VERSION = 1
PROGRESS_THRESHOLD = 1000
MAX_WORKERS = 8

CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
IMAGES_FOLDER = "img_align_celeba"
PARTITION_FILE = "list_eval_partition.txt"

CELEBA_LAYOUT = f"""\
  root/celeba/{IMAGES_FOLDER}/000001.jpg ... 202599.jpg
  root/celeba/{PARTITION_FILE}   (lines "000001.jpg 0"; 0 train, 1 valid, 2 test)
  (root may also be the celeba folder itself)"""


def load_celeba32(
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ImageDataset:
    """Loads a CelebA split as 32x32 images, processing the JPEGs once and caching the result.

    Args:
        split: "train" (162,770 images), "valid" (19,867) or "test" (19,962).
        root: Folder holding celeba/ (torchvision's root), or the celeba folder itself.
        size: Keep only the first `size` images of the split (in partition-file order); only
            those are processed.
        cache_dir: Cache folder; default $RGFLOW_CACHE, else ~/.cache/rgflow.

    Returns:
        ImageDataset with images uint8 (N, 3, 32, 32) and no labels.
    """
    hint = "Pass root= pointing at the folder that holds celeba/ (torchvision's layout)."
    if root is None:
        raise no_root_error("celeba32", CELEBA_LAYOUT, hint)

    folder = _find_celeba_folder(Path(root), hint)
    partition = folder / PARTITION_FILE
    names = _read_partition(partition, CELEBA_SPLITS[split])[:size]
    n = len(names)

    path = _cache_path(folder, split, size, cache_dir)
    arrays = read_arrays(path, {"images": ((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)})
    if arrays is None:
        images = _process_images(folder / IMAGES_FOLDER, names, split)
        write_arrays(path, {"images": images})
    else:
        images = arrays["images"]

    return ImageDataset(name="celeba32", split=split, images=torch.from_numpy(images))


def celeba_transform(image: Image.Image) -> np.ndarray:
    """Center-crops 148x148 (like torchvision's CenterCrop) and resizes to 32x32 bilinearly.

    On an aligned 178x218 CelebA image the crop box is (left 15, top 35, right 163, bottom 183).

    Args:
        image: A PIL image of width and height at least 148.

    Returns:
        uint8 array (3, 32, 32).
    """
    width, height = image.size
    left = int(round((width - CROP) / 2.0))
    top = int(round((height - CROP) / 2.0))

    cropped = image.convert("RGB").crop((left, top, left + CROP, top + CROP))
    resized = cropped.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)

    return np.asarray(resized).transpose(2, 0, 1)


def _find_celeba_folder(root: Path, hint: str) -> Path:
    """root/celeba when it exists, else root when it looks like the celeba folder."""
    for folder in (root / "celeba", root):
        if (folder / IMAGES_FOLDER).is_dir() or (folder / PARTITION_FILE).exists():
            return folder

    raise DatasetNotFoundError(
        f"celeba32: neither {root / 'celeba'} nor {root} holds {IMAGES_FOLDER}/ or "
        f"{PARTITION_FILE}.\nExpected layout:\n{CELEBA_LAYOUT}\n"
        f"Nothing is downloaded by rgflow. {hint}",
        path=root,
    )


def _read_partition(path: Path, partition: int) -> list[str]:
    """Image file names of one partition, in file order."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"celeba32: the partition file {path} is missing; it says which image is in which "
            f"split.\nExpected layout:\n{CELEBA_LAYOUT}\nNothing is downloaded by rgflow; copy "
            f"{PARTITION_FILE} from the CelebA distribution (Eval/ folder) next to "
            f"{IMAGES_FOLDER}/.",
            path=path,
        )

    names = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetFormatError(
                f"{path}, line {number}: expected '<image>.jpg <0|1|2>', got {line!r}"
            )
        if int(fields[1]) == partition:
            names.append(fields[0])

    return names


def _process_images(images_folder: Path, names: list[str], split: str) -> np.ndarray:
    """Loads and transforms the named JPEGs in parallel threads: uint8 (N, 3, 32, 32)."""
    images = np.empty((len(names), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    paths = [images_folder / name for name in names]
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        processed = pool.map(_load_one, paths)
        bar = tqdm(
            processed,
            total=len(paths),
            desc=f"processing celeba32 {split}",
            disable=len(paths) <= PROGRESS_THRESHOLD,
            file=sys.stderr,
        )
        for k, image in enumerate(bar):
            images[k] = image

    return images


def _load_one(path: Path) -> np.ndarray:
    """Reads one JPEG and transforms it; a missing or unreadable file names itself."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"celeba32: {path} is listed in {PARTITION_FILE} but missing; "
            "restore it from the CelebA distribution",
            path=path,
        )

    try:
        with Image.open(path) as image:
            image.load()
            if min(image.size) < CROP:
                raise DatasetFormatError(
                    f"{path} is {image.size[0]}x{image.size[1]}, smaller than the {CROP}x{CROP} "
                    "crop; celeba32 expects the aligned 178x218 CelebA images"
                )
            return celeba_transform(image)
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise DatasetFormatError(
            f"cannot read the CelebA image {path} ({error}); the file is truncated or damaged, "
            "restore it from the CelebA distribution"
        ) from error


def _cache_path(
    folder: Path, split: str, size: int | None, cache_dir: str | os.PathLike | None
) -> Path:
    """The cache file, keyed by folder path, split, size and the partition file's stamp."""
    stat = (folder / PARTITION_FILE).stat()
    key = f"{folder.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{PROCESS_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    count = "all" if size is None else f"n{size}"

    return resolve_cache_dir(cache_dir) / "celeba32" / f"{split}-{count}-{digest}.npz"
