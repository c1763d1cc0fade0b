"""Interactive panels over RG-Flow's scales (ipywidgets): latent sliders, level mixing, inpainting.

Three panels, each a plain Python object that keeps its own state, shows itself when it is the
last expression of a notebook cell, and exposes what it draws as numpy arrays, so tests and
notebooks can drive it without a browser:

* :class:`LatentExplorer`  one image (an encoded test image or a prior sample), one level, and a
  slider for each of that level's strongest latents (ranked by receptive-field strength); the
  decoded image redraws as a slider moves, beside the receptive field of the selected latent.
* :class:`MixingPanel`     two images and the level cut h: z_mix = z_A on levels >= h, z_B below.
* :class:`InpaintPanel`    a rectangular hole, the latents of its causal cone, and the hole filled
  by optimising only those latents (:func:`rgflow.explain.inpaint`), beside the original.

A slider move costs one decode of one image (``torch.no_grad``): the latents of the chosen image
are encoded once and the receptive fields of a level are computed once, when the level is first
shown. Every panel records ``last_update_ms``, the time from a value change to the new image.

Images are uint8 arrays (H, W, C) in ``panel.image``; the widgets show them as PNG bytes.
This module needs ``ipywidgets`` (the ``notebooks`` extra); ``import rgflow`` does not load it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
import torch
from torch import Tensor

from .explain import (
    StrengthResult,
    disjoint_cone_groups,
    inpaint,
    mix_levels,
    site_generation_cone,
)
from .model import RGFlow

__all__ = [
    "LevelFields",
    "level_receptive_fields",
    "to_png",
    "ImagePicker",
    "LatentExplorer",
    "MixingPanel",
    "InpaintPanel",
]

Latent = tuple[int, int, int]  # (channel, row, column) of one latent variable
HOLE_COLOUR = (255, 0, 255)  # how the hole of the inpainting panel is drawn


# ----------------------------------------------------------------------------------------
# Pictures


def to_hwc(pixels: Tensor) -> np.ndarray:
    """uint8 pixels (C, H, W) -> a uint8 numpy array (H, W, C)."""
    return np.ascontiguousarray(pixels.detach().cpu().numpy().transpose(1, 2, 0))


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) with C = 1 or 3 -> uint8 (H, W, 3), grey repeated over colours."""
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def to_png(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode uint8 (H, W, C) or (H, W) as PNG bytes, upscaled ``scale`` times (nearest)."""
    from PIL import Image

    array = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    picture = Image.fromarray(np.ascontiguousarray(array))
    if scale > 1:
        picture = picture.resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)

    return out.getvalue()


def heat_map(values: np.ndarray, mark: tuple[int, int] | None = None) -> np.ndarray:
    """A non-negative map (L, L) as a uint8 RGB picture (magma), ``mark`` in cyan."""
    from matplotlib import colormaps

    top = float(values.max())
    scaled = values / top if top > 0 else np.zeros_like(values)
    rgb = (colormaps["magma"](scaled)[..., :3] * 255).round().astype(np.uint8)
    if mark is not None:
        rgb[mark] = (0, 255, 255)

    return rgb


def _image_view(scale: int, size: int) -> W.Image:
    side = f"{scale * size}px"

    return W.Image(format="png", layout=W.Layout(width=side, height=side))


def _caption(text: str) -> W.HTML:
    return W.HTML(f"<b>{text}</b>")


# ----------------------------------------------------------------------------------------
# Receptive fields of one level


@dataclass
class LevelFields:
    """Receptive fields of the latents of one level, strongest first.

    Attributes:
        level: the level h.
        latents: (channel, row, col) of each latent, sorted by strength, strongest first.
        strengths: (n,) the sum of each RF map over pixels, in the same order.
        maps: (n, L, L) RF maps E_z |dx/dz_l|_c (pixel space, channel norm).
    """

    level: int
    latents: list[Latent]
    strengths: Tensor
    maps: Tensor

    @classmethod
    def from_strengths(cls, result: StrengthResult, level: int) -> LevelFields:
        """Take one level out of a :class:`rgflow.explain.StrengthResult`."""
        sites = np.nonzero(result.levels == level)
        channels = result.strength.shape[0]
        latents = [(ch, int(i), int(j)) for i, j in zip(*sites) for ch in range(channels)]
        strengths = torch.stack([result.strength[lat] for lat in latents])
        maps = torch.stack([result.maps[lat] for lat in latents])

        return cls._sorted(level, latents, strengths, maps)

    @classmethod
    def _sorted(
        cls, level: int, latents: list[Latent], strengths: Tensor, maps: Tensor
    ) -> LevelFields:
        order = torch.argsort(strengths, descending=True, stable=True)

        return cls(level, [latents[k] for k in order], strengths[order], maps[order])


def _as_fields(
    fields: Mapping[int, LevelFields] | StrengthResult | None, n_levels: int
) -> dict[int, LevelFields]:
    """Precomputed receptive fields by level, from a mapping or a whole StrengthResult."""
    if fields is None:
        return {}
    if isinstance(fields, StrengthResult):
        return {h: LevelFields.from_strengths(fields, h) for h in range(n_levels)}

    return dict(fields)


@torch.no_grad()
def _probe_fields(model: RGFlow, z: Tensor, probes: Tensor, eps: float, chunk: int) -> Tensor:
    """|G(z + eps t) - G(z)|_c / eps for every probe t, averaged over the samples z.

    Args:
        z: (S, C, L, L) prior samples.
        probes: (P, C, L, L) directions.

    Returns:
        (P, L, L) per-pixel channel norms of the finite differences, in pixel space.
    """
    base = model.decode_float(z)  # (S, C, L, L)
    per_call = max(1, chunk // len(z))
    out = []
    for start in range(0, len(probes), per_call):
        t = probes[start : start + per_call]  # (P', C, L, L)
        moved = (z[None] + eps * t[:, None]).flatten(0, 1)  # (P' S, C, L, L)
        images = model.decode_float(moved).view(len(t), *z.shape)
        out.append(((images - base) / eps).norm(dim=2).mean(dim=1))  # (P', L, L)

    return torch.cat(out)


def level_receptive_fields(
    model: RGFlow,
    level: int,
    n_samples: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    eps: float = 1e-2,
    chunk: int = 64,
) -> LevelFields:
    """RF maps and strengths of every latent of one level, by finite differences.

    RF_l = E_{z ~ p_T(z)} |G(z + eps e_l) - G(z)|_c / eps, an estimate of the receptive field
    of :func:`rgflow.explain.receptive_fields` (forward-mode, exact) that needs only decodes,
    about four times cheaper on a CPU; with eps = 1e-2 the maps agree to 2% (typically 0.3%).
    Latents whose generation cones are disjoint share one probe; each map is cut to its cone.

    Args:
        level: the level h.
        n_samples: prior samples for the expectation (the samples of ``explain``'s seed).
        temperature: of the prior samples.
        seed: seeds the samples.
        eps: the finite-difference step in latent space.
        chunk: images per decode call (memory).

    Returns:
        A :class:`LevelFields`, strongest latent first.
    """
    if not 0 <= level < model.lattice.n_levels:
        raise ValueError(f"level must be in 0..{model.lattice.n_levels - 1}, got {level}.")
    model.eval()
    generator = torch.Generator(device=model.level_map.device).manual_seed(seed)
    z = model.sample_latents(n_samples, temperature, generator=generator)
    channels = model.config.channels
    groups = disjoint_cone_groups(model, level)

    # 1. one probe per (group, channel): ones at every site of the group
    probes = z.new_zeros(len(groups) * channels, *z.shape[1:])
    for g, group in enumerate(groups):
        rows, cols = zip(*group)
        for ch in range(channels):
            probes[g * channels + ch, ch, list(rows), list(cols)] = 1.0
    fields = _probe_fields(model, z, probes, eps, chunk)  # (groups * C, L, L)

    # 2. split each probe's map into its members' cones
    latents, maps = [], []
    for g, group in enumerate(groups):
        for i, j in group:
            cone = torch.as_tensor(site_generation_cone(model, i, j), device=fields.device)
            for ch in range(channels):
                latents.append((ch, i, j))
                maps.append(fields[g * channels + ch] * cone)
    maps = torch.stack(maps).cpu()

    return LevelFields._sorted(level, latents, maps.flatten(1).sum(dim=1), maps)


# ----------------------------------------------------------------------------------------
# Choosing an image


class ImagePicker:
    """Which image a panel shows: a test image (encoded) or a prior sample, by number.

    Args:
        model: the flow.
        images: uint8 (N, C, L, L) test images, or None (then only samples).
        source: ``"test image"`` or ``"sample"``.
        index: the test image's index, or the sample's seed offset.
        seed: added to the index to seed a sample.
        description: the label of the number box.
    """

    SOURCES = ("test image", "sample")

    def __init__(
        self,
        model: RGFlow,
        images: Tensor | None = None,
        source: str | None = None,
        index: int = 0,
        seed: int = 0,
        description: str = "image #",
    ) -> None:
        self.model = model
        self.images = images
        self.seed = seed
        self._latents: dict[tuple[str, int], Tensor] = {}
        sources = list(self.SOURCES) if images is not None else ["sample"]
        source = source or sources[0]
        if source not in sources:
            raise ValueError(f"source must be one of {sources}, got {source!r}.")
        if source == "test image" and not 0 <= index < len(images):
            raise ValueError(
                f"index must be in 0..{len(images) - 1} ({len(images)} test images), got {index}."
            )
        self.source = W.Dropdown(
            options=sources, value=source, description="source", layout=W.Layout(width="200px")
        )
        self.index = W.BoundedIntText(
            value=0, min=0, max=10**6, description=description, layout=W.Layout(width="160px")
        )
        self._bound_index()
        self.index.value = index
        self.source.observe(lambda _: self._bound_index(), names="value")
        self.widget = W.HBox([self.source, self.index])

    def _bound_index(self) -> None:
        test = self.source.value == "test image"
        self.index.max = len(self.images) - 1 if test else 10**6

    def observe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the source or the number changes."""
        self.source.observe(lambda _: callback(), names="value")
        self.index.observe(lambda _: callback(), names="value")

    @property
    def key(self) -> tuple[str, int]:
        return self.source.value, int(self.index.value)

    @torch.no_grad()
    def latents(self) -> Tensor:
        """z (1, C, L, L) of the chosen image at temperature 1, computed once per image."""
        if self.key not in self._latents:
            source, index = self.key
            if source == "test image":
                pixels = self.images[index : index + 1].to(self.model.level_map.device)
                z = self.model.encode(pixels)
            else:
                device = self.model.level_map.device
                generator = torch.Generator(device=device).manual_seed(self.seed + index)
                z = self.model.sample_latents(1, 1.0, generator=generator)
            self._latents[self.key] = z

        return self._latents[self.key]

    @torch.no_grad()
    def pixels(self) -> Tensor:
        """uint8 (1, C, L, L): the test image itself, or the decoded sample."""
        source, index = self.key
        if source == "test image":
            return self.images[index : index + 1]

        return self.model.decode(self.latents()).cpu()


# ----------------------------------------------------------------------------------------
# Shared behaviour


class _Panel:
    """What the panels share: a model, a decode that records its time, and display."""

    widget: W.Widget

    def __init__(self, model: RGFlow, scale: int) -> None:
        self.model = model.eval()
        self.scale = scale
        self.size = model.config.image_size
        self.last_update_ms = float("nan")
        self._started = 0.0

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)

    @torch.no_grad()
    def _decode(self, z: Tensor) -> np.ndarray:
        """Latents (1, C, L, L) -> uint8 (H, W, C)."""
        return to_hwc(self.model.decode(z)[0])

    def _show(self, view: W.Image, image: np.ndarray) -> None:
        view.value = to_png(to_rgb(image), self.scale)

    def _start_clock(self) -> None:
        self._started = time.perf_counter()

    def _stop_clock(self) -> float:
        self.last_update_ms = 1000 * (time.perf_counter() - self._started)

        return self.last_update_ms


# ----------------------------------------------------------------------------------------
# The latent explorer


class LatentExplorer(_Panel):
    """Sliders over the strongest latents of one level, the decoded image and an RF.

    Args:
        model: the flow.
        images: uint8 (N, C, L, L) test images to encode, or None (prior samples only).
        level: the level shown first (default: the top level, H - 1).
        top: how many of the level's latents get a slider, strongest RF first.
        temperature: the base latents are T z_0 (z_0 the image's latents); for a sample this
            is the same draw at temperature T, for a test image its latents shrunk towards
            the prior's mode.
        rf_samples: prior samples per receptive field (computed once per level).
        seed: seeds the receptive fields and offsets the sample seeds.
        value_range: each slider spans [-value_range, value_range] (widened to its value).
        scale: display magnification of the L x L image.
        fields: precomputed :class:`LevelFields` by level, or a whole
            :class:`rgflow.explain.StrengthResult` (e.g. from ``nbtools.cached_strengths``);
            levels not given are computed when first shown.
        source, index: the first image (see :class:`ImagePicker`).

    Attributes:
        image: uint8 (H, W, C), the image as drawn now; ``z`` (1, C, L, L) its latents.
        z_base: the latents with every slider at its reset value.
        latents: the (channel, row, col) of each slider; ``sliders`` the FloatSliders.
        rf: (L, L) RF map of the selected latent.
    """

    def __init__(
        self,
        model: RGFlow,
        images: Tensor | None = None,
        *,
        level: int | None = None,
        top: int = 6,
        temperature: float = 1.0,
        rf_samples: int = 1,
        seed: int = 0,
        value_range: float = 3.0,
        scale: int = 6,
        fields: Mapping[int, LevelFields] | StrengthResult | None = None,
        source: str | None = None,
        index: int = 0,
    ) -> None:
        super().__init__(model, scale)
        n_levels = model.lattice.n_levels
        level = n_levels - 1 if level is None else level
        if not 0 <= level < n_levels:
            raise ValueError(f"level must be in 0..{n_levels - 1}, got {level}.")
        if top < 1:
            raise ValueError(f"top must be a positive number of sliders, got {top}.")
        self.top, self.rf_samples, self.seed = top, rf_samples, seed
        self.value_range = value_range
        self.fields = _as_fields(fields, n_levels)
        self.latents: list[Latent] = []
        self.sliders: list[W.FloatSlider] = []
        self._quiet = False

        self._build_controls(images, level, temperature, source, index)
        self._build_views()
        self._load_image()
        self._load_level()

    # Building ---------------------------------------------------------------------------

    def _build_controls(
        self,
        images: Tensor | None,
        level: int,
        temperature: float,
        source: str | None,
        index: int,
    ) -> None:
        self.picker = ImagePicker(self.model, images, source, index, self.seed)
        options = [
            (f"{h} ({n} sites)", h)
            for h, n in reversed(list(enumerate(self.model.lattice.sites_per_level())))
        ]
        self.level = W.Dropdown(
            options=options, value=level, description="level", layout=W.Layout(width="200px")
        )
        self.temperature = W.FloatSlider(
            value=temperature,
            min=0.0,
            max=1.5,
            step=0.05,
            description="temperature",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.reset_button = W.Button(
            description="reset", icon="undo", layout=W.Layout(width="90px")
        )
        self.selected = W.Dropdown(options=[], description="RF of", layout=W.Layout(width="240px"))

        self.picker.observe(self._on_image)
        self.level.observe(lambda _: self._load_level(), names="value")
        self.temperature.observe(lambda _: self._on_temperature(), names="value")
        self.reset_button.on_click(lambda _: self.reset())
        self.selected.observe(lambda _: self._draw_rf(), names="value")

    def _build_views(self) -> None:
        self.image_view = _image_view(self.scale, self.size)
        self.rf_view = _image_view(self.scale, self.size)
        self.status = W.HTML()
        self.slider_box = W.VBox(layout=W.Layout(min_width="410px"))
        header = W.HBox([self.picker.widget, self.level, self.temperature, self.reset_button])
        image = W.VBox([_caption("decoded image"), self.image_view])
        rf = W.VBox([self.selected, self.rf_view])
        self.widget = W.VBox([header, W.HBox([self.slider_box, image, rf]), self.status])
        self.widget.add_class("rgflow-explorer")
        self.image_view.add_class("rgflow-explorer-image")

    def _make_slider(self, k: int, latent: Latent, value: float, strength: float) -> W.FloatSlider:
        ch, i, j = latent
        limit = max(self.value_range, float(np.ceil(abs(value))))
        slider = W.FloatSlider(
            value=value,
            min=-limit,
            max=limit,
            step=0.01,
            readout_format=".2f",
            description=f"#{k + 1} c{ch} ({i},{j})",
            description_allow_html=False,
            tooltip=f"RF strength {strength:.3g}",
            style={"description_width": "100px"},
            layout=W.Layout(width="400px"),
        )
        slider.add_class("rgflow-latent-slider")
        slider.observe(lambda change, k=k: self._on_slider(k, change["new"]), names="value")

        return slider

    # State changes ------------------------------------------------------------------------

    def _load_image(self) -> None:
        self.z0 = self.picker.latents()
        self.z_base = self.temperature.value * self.z0

    def _load_level(self) -> None:
        """Rank the level's latents (receptive fields once per level), rebuild the sliders."""
        h = int(self.level.value)
        if h not in self.fields:
            self.status.value = f"computing the receptive fields of level {h} ..."
            self.fields[h] = level_receptive_fields(self.model, h, self.rf_samples, seed=self.seed)
        fields = self.fields[h]
        self.latents = fields.latents[: self.top]
        values = [self._base_value(lat) for lat in self.latents]
        strengths = fields.strengths[: self.top].tolist()
        self.sliders = [
            self._make_slider(k, lat, v, s)
            for k, (lat, v, s) in enumerate(zip(self.latents, values, strengths))
        ]
        self.slider_box.children = self.sliders
        self._quiet = True
        self.selected.options = [
            (f"#{k + 1} c{c} ({i},{j})", k) for k, (c, i, j) in enumerate(self.latents)
        ]
        self.selected.value = 0
        self._quiet = False
        self._draw_rf()
        self.reset()

    def _base_value(self, latent: Latent) -> float:
        return float(self.z_base[(0, *latent)])

    def _set_sliders_quietly(self, values: Sequence[float]) -> None:
        self._quiet = True
        try:
            for slider, value in zip(self.sliders, values):
                limit = max(self.value_range, float(np.ceil(abs(value))))
                slider.min, slider.max = -limit, limit
                slider.value = value
        finally:
            self._quiet = False

    def reset(self) -> None:
        """Every slider back to the image's own value; redraw."""
        self._start_clock()
        self._set_sliders_quietly([self._base_value(lat) for lat in self.latents])
        self.z = self.z_base.clone()
        self._draw_image()

    def _on_image(self) -> None:
        self._load_image()
        self.reset()

    def _on_temperature(self) -> None:
        self.z_base = self.temperature.value * self.z0
        self.reset()

    def _on_slider(self, k: int, value: float) -> None:
        """A slider moved: set its latent, decode, and show its receptive field."""
        if self._quiet:
            return
        self._start_clock()
        self.z[(0, *self.latents[k])] = value
        self._draw_image()
        if self.selected.value != k:
            self.selected.value = k  # draws the RF

    # Drawing ------------------------------------------------------------------------------

    def _draw_image(self) -> None:
        self.image = self._decode(self.z)
        self._show(self.image_view, self.image)
        ms = self._stop_clock()
        h = self.level.value
        self.status.value = (
            f"level {h}: {len(self.latents)} of "
            f"{len(self.fields[h].latents)} latents shown; "
            f"decoded in {ms:.0f} ms"
        )

    def _draw_rf(self) -> None:
        if self._quiet or self.selected.value is None:
            return
        k = int(self.selected.value)
        self.rf = self.fields[self.level.value].maps[k].numpy()
        _, i, j = self.latents[k]
        self.rf_view.value = to_png(heat_map(self.rf, mark=(i, j)), self.scale)

    def expected_latents(self, values: Mapping[int, float]) -> Tensor:
        """z_base with slider k set to ``values[k]``: what the image should decode from."""
        z = self.z_base.clone()
        for k, value in values.items():
            z[(0, *self.latents[k])] = value

        return z


# ----------------------------------------------------------------------------------------
# Mixing across the scales


class MixingPanel(_Panel):
    """Two images and the level cut h: z_mix = z_A on levels >= h and z_B below h.

    h = 0 shows A, h = H shows B; in between A gives the coarse structure and B the detail.

    Args:
        model: the flow.
        images: uint8 (N, C, L, L) test images, or None (prior samples only).
        index_a, index_b: the first pair (test images, or sample seeds).
        cut: the first cut (default H // 2).
        seed: offsets the sample seeds.
        scale: display magnification.

    Attributes:
        image: uint8 (H, W, C), the mix as drawn now; ``z`` its latents.
    """

    def __init__(
        self,
        model: RGFlow,
        images: Tensor | None = None,
        *,
        index_a: int = 0,
        index_b: int = 1,
        cut: int | None = None,
        seed: int = 0,
        scale: int = 5,
    ) -> None:
        super().__init__(model, scale)
        n_levels = model.lattice.n_levels
        cut = n_levels // 2 if cut is None else cut
        if not 0 <= cut <= n_levels:
            raise ValueError(f"cut must be in 0..{n_levels}, got {cut}.")
        self.picker_a = ImagePicker(model, images, index=index_a, seed=seed, description="A #")
        self.picker_b = ImagePicker(model, images, index=index_b, seed=seed, description="B #")
        self.cut = W.IntSlider(value=cut, min=0, max=n_levels, description="cut h")
        self.cut.add_class("rgflow-cut-slider")
        self.views = [_image_view(scale, self.size) for _ in range(3)]
        self.status = W.HTML()
        captions = ["A (levels >= h)", "B (levels < h)", "mix"]
        pictures = W.HBox([W.VBox([_caption(c), v]) for c, v in zip(captions, self.views)])
        self.widget = W.VBox(
            [W.HBox([self.picker_a.widget, self.picker_b.widget]), self.cut, pictures, self.status]
        )
        self.widget.add_class("rgflow-mixing")

        self.picker_a.observe(self._on_images)
        self.picker_b.observe(self._on_images)
        self.cut.observe(lambda _: self._draw_mix(), names="value")
        self._on_images()

    def _on_images(self) -> None:
        self.z_a, self.z_b = self.picker_a.latents(), self.picker_b.latents()
        self._show(self.views[0], self._decode(self.z_a))
        self._show(self.views[1], self._decode(self.z_b))
        self._draw_mix()

    def _draw_mix(self) -> None:
        self._start_clock()
        self.z = mix_levels(self.model, self.z_a, self.z_b, int(self.cut.value))
        self.image = self._decode(self.z)
        self._show(self.views[2], self.image)
        ms = self._stop_clock()
        self.status.value = f"A on levels >= {self.cut.value}, B below; decoded in {ms:.0f} ms"


# ----------------------------------------------------------------------------------------
# Inpainting from the causal cone


class InpaintPanel(_Panel):
    """Place a rectangular hole, see its causal cone, fill it, compare with the original.

    Moving the hole redraws the masked image and the cone at once (no decode); "fill" runs
    :func:`rgflow.explain.inpaint`, optimising only the latents in the cone (``method``).

    Args:
        model: the flow.
        images: uint8 (N, C, L, L) test images, or None (prior samples, decoded).
        index: the first image.
        row, col, height, width: the first hole (default: an L/4 square in the middle).
        steps, lr: Adam iterations and step size of the fill.
        method: ``"cone"`` (the paper's local update) or ``"all"`` (every latent).
        seed: offsets the sample seeds.
        scale: display magnification.

    Attributes:
        mask: boolean (L, L), True in the hole; ``cone`` boolean (L, L), the latent sites the
            hole depends on.
        original, masked: uint8 (H, W, C); ``filled`` the last fill or None.
        image: the filled image, or the masked one before a fill.
        result: the last :class:`rgflow.explain.InpaintResult`, or None.
    """

    def __init__(
        self,
        model: RGFlow,
        images: Tensor | None = None,
        *,
        index: int = 0,
        row: int | None = None,
        col: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int = 100,
        lr: float = 0.05,
        method: str = "cone",
        seed: int = 0,
        scale: int = 5,
    ) -> None:
        super().__init__(model, scale)
        if method not in ("cone", "all"):
            raise ValueError(f"method must be 'cone' or 'all', got {method!r}.")
        self.method, self.lr = method, lr
        self.result = None
        self.filled: np.ndarray | None = None
        L = self.size
        side = max(1, L // 4)
        first = {
            "row": (L - side) // 2 if row is None else row,
            "col": (L - side) // 2 if col is None else col,
            "height": side if height is None else height,
            "width": side if width is None else width,
        }
        self.picker = ImagePicker(model, images, index=index, seed=seed)
        self.hole = {
            name: W.IntSlider(
                value=value,
                min=1 if name in ("height", "width") else 0,
                max=L if name in ("height", "width") else L - 1,
                description=name,
                continuous_update=True,
            )
            for name, value in first.items()
        }
        for slider in self.hole.values():
            slider.add_class("rgflow-hole-slider")
        self.steps = W.BoundedIntText(
            value=steps, min=1, max=100_000, description="steps", layout=W.Layout(width="160px")
        )
        self.fill_button = W.Button(description="fill from the cone", icon="paint-brush")
        self._build_views()

        self.picker.observe(self._on_image)
        for slider in self.hole.values():
            slider.observe(lambda _: self._on_hole(), names="value")
        self.fill_button.on_click(lambda _: self.fill())
        self._on_image()

    def _build_views(self) -> None:
        self.views = {
            name: _image_view(self.scale, self.size)
            for name in ("masked", "cone", "filled", "original")
        }
        self.status = W.HTML()
        captions = {
            "masked": "hole",
            "cone": "latent sites in the cone",
            "filled": "filled",
            "original": "original",
        }
        pictures = W.HBox([W.VBox([_caption(captions[k]), v]) for k, v in self.views.items()])
        controls = W.VBox(
            [
                self.picker.widget,
                W.HBox(list(self.hole.values())[:2]),
                W.HBox(list(self.hole.values())[2:]),
                W.HBox([self.steps, self.fill_button]),
            ]
        )
        self.widget = W.VBox([controls, pictures, self.status])
        self.widget.add_class("rgflow-inpaint")

    def _on_image(self) -> None:
        self.pixels = self.picker.pixels()
        self.original = to_hwc(self.pixels[0])
        self._show(self.views["original"], self.original)
        self._on_hole()

    def _on_hole(self) -> None:
        """The hole moved: new mask, masked picture and cone; the old fill is dropped."""
        self._start_clock()
        self.mask = self._mask()
        self.cone = self.model.lattice.latents_of_region(self.mask)
        self.masked = to_rgb(self.original).copy()
        self.masked[self.mask] = HOLE_COLOUR
        self.filled, self.result = None, None
        self.image = self.masked
        self._show(self.views["masked"], self.masked)
        self._show(self.views["filled"], self.masked)
        self._draw_cone()
        ms = self._stop_clock()
        counts = self.model.lattice.cone_counts(self.cone)
        self.status.value = (
            f"hole: {int(self.mask.sum())} pixels; cone: "
            f"{int(self.cone.sum())} of {self.size**2} latent sites "
            f"(by level, finest first: {counts}); drawn in {ms:.0f} ms"
        )

    def _mask(self) -> np.ndarray:
        h = self.hole
        mask = np.zeros((self.size, self.size), dtype=bool)
        top, left = h["row"].value, h["col"].value
        mask[top : top + h["height"].value, left : left + h["width"].value] = True

        return mask

    def _draw_cone(self) -> None:
        from matplotlib import colormaps

        levels = self.model.lattice.level_map()
        shade = colormaps["viridis"](levels / max(1, levels.max()))[..., :3]
        picture = np.where(self.cone[..., None], shade, 0.15)
        self.views["cone"].value = to_png((picture * 255).round().astype(np.uint8), self.scale)

    def fill(self) -> np.ndarray:
        """Fill the hole (``steps`` Adam steps over the cone's latents) and show it."""
        self.fill_button.disabled = True
        self.status.value = f"filling: {self.steps.value} steps ..."
        try:
            self.result = inpaint(
                self.model,
                self.pixels.to(self.model.level_map.device),
                self.mask,
                method=self.method,
                steps=int(self.steps.value),
                lr=self.lr,
            )
        finally:
            self.fill_button.disabled = False
        filled = (self.result.images[0] * 255).round().clamp(0, 255).to(torch.uint8)
        self.filled = to_hwc(filled)
        self.image = self.filled
        self._show(self.views["filled"], self.filled)
        r = self.result
        self.status.value = (
            f"filled in {r.seconds:.1f} s: {r.latents_touched} latents "
            f"optimised ({self.method}); PSNR in the hole "
            f"{float(r.psnr_hole[0]):.1f} dB"
        )

        return self.filled
