"""The measurements of the claim notebooks, on data whose answer is known."""

from __future__ import annotations

import pytest
import torch

from rgflow.analysis import (
    encode_all,
    latents_needed,
    level_probes,
    load_if_available,
    msds_factors,
    per_image_bpd,
    ridge_probe_cv,
    sparse_probe_curve,
    standard_error,
    tail_statistics,
)
from rgflow.model import RGFlow
from rgflow.train import evaluate


def test_tail_statistics_of_equal_values_and_of_one_outlier() -> None:
    flat = tail_statistics(torch.ones(50))
    assert flat["top_decile_share"] == pytest.approx(0.1)
    assert flat["kurtosis"] == 0.0 and flat["n"] == 50
    spiky = tail_statistics(torch.cat([torch.ones(99), torch.tensor([100.0])]))
    assert spiky["top_decile_share"] > 0.5 and spiky["kurtosis"] > 50
    assert spiky["max"] == 100.0


def test_tail_statistics_kurtosis_of_a_laplace_sample_is_near_three() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(200_000, generator=g, dtype=torch.float64) - 0.5
    sample = -u.sign() * torch.log1p(-2 * u.abs())  # Laplace(0, 1) by inversion
    gauss = torch.randn(200_000, generator=g)
    assert tail_statistics(sample)["kurtosis"] == pytest.approx(3.0, abs=0.3)
    assert tail_statistics(gauss)["kurtosis"] == pytest.approx(0.0, abs=0.1)


def test_sparse_probe_curve_finds_the_one_feature_that_carries_the_target() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 40, generator=g, dtype=torch.float64)
    y = 2 * x[:, 17] + 0.01 * torch.randn(600, generator=g, dtype=torch.float64)
    curve = sparse_probe_curve(x, y, sizes=(1, 2, 4, 8, 100))
    assert curve.sizes == [1, 2, 4, 8, 40]  # clipped to the 40 features
    assert int(curve.order[0]) == 17
    assert curve.r2[0] > 0.99
    assert latents_needed(curve) == 1


def test_latents_needed_is_none_without_signal() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(300, 10, generator=g), torch.randn(300, generator=g)
    curve = sparse_probe_curve(x, y, sizes=(1, 2))
    if max(curve.r2) <= 0:
        assert latents_needed(curve) is None
    assert all(r < 0.1 for r in curve.r2)


def test_ridge_probe_cv_recovers_a_linear_map_and_not_noise() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(500, 30, generator=g, dtype=torch.float64)
    w = torch.randn(30, 2, generator=g, dtype=torch.float64)
    r2, alpha = ridge_probe_cv(x, x @ w, seed=0)
    assert r2 > 0.99 and alpha in (0.1, 1.0)
    noise, _ = ridge_probe_cv(x, torch.randn(500, 2, generator=g, dtype=torch.float64))
    assert noise < 0.1


def test_ridge_probe_cv_with_more_features_than_samples_does_not_blow_up() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(200, 1000, generator=g, dtype=torch.float64)
    y = x[:, :5].sum(dim=1)
    r2, alpha = ridge_probe_cv(x, y)
    assert -0.5 < r2 <= 1.0 and alpha > 0


def test_msds_factors_shapes_and_unit_orientation() -> None:
    g = torch.Generator().manual_seed(5)
    labels = torch.zeros(7, 4, 4, 6, dtype=torch.int32)
    labels[..., 2] = torch.randint(0, 180, (7, 4, 4), generator=g, dtype=torch.int32)
    labels[..., 3:] = torch.randint(0, 256, (7, 4, 4, 3), generator=g, dtype=torch.int32)
    one = msds_factors("msds1", labels)
    assert one["global"].shape == (7, 3) and one["local"].shape == (7, 32)
    assert torch.allclose(one["global"], labels[..., 3:].double().mean(dim=(1, 2)) / 255)
    two = msds_factors("msds2", labels)
    assert two["global"].shape == (7, 2) and two["local"].shape == (7, 48)
    assert torch.allclose(two["global"].norm(dim=1), torch.ones(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="msds1"):
        msds_factors("celeba32", labels)


def test_per_image_bpd_matches_the_training_loop(tiny_flow: RGFlow) -> None:
    g = torch.Generator().manual_seed(6)
    pixels = torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8)
    per_image = per_image_bpd(tiny_flow, pixels, seed=3, batch_size=4)
    assert per_image.shape == (10,)
    assert per_image.mean().item() == pytest.approx(
        evaluate(tiny_flow, pixels, batch_size=4, seed=3), rel=1e-12
    )
    assert standard_error(per_image) == pytest.approx(per_image.std().item() / 10**0.5)


def test_level_probes_cover_every_level(tiny_flow: RGFlow) -> None:
    g = torch.Generator().manual_seed(7)
    pixels = torch.randint(0, 256, (60, 1, 8, 8), generator=g, dtype=torch.uint8)
    z = encode_all(tiny_flow, pixels, batch_size=16)
    assert z.shape == pixels.shape
    probes = level_probes(tiny_flow, z, pixels.flatten(1)[:, :3].double())
    assert sorted(probes) == list(range(tiny_flow.lattice.n_levels))


def test_load_if_available_skips_a_missing_shipped_model(capsys) -> None:
    assert load_if_available("msds1", "no-such-prior") is None
    assert "no msds1-no-such-prior model" in capsys.readouterr().out


@pytest.mark.parametrize("width", [50, 400])  # fewer and more features than samples
def test_ridge_probe_cv_equals_a_direct_solve(width: int) -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(300, width, generator=g, dtype=torch.float64)
    y = x[:, :3].sum(dim=1, keepdim=True) + torch.randn(300, 1, generator=g, dtype=torch.float64)
    r2, _ = ridge_probe_cv(x, y, alphas=(5.0,), seed=0)

    order = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    fit, held_out = order[:240], order[240:]  # train + validation, then test
    xs = (x - x[fit].mean(0)) / x[fit].std(0)
    ys = (y - y[fit].mean(0)) / y[fit].std(0)
    eye = torch.eye(width, dtype=torch.float64)
    w = torch.linalg.solve(xs[fit].T @ xs[fit] + 5.0 * eye, xs[fit].T @ ys[fit])
    residual = ((ys[held_out] - xs[held_out] @ w) ** 2).sum()
    total = ((ys[held_out] - ys[held_out].mean()) ** 2).sum()
    assert r2 == pytest.approx(float(1 - residual / total), abs=1e-10)


def test_level_probes_with_a_budget_use_at_most_that_many_latents(tiny_flow: RGFlow) -> None:
    g = torch.Generator().manual_seed(9)
    z = torch.randn(80, 1, 8, 8, generator=g, dtype=torch.float64)
    target = z[:, 0, 1, 1] + z[:, 0, 3, 5]  # two level-0 latents
    probes = level_probes(tiny_flow, z, target[:, None], budget=2)
    assert probes[0] > 0.95 and probes[1] < 0.5
