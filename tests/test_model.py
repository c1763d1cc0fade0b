"""The bijection: identity at init, round trips, exact log-determinants, densities."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_

from rgflow.coupling import RealNVPCoupling, checkerboard_mask
from rgflow.model import PRESETS, RGFlow, RGFlowConfig


def test_checkerboard_mask_is_even_parity_repeated_over_channels() -> None:
    mask = checkerboard_mask(3, 4).view(3, 4, 4)
    assert mask.sum() == 24
    assert mask[0, 0, 0] == 1 and mask[0, 0, 1] == 0 and mask[2, 1, 1] == 1
    assert torch.equal(mask[0], mask[2])


@pytest.mark.parametrize(
    "name,count",
    [("celeba32", 100_647_680), ("msds", 80_518_144), ("small", 2_368_640), ("tiny", 863_360)],
)
def test_preset_parameter_counts(name: str, count: int) -> None:
    with torch.device("meta"):
        flow = RGFlow(PRESETS[name].config)
    assert flow.num_parameters() == count


def test_celeba32_per_layer_counts_match_the_authors() -> None:
    with torch.device("meta"):
        flow = RGFlow(PRESETS["celeba32"].config)
    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in flow.layers]
    assert per_layer == [20_129_536] * 2 + [15_097_152] * 2 + [10_064_768] * 2 + [5_032_384] * 2


def test_identity_at_initialisation(tiny_config: RGFlowConfig) -> None:
    flow = RGFlow(tiny_config).double()
    y = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    z, logdet = flow(y)
    assert torch.equal(z, y)
    assert torch.equal(logdet, torch.zeros(3, dtype=torch.float64))


def test_round_trips_with_random_weights(tiny_flow: RGFlow) -> None:
    y = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    z, logdet = tiny_flow(y)
    assert (z - y).abs().max() > 0.1  # the flow really mixes
    y_back, logdet_inv = tiny_flow.inverse(z)
    torch.testing.assert_close(y_back, y, rtol=0, atol=1e-12)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=0, atol=1e-12)

    z2 = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    y2, _ = tiny_flow.inverse(z2)
    torch.testing.assert_close(tiny_flow(y2)[0], z2, rtol=1e-9, atol=1e-9)


def test_logdet_equals_autograd_jacobian_both_ways(tiny_flow: RGFlow) -> None:
    y = torch.randn(1, 1, 8, 8, dtype=torch.float64)

    def f(v: torch.Tensor) -> torch.Tensor:
        return tiny_flow(v.view(1, 1, 8, 8))[0].reshape(-1)

    def g(v: torch.Tensor) -> torch.Tensor:
        return tiny_flow.inverse(v.view(1, 1, 8, 8))[0].reshape(-1)

    jac = torch.autograd.functional.jacobian(f, y.reshape(-1))
    _, logdet = tiny_flow(y)
    assert torch.linalg.slogdet(jac)[1].item() == pytest.approx(logdet.item(), abs=1e-9)
    assert abs(logdet.item()) > 1.0

    z = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    jac_inv = torch.autograd.functional.jacobian(g, z.reshape(-1))
    _, logdet_inv = tiny_flow.inverse(z)
    assert torch.linalg.slogdet(jac_inv)[1].item() == pytest.approx(logdet_inv.item(), abs=1e-9)


def test_coupling_logdet_equals_autograd_jacobian() -> None:
    torch.manual_seed(1)
    coupling = randomize_(RealNVPCoupling(2, 4, 2, 8, 2, 2).double())
    x = torch.randn(1, 32, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: coupling(v[None])[0][0], x[0])
    assert torch.linalg.slogdet(jac)[1].item() == pytest.approx(coupling(x)[1].item(), abs=1e-10)


def test_a_block_only_mixes_inside_its_cone(tiny_flow: RGFlow) -> None:
    """The Jacobian's sparsity is exactly the lattice's causal cones."""
    y = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda v: tiny_flow(v.view(1, 1, 8, 8))[0].reshape(-1), y.reshape(-1)
    )  # (z sites, y pixels)
    lat = tiny_flow.lattice
    for pixel in [0, 9, 27, 63]:
        region = torch.zeros(64, dtype=torch.bool)
        region[pixel] = True
        cone = torch.as_tensor(lat.inference_cone(region.view(8, 8).numpy())).reshape(-1)
        depends = jac[:, pixel].abs() > 0
        assert torch.equal(depends, cone)


def test_sample_log_prob_matches_log_prob(tiny_flow: RGFlow) -> None:
    g = torch.Generator().manual_seed(0)
    for temperature in [1.0, 0.5, (0.2, 0.8)]:
        y, log_p = tiny_flow.sample(4, temperature, generator=g)
        torch.testing.assert_close(log_p, tiny_flow.log_prob(y, temperature), rtol=1e-10, atol=0)


def test_per_level_temperature_map(tiny_flow: RGFlow) -> None:
    t = tiny_flow.temperature_map((0.2, 0.8))
    assert t.shape == (1, 1, 8, 8)
    assert t[0, 0, 0, 0] == 0.8 and t[0, 0, 1, 1] == 0.2 and t[0, 0, 0, 4] == 0.8
    with pytest.raises(ValueError, match="one per level"):
        tiny_flow.temperature_map((0.1, 0.2, 0.3))


def test_per_level_temperature_scales_each_level(tiny_flow: RGFlow) -> None:
    g = torch.Generator().manual_seed(0)
    z = tiny_flow.sample_latents(4000, (0.2, 2.0), generator=g)
    level = tiny_flow.level_map
    assert z[..., level == 0].std().item() == pytest.approx(0.2, rel=0.05)
    assert z[..., level == 1].std().item() == pytest.approx(2.0, rel=0.05)


def test_encode_decode_recovers_pixels(tiny_flow: RGFlow) -> None:
    pixels = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(tiny_flow.decode(tiny_flow.encode(pixels)), pixels)


def test_bad_shapes_and_dtypes_are_explained(tiny_flow: RGFlow) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        tiny_flow(torch.randn(2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="uint8 pixels"):
        tiny_flow(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        tiny_flow.encode(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="channel"):
        tiny_flow.encode(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match="one per level"):
        RGFlowConfig(n_layers=(1, 2))
    with pytest.raises(ValueError, match="unknown prior"):
        RGFlowConfig(prior="cauchy")
    with pytest.raises(ValueError, match="image side"):
        RGFlowConfig(image_size=28)
    config = RGFlowConfig(n_layers=(4, 3, 2, 1))
    assert RGFlowConfig.from_dict(config.to_dict()) == config
