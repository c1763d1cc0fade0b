"""RG-Flow: a MERA-shaped normalizing flow whose latents are organised by scale.

The flow maps an image y in logit space (B, C, L, L) to latents z of the same shape through
2H RG layers (a disentangler and a decimator per level, see :mod:`rgflow.lattice`). Each
layer gathers its m x m blocks into the batch, applies its RealNVP coupling (shared by all
blocks of the layer) and scatters them back:

    1. gather   x (B, C, L, L) -> blocks (B * n_blocks, C * m * m)
    2. couple   blocks -> blocks', log|det| per block
    3. scatter  blocks' -> x;  log|det| summed over blocks and layers

    log p(y) = log p_Z(z) + sum_layers log|det dz/dy|                        (change of variables)

A latent's level is given by its site alone (``lattice.level_map()``): the tensor is never
split. Generation runs the layers backwards from z drawn from the prior, optionally with one
temperature per level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .coupling import RealNVPCoupling
from .lattice import RGLattice
from .preprocess import (
    bits_per_dim,
    check_pixels,
    dequantize,
    inverse_logit,
    logit_transform,
    quantize,
)
from .priors import PRIORS, make_prior

__all__ = ["RGFlowConfig", "Preset", "PRESETS", "RGFlow", "get_preset"]

PerLevel = int | tuple[int, ...]


@dataclass(frozen=True)
class RGFlowConfig:
    """Architecture of an RG-Flow (the authors' ``args.py`` names in brackets).

    Args:
        image_size: L, the image side [L]; m * 2^k.
        channels: C [nchannels].
        kernel: m, the block side [kernel_size].
        n_layers: subnet layers per RG layer, one number or one per level [nlayers].
        n_resblocks: residual blocks per s/t-net, one number or one per level [nresblocks].
        n_mlp: hidden layers per residual block, one number or one per level [nmlp].
        n_hidden: hidden width, one number or one per level [nhidden].
        prior: ``"laplace"`` (sparse, the paper's default) or ``"gaussian"`` [prior].
    """

    image_size: int = 32
    channels: int = 3
    kernel: int = 4
    n_layers: PerLevel = 4
    n_resblocks: PerLevel = 4
    n_mlp: PerLevel = 2
    n_hidden: PerLevel = 512
    prior: str = "laplace"

    def __post_init__(self) -> None:
        lattice = RGLattice(self.image_size, self.kernel)  # raises on a bad size
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels must be a positive integer, got {self.channels!r}.")
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; choose one of {sorted(PRIORS)}.")
        for name in ("n_layers", "n_resblocks", "n_mlp", "n_hidden"):
            value = getattr(self, name)
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, name, value)
            values = value if isinstance(value, tuple) else (value,)
            if not values or not all(isinstance(v, int) and v >= 1 for v in values):
                raise ValueError(f"{name} must be positive integers, got {value!r}.")
            if isinstance(value, tuple) and len(value) != lattice.n_levels:
                raise ValueError(
                    f"{name}={value} gives {len(value)} levels, but L={self.image_size} "
                    f"with m={self.kernel} has {lattice.n_levels}; give one number or one "
                    f"per level."
                )

    def per_level(self, name: str) -> tuple[int, ...]:
        """A size expanded to one value per level."""
        value = getattr(self, name)
        n_levels = RGLattice(self.image_size, self.kernel).n_levels

        return value if isinstance(value, tuple) else (value,) * n_levels

    @property
    def dims(self) -> int:
        """D = C L^2, the number of variables per image."""
        return self.channels * self.image_size**2

    def replace(self, **changes: object) -> RGFlowConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RGFlowConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown RGFlowConfig fields {sorted(unknown)}.")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}

        return cls(**data)


@dataclass(frozen=True)
class Preset:
    """A named architecture plus its training defaults."""

    config: RGFlowConfig
    weight_decay: float
    description: str
    batch_size: int = 64
    extra: dict = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "celeba32": Preset(
        RGFlowConfig(n_layers=(8, 6, 4, 2), n_resblocks=4, n_mlp=2, n_hidden=512),
        weight_decay=5e-5,
        description="the authors' CelebA model (100,647,680 parameters); a GPU run",
    ),
    "msds": Preset(
        RGFlowConfig(n_layers=4, n_resblocks=4, n_mlp=2, n_hidden=512),
        weight_decay=5e-2,
        description="the paper's synthetic-data setting, nlayers 4 at every level; a GPU run",
    ),
    "small": Preset(
        RGFlowConfig(n_layers=(4, 3, 2, 1), n_resblocks=2, n_mlp=2, n_hidden=128),
        weight_decay=5e-5,
        description="2.4M parameters; trains on two CPU cores in minutes",
    ),
    "tiny": Preset(
        RGFlowConfig(n_layers=(4, 3, 2, 1), n_resblocks=2, n_mlp=2, n_hidden=64),
        weight_decay=5e-5,
        description="0.86M parameters; the fastest CPU model, for smoke runs",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")

    return PRESETS[name]


class RGFlow(nn.Module):
    """The RG-Flow bijection y <-> z with its prior.

    Args:
        config: the architecture.

    Shapes:
        y, z: (B, C, L, L). forward(y) -> (z, log|det dz/dy| (B,)); inverse(z) -> (y,
        log|det dy/dz| (B,)).

    Example:
        >>> flow = RGFlow(RGFlowConfig(image_size=8, channels=1, n_hidden=8, n_layers=1))
        >>> y = torch.randn(2, 1, 8, 8)
        >>> z, logdet = flow(y)
        >>> torch.allclose(flow.inverse(z)[0], y, atol=1e-5)
        True
    """

    def __init__(self, config: RGFlowConfig) -> None:
        super().__init__()
        self.config = config
        self.lattice = RGLattice(config.image_size, config.kernel)

        n_layers = config.per_level("n_layers")
        hidden = config.per_level("n_hidden")
        n_mlp = config.per_level("n_mlp")
        n_res = config.per_level("n_resblocks")
        self.layers = nn.ModuleList()
        for layer in range(self.lattice.n_layers):
            h = self.lattice.layer_level(layer)
            self.layers.append(
                RealNVPCoupling(
                    config.channels, config.kernel, n_layers[h], hidden[h], n_mlp[h], n_res[h]
                )
            )
            index = self._flat_block_index(self.lattice.block_indices(layer), config.channels)
            self.register_buffer(f"block_index_{layer}", index, persistent=False)

        self.prior = make_prior(config.prior)
        level_map = torch.as_tensor(self.lattice.level_map().copy())
        self.register_buffer("level_map", level_map, persistent=False)

    # ------------------------------------------------------------------------------------
    # Blocks

    def _flat_block_index(self, sites: np.ndarray, channels: int) -> Tensor:
        """Positions in x (B, C * L * L) of every block variable, (n_blocks * C * m * m,).

        Entry (block, c, p) is c L^2 + sites[block, p], so one index_select gives the blocks
        channel-major, as the couplings expect.
        """
        sites = torch.as_tensor(sites)  # (n_blocks, m * m)
        offsets = torch.arange(channels) * self.config.image_size**2  # (C,)

        return (offsets[None, :, None] + sites[:, None, :]).reshape(-1)  # (n_blocks, C, m * m)

    def _block_index(self, layer: int) -> Tensor:
        return getattr(self, f"block_index_{layer}")

    def _gather(self, x: Tensor, index: Tensor) -> Tensor:
        """x (B, C, L * L) -> blocks (B * n_blocks, C * m * m), channel-major in a block.

        ``index`` is a layer's flat block index (see ``_flat_block_index``): one index_select.
        """
        b, c, _ = x.shape
        blocks = x.reshape(b, -1).index_select(1, index)  # (B, n_blocks * C * m * m)

        return blocks.view(-1, c * self.config.kernel**2)  # (B * n_blocks, C * m * m)

    def _scatter(self, x: Tensor, index: Tensor, blocks: Tensor) -> Tensor:
        """Write blocks (B * n_blocks, C * m * m) back into x (B, C, L * L): one index_copy."""
        b, c, _ = x.shape
        values = blocks.reshape(b, -1)  # (B, n_blocks * C * m * m)

        return x.reshape(b, -1).index_copy(1, index, values).view(b, c, -1)  # (B, C, L * L)

    def _check_input(self, x: Tensor, what: str) -> None:
        c, size = self.config.channels, self.config.image_size
        if not isinstance(x, Tensor):
            raise TypeError(
                f"{what} must be a torch.Tensor, got {type(x).__name__}; convert with "
                f"torch.as_tensor({what}, dtype=torch.float32)."
            )
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, size, size):
            raise ValueError(
                f"{what} must have shape (B, {c}, {size}, {size}) for this model, got "
                f"{tuple(x.shape)}; convert or resize the input, or use a model built for "
                f"it (channels and image_size in its config)."
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{what} must be floating point, got {x.dtype}; for uint8 pixels use "
                f"encode() or log_prob_pixels()."
            )
        dtype = self.prior.scale.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"{what} is {x.dtype} but the model is {dtype}; convert the input with "
                f"{what}.to({dtype}) or the model with model.to({x.dtype})."
            )
        finite = torch.isfinite(x)
        if not finite.all():
            bad = int((~finite).sum())
            raise ValueError(
                f"{what} holds {bad} NaN or infinite value(s) of {x.numel()}; the flow needs "
                f"finite inputs. Find where they came from (an overflow or a division by zero "
                f"upstream) or drop those images, e.g. {what}[torch.isfinite({what}).flatten(1)"
                f".all(1)]."
            )

    # ------------------------------------------------------------------------------------
    # The bijection

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Inference (RG) direction: y (B, C, L, L) -> z (B, C, L, L), log|det dz/dy| (B,)."""
        self._check_input(y, "y")
        b, c, size, _ = y.shape
        x = y.reshape(b, c, size * size)
        logdet = y.new_zeros(b)

        for layer, coupling in enumerate(self.layers):
            index = self._block_index(layer)
            blocks, ld = coupling(self._gather(x, index))
            logdet = logdet + ld.view(b, -1).sum(dim=1)
            x = self._scatter(x, index, blocks)

        return x.view(b, c, size, size), logdet

    def inverse(self, z: Tensor, down_to_level: int = 0) -> tuple[Tensor, Tensor]:
        """Generation direction: z (B, C, L, L) -> y (B, C, L, L), log|det dy/dz| (B,).

        Args:
            z: latents.
            down_to_level: stop after the layers of this level (0: the whole flow). After
                the layers of levels H-1 .. h, ``y[..., ::2**h, ::2**h]`` is the coarse image
                x^(h) of the paper's generation figure.
        """
        self._check_input(z, "z")
        if not 0 <= down_to_level < self.lattice.n_levels:
            raise ValueError(
                f"down_to_level must be in 0..{self.lattice.n_levels - 1}, got {down_to_level}."
            )
        b, c, size, _ = z.shape
        x = z.reshape(b, c, size * size)
        logdet = z.new_zeros(b)

        for layer in reversed(range(2 * down_to_level, len(self.layers))):
            index = self._block_index(layer)
            blocks, ld = self.layers[layer].inverse(self._gather(x, index))
            logdet = logdet + ld.view(b, -1).sum(dim=1)
            x = self._scatter(x, index, blocks)

        return x.view(b, c, size, size), logdet

    # ------------------------------------------------------------------------------------
    # Densities and sampling

    def temperature_map(self, temperature: float | Sequence[float] | Tensor) -> float | Tensor:
        """One number, or one temperature per level expanded to a (1, 1, L, L) map.

        Args:
            temperature: T for every latent, or (T_0, ..., T_{H-1}) from finest to top.
        """
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            return float(temperature)
        try:
            t = torch.as_tensor(temperature, dtype=self.prior.scale.dtype)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"temperature must be a number or a sequence of numbers (one per level, "
                f"finest first), got {temperature!r}."
            ) from None
        if t.dim() == 0:
            return float(t)
        if t.dim() == 1:
            if len(t) != self.lattice.n_levels:
                raise ValueError(
                    f"give one temperature or one per level ({self.lattice.n_levels} for "
                    f"this model), got {len(t)}."
                )
            return t.to(self.level_map.device)[self.level_map][None, None]

        return t

    def log_prob(self, y: Tensor, temperature: float | Sequence[float] = 1.0) -> Tensor:
        """log p(y) in logit space, (B, C, L, L) -> (B,): log p_Z(z) + log|det dz/dy|."""
        z, logdet = self(y)

        return self.prior.log_prob(z, self.temperature_map(temperature)) + logdet

    def sample_latents(
        self,
        n: int,
        temperature: float | Sequence[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """z (n, C, L, L) from the prior, with one temperature or one per level."""
        c, size = self.config.channels, self.config.image_size
        z = self.prior.sample((n, c, size, size), self.temperature_map(temperature), generator)
        if not torch.isfinite(z).all():
            raise FloatingPointError(
                f"latents drawn at temperature {temperature} overflow {z.dtype} (largest "
                f"finite value {torch.finfo(z.dtype).max:.1e}); use a lower temperature, or a "
                f"float64 model (model.double())."
            )

        return z

    def sample(
        self,
        n: int,
        temperature: float | Sequence[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw n images in logit space.

        Returns:
            y (n, C, L, L) and its log-density under the distribution it was drawn from,
            log p_T(y) = log p_Z,T(z) - log|det dy/dz|, which equals
            ``log_prob(y, temperature)``.
        """
        t = self.temperature_map(temperature)
        z = self.sample_latents(n, temperature, generator)
        y, logdet = self.inverse(z)
        _check_generated(y, z, f"sampling at temperature {temperature}")

        return y, self.prior.log_prob(z, t) - logdet

    # ------------------------------------------------------------------------------------
    # Pixels

    def log_prob_pixels(
        self, pixels: Tensor, generator: torch.Generator | None = None, noise: bool = True
    ) -> Tensor:
        """log p(x) of dequantised 8-bit images, uint8 (B, C, L, L) -> (B,).

        This is the density of x = (k + u) / 256 on [0, 1)^D, including the logit log-det.
        """
        check_pixels(pixels, self.config.channels, self.config.image_size)
        x = dequantize(pixels, generator, noise, dtype=self.prior.scale.dtype)
        y, logdet = logit_transform(x)

        return self.log_prob(y) + logdet

    def bits_per_dim(
        self, pixels: Tensor, generator: torch.Generator | None = None, noise: bool = True
    ) -> Tensor:
        """bits/dim of each image, uint8 (B, C, L, L) -> (B,)."""
        return bits_per_dim(self.log_prob_pixels(pixels, generator, noise), self.config.dims)

    def encode(self, pixels: Tensor) -> Tensor:
        """uint8 pixels (B, C, L, L) -> latents z (B, C, L, L), deterministically.

        Uses the centre of each quantisation bin ((k + 1/2) / 256), so
        ``decode(encode(p)) == p`` up to float round-off.
        """
        check_pixels(pixels, self.config.channels, self.config.image_size)
        x = dequantize(pixels, noise=False, dtype=self.prior.scale.dtype)
        y, _ = logit_transform(x)

        return self(y)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Latents z (B, C, L, L) -> uint8 pixels (B, C, L, L)."""
        return quantize(self.decode_float(z))

    def decode_float(self, z: Tensor) -> Tensor:
        """Latents z (B, C, L, L) -> images in [0, 1] (B, C, L, L), for display."""
        y = self.inverse(z)[0]
        _check_generated(y, z, "decoding these latents")

        return inverse_logit(y)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"config={self.config}, parameters={self.num_parameters():,}"


def _check_generated(y: Tensor, z: Tensor, what: str) -> None:
    """Raise FloatingPointError if the generated y holds NaN (inf saturates to 0 or 255)."""
    if torch.isnan(y).any():
        raise FloatingPointError(
            f"{what} gave NaN images: the inverse flow overflowed {y.dtype} (largest |z| is "
            f"{z.abs().max().item():.3g}). Use a lower temperature (T <= 10 is plenty for "
            f"display), smaller latents, or a float64 model (model.double())."
        )
