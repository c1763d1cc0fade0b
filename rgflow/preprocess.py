"""Pixels <-> the unbounded space the flow models, and bits per dimension.

The authors' pipeline (``code/utils/data_utils.py``), step by step, for 8-bit pixels k:

1. uniform dequantisation   x  = (k + u) / 256,  u ~ U[0, 1)          x in [0, 1)
2. squeeze                  x' = 0.05 + 0.9 x                          x' in [0.05, 0.95)
3. logit                    y  = log x' - log(1 - x')
4. log-det per image        sum_i [ log 0.9 - log x'_i - log(1 - x'_i) ]

The model gives log p(y); the density of the dequantised image is log p(x) = log p(y) + (4),
and since x is the pixels scaled by 1/256 the discrete likelihood costs ln 256 more per dim:

    bits/dim = (-log p(x) / D + ln 256) / ln 2,    D = C L^2

so a uniform density on [0, 1)^D (log p(x) = 0) is exactly 8 bits/dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "SQUEEZE",
    "PixelError",
    "check_pixels",
    "dequantize",
    "logit_transform",
    "inverse_logit",
    "quantize",
    "bits_per_dim",
]

SQUEEZE = 0.9  # the authors' ``constraint``: x' = (1 - 0.9) / 2 + 0.9 x


class PixelError(ValueError):
    """Pixels that are not 8-bit images of the expected shape."""


def check_pixels(pixels: Tensor, channels: int | None = None, size: int | None = None) -> None:
    """Raise :class:`PixelError` unless ``pixels`` is a uint8 batch (B, C, L, L).

    Float images in [0, 1] are a common mix-up; the message says how to convert them.
    """
    if not isinstance(pixels, Tensor):
        raise PixelError(
            f"pixels must be a torch.Tensor, got {type(pixels).__name__}; convert with "
            f"torch.as_tensor(pixels) (a numpy array of images (B, L, L, C) also needs "
            f".permute(0, 3, 1, 2))."
        )
    if pixels.dtype != torch.uint8:
        raise PixelError(
            f"pixels must be uint8 in 0..255, got dtype {pixels.dtype}.{_dtype_hint(pixels)}"
        )
    if pixels.dim() != 4:
        raise PixelError(
            f"pixels must have shape (B, C, L, L), got {tuple(pixels.shape)}; "
            f"add a batch dimension with pixels[None] for a single image."
        )
    b, c, h, w = pixels.shape
    if h != w:
        raise PixelError(f"images must be square, got {h}x{w}.")
    if channels is not None and c != channels:
        raise PixelError(
            f"the model has {channels} channel(s) but the pixels have {c}; "
            f"use a model trained on {c}-channel data, or convert the images."
        )
    if size is not None and h != size:
        raise PixelError(
            f"the model takes {size}x{size} images but got {h}x{w}; resize or crop them."
        )


def _dtype_hint(pixels: Tensor) -> str:
    """How to turn non-uint8 pixels into uint8, judged from their range."""
    if pixels.dtype == torch.bool or pixels.is_complex() or pixels.numel() == 0:
        return ""
    low, high = pixels.min().item(), pixels.max().item()
    if pixels.is_floating_point():
        if low != low or high != high or abs(low) == float("inf") or abs(high) == float("inf"):
            return " They also hold NaN or inf; fix those first."
        if 0 <= low and high <= 1:
            return (
                " These look like floats in [0, 1]: convert with (x * 255).round()"
                ".to(torch.uint8); if they are logits, call the model's forward() or "
                "log_prob() instead."
            )
        if 0 <= low and high <= 255:
            return " These look like floats in 0..255: convert with x.round().to(torch.uint8)."
        return (
            f" Their range [{low:.3g}, {high:.3g}] is neither [0, 1] nor 0..255; if they are "
            f"logits, call the model's forward() or log_prob() instead."
        )
    if 0 <= low and high <= 255:
        return " Their values fit in 0..255: convert with pixels.to(torch.uint8)."

    return (
        f" Their range [{low}, {high}] does not fit in 0..255; rescale them to 8 bits "
        f"first (casting would wrap around)."
    )


def dequantize(
    pixels: Tensor,
    generator: torch.Generator | None = None,
    noise: bool = True,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Uniform dequantisation of 8-bit pixels: x = (k + u) / 256, u ~ U[0, 1).

    Args:
        pixels: uint8 (B, C, L, L).
        generator: random generator for u (seeded evaluation).
        noise: if False, use the centre of each bin, u = 1/2 (deterministic encoding).
        dtype: floating dtype of the result (default: torch's default dtype).

    Returns:
        Floats in [0, 1), the shape of ``pixels``.
    """
    dtype = dtype or torch.get_default_dtype()
    k = pixels.to(dtype)
    if noise:
        u = torch.rand(k.shape, generator=generator, dtype=dtype, device=k.device)
    else:
        u = torch.full_like(k, 0.5)

    return (k + u) / 256


def logit_transform(x: Tensor) -> tuple[Tensor, Tensor]:
    """Squeeze to [0.05, 0.95] and take the logit, with the exact log-det.

    Args:
        x: floats in [0, 1], (B, ...).

    Returns:
        y = logit(0.05 + 0.9 x), same shape, and log|dy/dx| summed per image, (B,).
    """
    x = (1 - SQUEEZE) / 2 + SQUEEZE * x
    y = torch.log(x) - torch.log1p(-x)
    logdet = math.log(SQUEEZE) - torch.log(x) - torch.log1p(-x)

    return y, logdet.flatten(1).sum(dim=1)


def inverse_logit(y: Tensor) -> Tensor:
    """Back to [0, 1] for display: sigmoid, undo the squeeze, clamp. (B, ...) -> (B, ...)."""
    x = (torch.sigmoid(y) - (1 - SQUEEZE) / 2) / SQUEEZE

    return x.clamp(0, 1)


def quantize(x: Tensor) -> Tensor:
    """Floats in [0, 1] -> uint8 pixels k = floor(256 x), the inverse of dequantisation."""
    return torch.floor(x * 256).clamp(0, 255).to(torch.uint8)


def bits_per_dim(log_px: Tensor, dims: int) -> Tensor:
    """bits/dim = (-log p(x) / D + ln 256) / ln 2 for densities of the dequantised pixels."""
    return (-log_px / dims + math.log(256)) / math.log(2)
