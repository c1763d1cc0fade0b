"""Shared fixtures: float64 by default where an identity is tested, small models."""

from __future__ import annotations

import pytest
import torch

from rgflow.model import RGFlow, RGFlowConfig


def randomize_(model: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Give every zero-initialised scale (and the Swish gains) non-trivial random values.

    At initialisation each coupling is the identity; the identities worth testing need
    a flow that actually mixes its inputs.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale.scale"):  # the output Scale of each s/t-net
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std + 0.5)
            elif name.endswith(".scale"):  # Swish gains
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.fixture
def tiny_config() -> RGFlowConfig:
    """L=8, m=4: two levels, four RG layers, 1 channel: small enough for full Jacobians."""
    return RGFlowConfig(
        image_size=8, channels=1, kernel=4, n_layers=2, n_resblocks=2, n_mlp=1, n_hidden=16
    )


@pytest.fixture
def tiny_flow(tiny_config: RGFlowConfig) -> RGFlow:
    torch.manual_seed(0)
    return randomize_(RGFlow(tiny_config).double())
