"""Factorised priors over the latents: Gaussian, and the sparse Laplace prior of RG-Flow.

Both priors put the same distribution on every latent, at every level and site, with a fixed
(not learned) scale held in a buffer, so it follows the model across devices and dtypes. The
effective temperature T scales the standard deviation:

    Gaussian:  log p(z) = sum_i [ -z_i^2 / (2 T^2) - log T - log(2 pi) / 2 ]
    Laplace:   log p(z) = sum_i [ -|z_i| / b - log(2 b) ],   b = T / sqrt(2)   (Var = T^2)

T may be one number, or a tensor broadcastable to z, e.g. a (1, 1, L, L) map that gives each
level its own temperature (see :meth:`rgflow.model.RGFlow.temperature_map`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Prior", "GaussianPrior", "LaplacePrior", "make_prior", "PRIORS"]

Temperature = float | Tensor


def _check_temperature(temperature: Temperature) -> None:
    t = torch.as_tensor(temperature)
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(
            f"temperature must be finite and > 0, got {temperature!r}; T = 1 is the trained "
            f"prior, T < 1 gives smoother samples."
        )


class Prior(nn.Module):
    """Base class: a factorised density over latents of any shape (B, ...)."""

    name = "prior"

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def _scale(self, temperature: Temperature, like: Tensor) -> Tensor:
        _check_temperature(temperature)
        scale = self.scale.to(like.dtype) * torch.as_tensor(
            temperature, dtype=like.dtype, device=like.device
        )

        return scale

    def log_prob_elements(self, z: Tensor, temperature: Temperature = 1.0) -> Tensor:
        """log p of every latent variable separately, the shape of z."""
        raise NotImplementedError

    def log_prob(self, z: Tensor, temperature: Temperature = 1.0) -> Tensor:
        """log p(z) summed over all but the batch dimension: (B, ...) -> (B,)."""
        return self.log_prob_elements(z, temperature).flatten(1).sum(dim=1)

    def sample(
        self,
        shape: tuple[int, ...],
        temperature: Temperature = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw latents of the given shape, in the dtype and device of the buffers."""
        raise NotImplementedError


class GaussianPrior(Prior):
    """N(0, T^2) on every latent."""

    name = "gaussian"

    def __init__(self) -> None:
        super().__init__(1.0)

    def log_prob_elements(self, z: Tensor, temperature: Temperature = 1.0) -> Tensor:
        std = self._scale(temperature, z)

        return -0.5 * (z / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)

    def sample(
        self,
        shape: tuple[int, ...],
        temperature: Temperature = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        eps = torch.randn(
            shape, generator=generator, dtype=self.scale.dtype, device=self.scale.device
        )

        return self._scale(temperature, eps) * eps


class LaplacePrior(Prior):
    """Laplace(0, b) on every latent with b = T / sqrt(2), so that Var = T^2."""

    name = "laplace"

    def __init__(self) -> None:
        super().__init__(1 / math.sqrt(2))

    def log_prob_elements(self, z: Tensor, temperature: Temperature = 1.0) -> Tensor:
        b = self._scale(temperature, z)

        return -z.abs() / b - torch.log(2 * b)

    def sample(
        self,
        shape: tuple[int, ...],
        temperature: Temperature = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        # Inverse CDF: u ~ U(eps - 1, 1), z = b sign(u) log(1 - |u|); eps keeps log1p finite.
        dtype, device = self.scale.dtype, self.scale.device
        eps = torch.finfo(dtype).eps
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        u = u * (2 - eps) + (eps - 1)
        b = self._scale(temperature, u)

        return b * u.sign() * torch.log1p(-u.abs())


PRIORS: dict[str, type[Prior]] = {"gaussian": GaussianPrior, "laplace": LaplacePrior}


def make_prior(name: str) -> Prior:
    """Build a prior by name: ``"laplace"`` (the paper's sparse prior) or ``"gaussian"``."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}.")

    return PRIORS[name]()
