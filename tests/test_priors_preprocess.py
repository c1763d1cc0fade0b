"""Priors (variance T^2, densities) and pixel preprocessing (log-det, bits/dim)."""

from __future__ import annotations

import math

import pytest
import torch

from rgflow.preprocess import (
    bits_per_dim,
    dequantize,
    inverse_logit,
    logit_transform,
    quantize,
)
from rgflow.priors import GaussianPrior, LaplacePrior, make_prior


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_laplace_has_variance_t_squared_and_the_right_density(temperature: float) -> None:
    prior = LaplacePrior().double()
    g = torch.Generator().manual_seed(0)
    z = prior.sample((200_000,), temperature, generator=g)
    assert z.var().item() == pytest.approx(temperature**2, rel=0.02)
    assert z.mean().item() == pytest.approx(0, abs=0.01 * temperature)
    ref = torch.distributions.Laplace(0.0, temperature / math.sqrt(2))
    zz = torch.linspace(-3, 3, 11, dtype=torch.float64)[None]
    torch.testing.assert_close(prior.log_prob(zz, temperature), ref.log_prob(zz).sum(1))


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_gaussian_density_and_variance(temperature: float) -> None:
    prior = GaussianPrior().double()
    z = prior.sample((100_000,), temperature, generator=torch.Generator().manual_seed(1))
    assert z.std().item() == pytest.approx(temperature, rel=0.02)
    ref = torch.distributions.Normal(0.0, temperature)
    zz = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob(zz, temperature), ref.log_prob(zz).sum(1))


def test_priors_follow_the_module_dtype() -> None:
    prior = make_prior("laplace").double()
    assert prior.sample((3,)).dtype == torch.float64
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("uniform")
    with pytest.raises(ValueError, match="temperature"):
        prior.log_prob(torch.zeros(1, 2), temperature=0.0)


def test_logit_logdet_matches_autograd() -> None:
    x = torch.rand(1, 12, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v[None])[0][0], x[0])
    _, logdet = logit_transform(x)
    assert torch.logdet(jac).item() == pytest.approx(logdet.item(), abs=1e-10)


def test_logit_squeeze_range_and_inverse() -> None:
    x = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    y, _ = logit_transform(x)
    assert y[0, 0].item() == pytest.approx(math.log(0.05 / 0.95))
    assert y[0, 1].item() == pytest.approx(0.0)
    torch.testing.assert_close(inverse_logit(y), x)


def test_uniform_density_on_8_bit_pixels_is_8_bits_per_dim() -> None:
    assert bits_per_dim(torch.zeros(3), dims=3072).tolist() == pytest.approx([8.0] * 3)
    # one nat per dimension better than uniform is 1 / ln 2 bits better
    assert bits_per_dim(torch.tensor([3072.0]), 3072).item() == pytest.approx(8 - 1 / math.log(2))


def test_dequantize_then_quantize_is_the_identity() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = dequantize(pixels, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ((x >= 0) & (x < 1)).all()
    assert torch.equal(quantize(x), pixels)
    assert torch.equal(quantize(dequantize(pixels, noise=False)), pixels)
