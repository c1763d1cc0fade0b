"""RG lattice geometry: which sites each RG layer mixes, the level of every latent, causal cones.

RG-Flow acts on an L x L image with a stack of 2H RG layers, H = log2(L / m) + 1. Level
h = 0 .. H-1 owns two layers, applied in this order in the inference (RG, x -> z) direction:

* the **disentangler** (layer 2h): m x m blocks with dilation 2^h and stride m 2^h, offset 0;
* the **decimator** (layer 2h + 1): the same blocks shifted by m 2^h / 2 in both directions.

Pixel (a, b) in {0 .. m-1}^2 of block (p, q) of a layer at level h with offset o sits at

    ((o + m 2^h p + 2^h a) mod L,  (o + m 2^h q + 2^h b) mod L)        (periodic boundary)

Level h only touches the stride-2^h sub-lattice, so a site that no later layer touches is a
final latent. The level of site (i, j) is therefore min(v2(i), v2(j), H - 1), with v2 the
2-adic valuation (v2(0) = infinity), and ``z[..., ::2**k, ::2**k]`` holds the levels >= k.

This is the authors' convention (shift on the decimator). The paper's equations put the shift
on the disentangler instead; both keep the same sub-lattices and cone sizes, but they are not
the same network, and trained weights only fit the convention they were trained with.

Nothing here is a neural network: it is integer bookkeeping in numpy, shared by the model
(gather and scatter of blocks), the figures (structure, cones) and the inpainting code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["LatticeError", "RGLattice", "LAYER_KINDS"]

LAYER_KINDS = ("disentangler", "decimator")


class LatticeError(ValueError):
    """An image side or kernel that no RG lattice can be built on."""


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@dataclass(frozen=True)
class RGLattice:
    """The RG geometry of an L x L image cut into m x m blocks.

    Args:
        image_size: the side L of the image; it must be m 2^k for some k >= 0.
        kernel: the block side m (the paper's m, the authors' ``kernel_size``); even, >= 2.

    Example:
        >>> lat = RGLattice(32, 4)
        >>> lat.n_levels, lat.n_layers, lat.sites_per_level()
        (4, 8, [768, 192, 48, 16])
    """

    image_size: int
    kernel: int = 4

    def __post_init__(self) -> None:
        L, m = self.image_size, self.kernel
        if not isinstance(L, (int, np.integer)) or not isinstance(m, (int, np.integer)):
            raise LatticeError(f"image_size and kernel must be integers, got {L!r} and {m!r}.")
        if m < 2 or m % 2:
            raise LatticeError(
                f"kernel m={m} must be an even integer >= 2 (the decimator is shifted by "
                f"m/2); the paper and the presets use m=4."
            )
        if L < m or L % m or not _is_power_of_two(L // m):
            raise LatticeError(
                f"image side L={L} must be m * 2^k for kernel m={m} (e.g. {m}, {2 * m}, "
                f"{4 * m}, {8 * m}, ...); resize or pad the images, or pick another kernel."
            )

    # ------------------------------------------------------------------------------------
    # Sizes

    @property
    def n_levels(self) -> int:
        """H = log2(L / m) + 1, the number of RG levels (scales)."""
        return (self.image_size // self.kernel).bit_length()

    @property
    def n_layers(self) -> int:
        """2H RG layers: a disentangler and a decimator per level."""
        return 2 * self.n_levels

    @property
    def n_sites(self) -> int:
        return self.image_size**2

    @staticmethod
    def layer_level(layer: int) -> int:
        """The level h of RG layer ``layer`` (layers 2h and 2h + 1 belong to level h)."""
        return layer // 2

    @staticmethod
    def layer_kind(layer: int) -> str:
        """``"disentangler"`` for even layers, ``"decimator"`` for odd ones."""
        return LAYER_KINDS[layer % 2]

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} out of range: this lattice has {self.n_layers}.")

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.n_levels:
            raise IndexError(f"level {level} out of range: this lattice has {self.n_levels}.")

    # ------------------------------------------------------------------------------------
    # Blocks of each layer

    def layer_offset(self, layer: int) -> int:
        """The shift o of a layer: 0 for a disentangler, m 2^h / 2 for a decimator."""
        self._check_layer(layer)
        h = self.layer_level(layer)

        return (layer % 2) * self.kernel * 2**h // 2

    def blocks_per_side(self, layer: int) -> int:
        """How many blocks a layer has along each axis: L / (m 2^h)."""
        self._check_layer(layer)

        return self.image_size // (self.kernel * 2 ** self.layer_level(layer))

    def block_coordinates(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every variable of every block of one layer.

        Returns:
            (rows, cols), each int64 of shape (n_blocks, m, m): entry [n, a, b] is the site of
            pixel (a, b) of block n = p * blocks_per_side + q.
        """
        m, L = self.kernel, self.image_size
        h, o = self.layer_level(layer), self.layer_offset(layer)
        n_side = self.blocks_per_side(layer)

        pq = np.arange(n_side)
        ab = np.arange(m)
        line = (o + m * 2**h * pq[:, None] + 2**h * ab[None, :]) % L  # (n_side, m)

        rows = np.broadcast_to(line[:, None, :, None], (n_side, n_side, m, m))
        cols = np.broadcast_to(line[None, :, None, :], (n_side, n_side, m, m))

        return rows.reshape(-1, m, m).copy(), cols.reshape(-1, m, m).copy()

    def block_indices(self, layer: int) -> np.ndarray:
        """Flat site indices i * L + j of every block of one layer, shape (n_blocks, m * m).

        Within a block the variables are in row-major (a, b) order, as in the authors' code.
        """
        rows, cols = self.block_coordinates(layer)

        return (rows * self.image_size + cols).reshape(len(rows), -1)

    def touched(self, layer: int) -> np.ndarray:
        """Boolean (L, L): the sites that one layer transforms."""
        mask = np.zeros(self.n_sites, dtype=bool)
        mask[self.block_indices(layer).ravel()] = True

        return mask.reshape(self.image_size, self.image_size)

    def kept(self, level: int) -> np.ndarray:
        """Boolean (L, L): the sites that level ``level`` passes up to level + 1.

        Inside each decimator block these are the variables at relative (a, b) on the
        stride-2 sub-lattice of the block (one per 2 x 2 cell); the other sites the level
        touches become its final latents. The top level keeps nothing.
        """
        self._check_level(level)
        if level == self.n_levels - 1:
            return np.zeros((self.image_size,) * 2, dtype=bool)

        return self.level_map() > level

    # ------------------------------------------------------------------------------------
    # Levels of the latents

    @cached_property
    def _level_map(self) -> np.ndarray:
        L, H = self.image_size, self.n_levels

        # v2(i), the 2-adic valuation, capped at the top level; v2(0) = infinity -> H - 1
        v2 = np.full(L, H - 1, dtype=np.int64)
        for i in range(1, L):
            v2[i] = min((i & -i).bit_length() - 1, H - 1)

        out = np.minimum(v2[:, None], v2[None, :])  # (L, L)
        out.setflags(write=False)

        return out

    def level_map(self) -> np.ndarray:
        """Int64 (L, L): the RG level of the latent at each site, 0 finest, H - 1 top.

        level(i, j) = min(v2(i), v2(j), H - 1), the last level whose layers touch (i, j).
        """
        return self._level_map

    def level_mask(self, level: int) -> np.ndarray:
        """Boolean (L, L): the latent sites of one level."""
        self._check_level(level)

        return self.level_map() == level

    def sites_per_level(self) -> list[int]:
        """Number of latent sites at each level, e.g. [768, 192, 48, 16] for L=32, m=4."""
        counts = np.bincount(self.level_map().ravel(), minlength=self.n_levels)

        return [int(c) for c in counts]

    def coarse_sites(self, level: int) -> tuple[slice, slice]:
        """Slices of the stride-2^h sub-lattice: ``z[..., rows, cols]`` holds levels >= h."""
        self._check_level(level)
        step = 2**level

        return slice(None, None, step), slice(None, None, step)

    # ------------------------------------------------------------------------------------
    # Causal cones

    def _spread(self, mask: np.ndarray, layers: range | list[int]) -> np.ndarray:
        """Propagate a dependency set through layers: a block that meets it joins it whole.

        Inside a block every output depends on every input (the coupling is dense), and the
        relation "same block" is symmetric, so the same rule serves both directions.
        """
        dep = np.asarray(mask, dtype=bool).reshape(-1).copy()
        if dep.size != self.n_sites:
            raise ValueError(
                f"mask must have {self.image_size}x{self.image_size} entries, got shape "
                f"{np.shape(mask)}."
            )
        for layer in layers:
            blocks = self.block_indices(layer)  # (n_blocks, m * m)
            hit = dep[blocks].any(axis=1)
            dep[blocks[hit].ravel()] = True

        return dep.reshape(self.image_size, self.image_size)

    def inference_cone(self, pixels: np.ndarray) -> np.ndarray:
        """Latent sites whose value depends on any pixel in a region (x -> z direction).

        Args:
            pixels: boolean (L, L), the region.

        Returns:
            Boolean (L, L) over latent sites. For a single pixel these are also exactly the
            latents that the pixel depends on in generation (the block relation is
            symmetric), the set that inpainting must update.
        """
        return self._spread(pixels, range(self.n_layers))

    def generation_cone(self, latents: np.ndarray) -> np.ndarray:
        """Pixels that depend on any latent in a set of sites (z -> x direction).

        Args:
            latents: boolean (L, L), the latent sites.

        Returns:
            Boolean (L, L) over pixels.
        """
        return self._spread(latents, range(self.n_layers - 1, -1, -1))

    def latents_of_region(self, pixels: np.ndarray) -> np.ndarray:
        """Latent sites that reach some pixel of a region in generation.

        For a region this is the union over its pixels of their cones; since the block
        relation is symmetric it equals :meth:`inference_cone` of the region.
        """
        return self.inference_cone(pixels)

    def cone_counts(self, cone: np.ndarray) -> list[int]:
        """Number of latent sites of a cone at each level."""
        levels = self.level_map()[np.asarray(cone, dtype=bool)]

        return [int(c) for c in np.bincount(levels, minlength=self.n_levels)]

    def _axis_cones(self) -> tuple[np.ndarray, np.ndarray]:
        """The cone of one coordinate along one axis, level by level.

        Every layer's blocks are products of intervals, and the sites a level passes up form
        the product sub-lattice of even coordinates, so the cone of pixel (i, j) entering
        level h is a product I_h(i) x I_h(j) of sets on the stride-2^h sub-lattice. This
        computes, for every coordinate i, |I''_h(i)| (after both layers of level h) and how
        many of those are even (the ones passed up to level h + 1).

        Returns:
            (size, kept), int64 arrays of shape (L, H).
        """
        L, m, H = self.image_size, self.kernel, self.n_levels
        size = np.zeros((L, H), dtype=np.int64)
        kept = np.zeros((L, H), dtype=np.int64)

        for i in range(L):
            cone = np.zeros(L, dtype=bool)
            cone[i] = True
            for h in range(H):
                n = L >> h  # side of the stride-2^h sub-lattice
                for offset in (0, m // 2):  # disentangler, decimator
                    blocks = (offset + np.arange(n).reshape(-1, m)) % n  # (n / m, m)
                    hit = cone[blocks].any(axis=1)
                    cone[blocks[hit].ravel()] = True
                size[i, h] = cone.sum()
                kept[i, h] = cone[::2].sum()
                cone = cone[::2]

        return size, kept

    def pixel_cone_counts(self) -> np.ndarray:
        """Int64 (L, L, H): how many latent sites of each level each pixel's cone holds.

        Uses the product structure of :meth:`_axis_cones`: at level h < H - 1 the cone of
        pixel (i, j) holds |I_h(i)| |I_h(j)| sites minus the even-even ones passed up; the
        top level keeps all of its |I(i)| |I(j)|. Tests check this against the direct
        block-spreading of :meth:`inference_cone`.
        """
        size, kept = self._axis_cones()
        kept = kept.copy()
        kept[:, -1] = 0  # the top level passes nothing up

        total = size[:, None, :] * size[None, :, :]  # (L, L, H)
        passed = kept[:, None, :] * kept[None, :, :]

        return total - passed

    def pixel_cone_sizes(self) -> np.ndarray:
        """Int64 (L, L): how many latent sites (all levels) each pixel's cone holds.

        For m=4 and L = 32, 64, 128, 256 the fewest are 220, 328, 436, 544 (at pixel (0, 0))
        and the most 220, 412, 604, 796: O(log L), against the L^2 latents a pixel depends
        on in a flow whose Jacobian is dense.
        """
        return self.pixel_cone_counts().sum(axis=-1)
