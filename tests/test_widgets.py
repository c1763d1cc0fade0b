"""The widget panels, headless: a value change fires the update and redraws what the model says.

Every panel is driven the way a frontend drives it (setting a widget's ``value``, clicking a
button) and its image array is compared with a direct decode of the latents it should show.
The model is a small random flow (no trained weights needed): its couplings are perturbed
so that decodes depend on every latent.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import randomize_

pytest.importorskip("ipywidgets")

from rgflow.explain import (  # noqa: E402
    StrengthResult,
    inpaint,
    mix_levels,
    receptive_field_strengths,
)
from rgflow.model import RGFlow, RGFlowConfig  # noqa: E402
from rgflow.widgets import (  # noqa: E402
    HOLE_COLOUR,
    InpaintPanel,
    LatentExplorer,
    LevelFields,
    MixingPanel,
    level_receptive_fields,
    to_png,
)


@pytest.fixture(scope="module")
def flow() -> RGFlow:
    """L = 16, m = 4, 3 channels: three levels, a few thousand parameters, random couplings."""
    torch.manual_seed(0)
    config = RGFlowConfig(
        image_size=16, channels=3, kernel=4, n_layers=1, n_resblocks=1, n_mlp=1, n_hidden=16
    )

    return randomize_(RGFlow(config), std=0.3, seed=1).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)

    return torch.randint(0, 256, (4, 3, 16, 16), generator=g, dtype=torch.uint8)


def decoded(model: RGFlow, z: torch.Tensor) -> np.ndarray:
    """The direct decode the panels are checked against, as uint8 (H, W, C)."""
    with torch.no_grad():
        return model.decode(z)[0].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------------------
# Receptive fields of a level


@pytest.fixture(scope="module")
def exact(flow: RGFlow) -> StrengthResult:
    """Every latent's receptive field by forward-mode differentiation (explain's, exact)."""
    return receptive_field_strengths(flow, n_samples=2, seed=3)


def test_level_fields_match_the_exact_forward_mode_fields(
    flow: RGFlow, exact: StrengthResult
) -> None:
    for level in range(flow.lattice.n_levels):
        mine = level_receptive_fields(flow, level, n_samples=2, seed=3)
        theirs = LevelFields.from_strengths(exact, level)
        assert sorted(mine.latents) == sorted(theirs.latents)
        assert len(mine.latents) == 3 * flow.lattice.sites_per_level()[level]
        exact_maps = dict(zip(theirs.latents, theirs.maps))
        exact_strengths = dict(zip(theirs.latents, theirs.strengths))
        for latent, rf, strength in zip(mine.latents, mine.maps, mine.strengths):
            error = (rf - exact_maps[latent]).norm() / exact_maps[latent].norm()
            assert error < 0.02, f"{latent}: finite differences off by {error:.1%}"
            assert strength == pytest.approx(float(exact_strengths[latent]), rel=0.02)
        assert torch.all(mine.strengths[:-1] >= mine.strengths[1:])  # strongest first


def test_level_fields_stay_inside_the_generation_cone(flow: RGFlow) -> None:
    fields = level_receptive_fields(flow, 0, n_samples=1)
    for (_, i, j), rf in zip(fields.latents[:5], fields.maps[:5]):
        one = np.zeros((16, 16), dtype=bool)
        one[i, j] = True
        outside = ~flow.lattice.generation_cone(one)
        assert rf.sum() > 0
        assert torch.all(rf[torch.as_tensor(outside)] == 0)


# ----------------------------------------------------------------------------------------
# The latent explorer


@pytest.fixture
def explorer(flow: RGFlow, images: torch.Tensor) -> LatentExplorer:
    return LatentExplorer(flow, images, top=4, seed=0)


def test_explorer_starts_on_the_top_level_with_the_encoded_image(
    explorer: LatentExplorer, flow: RGFlow, images: torch.Tensor
) -> None:
    top = flow.lattice.n_levels - 1
    assert explorer.level.value == top
    assert len(explorer.sliders) == 4
    assert all(flow.lattice.level_map()[i, j] == top for _, i, j in explorer.latents)
    torch.testing.assert_close(explorer.z0, flow.encode(images[:1]))
    assert np.array_equal(explorer.image, decoded(flow, explorer.z_base))
    assert explorer.image_view.value == to_png(explorer.image, explorer.scale)


def test_moving_a_slider_redraws_the_image_as_a_direct_decode(
    explorer: LatentExplorer, flow: RGFlow
) -> None:
    before = explorer.image.copy()
    explorer.sliders[2].value = 2.5

    expected = explorer.expected_latents({2: 2.5})
    assert np.array_equal(explorer.image, decoded(flow, expected))
    assert not np.array_equal(explorer.image, before)
    assert explorer.image_view.value == to_png(explorer.image, explorer.scale)
    assert explorer.last_update_ms > 0

    explorer.sliders[0].value = -1.5  # a second slider adds to the first
    expected = explorer.expected_latents({2: 2.5, 0: -1.5})
    assert np.array_equal(explorer.image, decoded(flow, expected))


def test_moving_a_slider_selects_its_latent_and_shows_its_receptive_field(
    explorer: LatentExplorer,
) -> None:
    rf_png = explorer.rf_view.value
    explorer.sliders[3].value = 1.0
    assert explorer.selected.value == 3
    fields = explorer.fields[explorer.level.value]
    np.testing.assert_array_equal(explorer.rf, fields.maps[3].numpy())
    assert explorer.rf_view.value != rf_png


def test_reset_restores_the_image_and_the_sliders(explorer: LatentExplorer, flow: RGFlow) -> None:
    base = explorer.image.copy()
    explorer.sliders[1].value = 2.0
    explorer.reset_button.click()
    assert np.array_equal(explorer.image, base)
    assert torch.equal(explorer.z, explorer.z_base)
    assert [s.value for s in explorer.sliders] == pytest.approx(
        [float(explorer.z_base[(0, *lat)]) for lat in explorer.latents], abs=1e-6
    )


def test_changing_the_level_ranks_that_levels_latents(
    explorer: LatentExplorer, flow: RGFlow
) -> None:
    explorer.level.value = 0
    assert all(flow.lattice.level_map()[i, j] == 0 for _, i, j in explorer.latents)
    strengths = explorer.fields[0].strengths
    assert torch.all(strengths[:4] >= strengths[4:].max())
    explorer.sliders[0].value = 3.0
    assert np.array_equal(explorer.image, decoded(flow, explorer.expected_latents({0: 3.0})))


def test_temperature_scales_the_base_latents(explorer: LatentExplorer, flow: RGFlow) -> None:
    explorer.temperature.value = 0.5
    torch.testing.assert_close(explorer.z_base, 0.5 * explorer.z0)
    assert np.array_equal(explorer.image, decoded(flow, 0.5 * explorer.z0))


def test_choosing_another_image_or_a_sample(
    explorer: LatentExplorer, flow: RGFlow, images: torch.Tensor
) -> None:
    explorer.picker.index.value = 2
    torch.testing.assert_close(explorer.z0, flow.encode(images[2:3]))
    assert np.array_equal(explorer.image, decoded(flow, explorer.z0))

    explorer.picker.source.value = "sample"
    g = torch.Generator().manual_seed(explorer.seed + 2)
    torch.testing.assert_close(explorer.z0, flow.sample_latents(1, generator=g))
    assert np.array_equal(explorer.image, decoded(flow, explorer.z0))


def test_explorer_takes_precomputed_strengths(
    flow: RGFlow, images: torch.Tensor, exact: StrengthResult
) -> None:
    explorer = LatentExplorer(flow, images, top=3, fields=exact)
    assert explorer.latents == LevelFields.from_strengths(exact, 2).latents[:3]
    explorer.level.value = 1  # taken from the result too, not recomputed
    torch.testing.assert_close(explorer.fields[1].maps, LevelFields.from_strengths(exact, 1).maps)


def test_explorer_displays_as_a_widget(explorer: LatentExplorer) -> None:
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_explorer_rejects_bad_arguments(flow: RGFlow, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="level must be in 0..2"):
        LatentExplorer(flow, images, level=3)
    with pytest.raises(ValueError, match="top"):
        LatentExplorer(flow, images, top=0)
    with pytest.raises(ValueError, match="index"):
        LatentExplorer(flow, images, index=4)
    with pytest.raises(ValueError, match="source"):
        LatentExplorer(flow, None, source="test image")


def test_explorer_without_images_shows_samples(flow: RGFlow) -> None:
    explorer = LatentExplorer(flow, top=2, fields=None)
    assert explorer.picker.source.options == ("sample",)
    assert np.array_equal(explorer.image, decoded(flow, explorer.z0))


# ----------------------------------------------------------------------------------------
# Mixing and inpainting


def test_mixing_cut_slider_redraws_the_level_mix(flow: RGFlow, images: torch.Tensor) -> None:
    panel = MixingPanel(flow, images, index_a=0, index_b=1, cut=1)
    z_a, z_b = flow.encode(images[:1]), flow.encode(images[1:2])
    for cut in (2, 0, 3, 1):
        panel.cut.value = cut
        assert np.array_equal(panel.image, decoded(flow, mix_levels(flow, z_a, z_b, cut)))
    panel.cut.value = 0
    assert np.array_equal(panel.image, decoded(flow, z_a))
    panel.cut.value = 3
    assert np.array_equal(panel.image, decoded(flow, z_b))

    panel.picker_b.index.value = 3
    assert np.array_equal(panel.image, decoded(flow, flow.encode(images[3:4])))


def test_inpaint_panel_moves_the_hole_and_its_cone(flow: RGFlow, images: torch.Tensor) -> None:
    panel = InpaintPanel(flow, images, index=1, row=2, col=3, height=4, width=5, steps=5)
    panel.hole["row"].value = 6
    mask = np.zeros((16, 16), dtype=bool)
    mask[6:10, 3:8] = True
    assert np.array_equal(panel.mask, mask)
    assert np.array_equal(panel.cone, flow.lattice.latents_of_region(mask))
    original = images[1].permute(1, 2, 0).numpy()
    assert np.array_equal(panel.original, original)
    assert np.all(panel.masked[mask] == HOLE_COLOUR)
    assert np.array_equal(panel.masked[~mask], original[~mask])


def test_inpaint_fill_is_the_cone_inpainting_of_the_library(
    flow: RGFlow, images: torch.Tensor
) -> None:
    panel = InpaintPanel(flow, images, index=1, row=4, col=4, height=4, width=4, steps=5)
    panel.fill_button.click()
    direct = inpaint(flow, images[1:2], panel.mask, method="cone", steps=5, lr=panel.lr)
    expected = (direct.images[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(panel.filled, expected)
    assert np.array_equal(panel.image, panel.filled)
    assert np.array_equal(panel.filled[~panel.mask], panel.original[~panel.mask])
    assert panel.result.latents_touched == 3 * int(panel.cone.sum())

    panel.hole["col"].value = 8  # moving the hole drops the fill
    assert panel.filled is None and panel.result is None


def test_inpaint_rejects_an_unknown_method(flow: RGFlow) -> None:
    with pytest.raises(ValueError, match="method"):
        InpaintPanel(flow, method="global")


def test_importing_rgflow_does_not_import_ipywidgets() -> None:
    code = "import sys, rgflow, rgflow.explain; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
