"""RG geometry: block partitions, the level map, causal cones (numbers from the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from rgflow.lattice import LatticeError, RGLattice


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_blocks_of_a_layer_partition_the_sites_they_touch(size: int) -> None:
    lat = RGLattice(size, 4)
    for layer in range(lat.n_layers):
        idx = lat.block_indices(layer).ravel()
        counts = np.bincount(idx, minlength=size * size)
        h = lat.layer_level(layer)
        on_sublattice = lat.touched(layer)
        # each touched site exactly once, and the touched sites are the stride-2^h lattice
        assert set(counts[counts > 0]) == {1}
        expected = np.zeros((size, size), dtype=bool)
        expected[:: 2**h, :: 2**h] = True
        np.testing.assert_array_equal(on_sublattice, expected)


def test_layer_geometry_for_the_paper_size() -> None:
    lat = RGLattice(32, 4)
    assert (lat.n_levels, lat.n_layers) == (4, 8)
    assert [lat.blocks_per_side(layer) ** 2 for layer in range(0, 8, 2)] == [64, 16, 4, 1]
    assert [lat.layer_offset(layer) for layer in range(8)] == [0, 2, 0, 4, 0, 8, 0, 16]
    assert [lat.layer_kind(layer) for layer in range(2)] == ["disentangler", "decimator"]

    rows, cols = lat.block_coordinates(3)  # level-1 decimator, block (0, 0)
    assert rows[0, :, 0].tolist() == [4, 6, 8, 10]
    rows, cols = lat.block_coordinates(7)  # top decimator wraps around
    assert rows[0, :, 0].tolist() == [16, 24, 0, 8]


@pytest.mark.parametrize(
    "size,counts",
    [(32, [768, 192, 48, 16]), (64, [3072, 768, 192, 48, 16])],
)
def test_level_counts_and_strided_slices(size: int, counts: list[int]) -> None:
    lat = RGLattice(size, 4)
    assert lat.sites_per_level() == counts
    levels = lat.level_map()
    for k in range(lat.n_levels):
        strided = np.zeros_like(levels, dtype=bool)
        strided[:: 2**k, :: 2**k] = True
        np.testing.assert_array_equal(strided, levels >= k)


def test_level_of_a_site_is_the_last_layer_that_touches_it() -> None:
    lat = RGLattice(32, 4)
    last = np.full((32, 32), -1)
    for layer in range(lat.n_layers):
        last[lat.touched(layer)] = lat.layer_level(layer)
    np.testing.assert_array_equal(last, lat.level_map())


def test_kept_sites_are_one_per_two_by_two_cell_of_each_decimator_block() -> None:
    lat = RGLattice(32, 4)
    kept = lat.kept(0)
    rows, cols = lat.block_coordinates(1)
    per_block = kept[rows, cols]  # (n_blocks, 4, 4)
    expected = np.zeros((4, 4), dtype=bool)
    expected[::2, ::2] = True
    assert all((block == expected).all() for block in per_block)
    assert not lat.kept(3).any()


@pytest.mark.parametrize(
    "size,fewest,most,mean",
    [
        (32, 220, 220, 220.0),
        (64, 328, 412, 367.0),
        (128, 436, 604, 535.75),
        (256, 544, 796, 715.9375),
    ],
)
def test_pixel_cone_sizes(size: int, fewest: int, most: int, mean: float) -> None:
    sizes = RGLattice(size, 4).pixel_cone_sizes()
    assert sizes[0, 0] == fewest == sizes.min()
    assert sizes.max() == most
    assert sizes.mean() == pytest.approx(mean, abs=1e-9)


def test_cone_of_one_pixel_per_level_at_l32() -> None:
    lat = RGLattice(32, 4)
    pixel = np.zeros((32, 32), dtype=bool)
    pixel[13, 6] = True
    cone = lat.inference_cone(pixel)
    assert lat.cone_counts(cone) == [48, 108, 48, 16]


@pytest.mark.parametrize("size", [32, 64])
def test_separable_cone_counts_match_direct_block_spreading(size: int) -> None:
    lat = RGLattice(size, 4)
    counts = lat.pixel_cone_counts()
    rng = np.random.default_rng(0)
    for i, j in rng.integers(0, size, size=(40, 2)):
        pixel = np.zeros((size, size), dtype=bool)
        pixel[i, j] = True
        assert lat.cone_counts(lat.inference_cone(pixel)) == counts[i, j].tolist()


def test_generation_and_inference_cones_are_transposes() -> None:
    lat = RGLattice(32, 4)
    rng = np.random.default_rng(1)
    for i, j in rng.integers(0, 32, size=(10, 2)):
        pixel = np.zeros((32, 32), dtype=bool)
        pixel[i, j] = True
        latents = lat.inference_cone(pixel)
        # every latent of the pixel's cone reaches the pixel in generation, and no other does
        for a, b in zip(*np.nonzero(latents)):
            site = np.zeros((32, 32), dtype=bool)
            site[a, b] = True
            assert lat.generation_cone(site)[i, j]
        outside = np.argwhere(~latents)[:5]
        for a, b in outside:
            site = np.zeros((32, 32), dtype=bool)
            site[a, b] = True
            assert not lat.generation_cone(site)[i, j]


def test_top_latent_reaches_every_pixel_and_fine_latent_a_patch() -> None:
    lat = RGLattice(32, 4)
    top = np.zeros((32, 32), dtype=bool)
    top[0, 8] = True
    assert lat.generation_cone(top).all()
    fine = np.zeros((32, 32), dtype=bool)
    fine[1, 1] = True
    assert lat.generation_cone(fine).sum() == 64  # an 8 x 8 patch


@pytest.mark.parametrize(
    "size,kernel", [(30, 4), (48, 4), (32, 3), (32, 0), (2, 4), (32, 5), (24, 6)]
)
def test_invalid_sizes_raise_a_clear_error(size: int, kernel: int) -> None:
    if size == 24 and kernel == 6:
        RGLattice(24, 6)  # 24 = 6 * 2^2 is valid
        return
    with pytest.raises(LatticeError, match="kernel|image side"):
        RGLattice(size, kernel)
