"""What the latents of an RG-Flow do: every analysis of the paper as a function of the flow.

All of these work on a trained :class:`~rgflow.model.RGFlow` and its lattice:

* coarse images      the stride-2^h sub-lattice after inverting levels H-1 .. h
* receptive fields   RF_l = E_{z ~ p(z)} |dG(z)/dz_l|_c, the per-pixel channel norm of the
                     generator's Jacobian column, by forward-mode differentiation
* RF strength        one scalar per latent, the sum of its RF map over pixels
* traversals         decode z with z_l swept over values, everything else fixed
* level mixing       z_mix = z_A on levels >= h, z_B below h
* mixed temperature  each level sampled at its own temperature (the paper's Appendix B)
* inpainting         optimise only the latents in the causal cone of a hole, or all of them
* latent statistics  latents grouped by level, correlations, linear probes of labels

Images are returned as floats in [0, 1] (B, C, L, L) unless a name says pixels (uint8).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .model import RGFlow
from .preprocess import dequantize, inverse_logit, logit_transform

__all__ = [
    "coarse_images",
    "latent_index",
    "receptive_fields",
    "receptive_field_strengths",
    "site_generation_cone",
    "disjoint_cone_groups",
    "rank_latents",
    "effective_rf_size",
    "traverse",
    "mix_levels",
    "mixing_series",
    "scale_split",
    "mixing_shares",
    "mixed_temperature",
    "detail_energy",
    "coarse_diversity",
    "sample_images",
    "InpaintResult",
    "inpaint",
    "latents_by_level",
    "correlation_matrix",
    "cross_correlation",
    "angle_features",
    "offdiagonal_abs_corr",
    "ridge_probe",
]

Latent = tuple[int, int, int]  # (channel, row, column) of one latent variable


# ----------------------------------------------------------------------------------------
# Generation across scales


@torch.no_grad()
def coarse_images(model: RGFlow, z: Tensor) -> list[Tensor]:
    """The coarse images x^(h) of each level during generation, top level first.

    After inverting the layers of levels H-1 .. h, the stride-2^h sub-lattice holds an
    (L / 2^h)^2 image; it is shown through the inverse logit.

    Args:
        z: latents (B, C, L, L).

    Returns:
        H tensors, for h = H-1 .. 0: images in [0, 1] of shape (B, C, L / 2^h, L / 2^h).
    """
    out = []
    for level in reversed(range(model.lattice.n_levels)):
        y, _ = model.inverse(z, down_to_level=level)
        out.append(inverse_logit(y[..., :: 2**level, :: 2**level]))

    return out


# ----------------------------------------------------------------------------------------
# Receptive fields


def latent_index(model: RGFlow, level: int | None = None) -> list[Latent]:
    """All latents (channel, row, col), or those of one level, in row-major site order."""
    levels = model.lattice.level_map()
    rows, cols = np.nonzero(levels == level) if level is not None else np.nonzero(levels >= 0)
    channels = range(model.config.channels)

    return [(c, int(i), int(j)) for i, j in zip(rows, cols) for c in channels]


@contextlib.contextmanager
def plain_path(model: RGFlow) -> Iterator[None]:
    """Run the couplings on their plain path inside the block (forward-mode AD needs it).

    The fast path's fused autograd nodes define no forward-mode derivative; the plain path is
    the same function, built from differentiable torch operations.
    """
    couplings = [m for m in model.modules() if hasattr(m, "fast")]
    saved = [m.fast for m in couplings]
    for m in couplings:
        m.fast = False
    try:
        yield
    finally:
        for m, flag in zip(couplings, saved):
            m.fast = flag


def _generator_in_pixels(model: RGFlow):
    def g(z: Tensor) -> Tensor:
        return inverse_logit(model.inverse(z)[0])

    return g


def _prior_samples(model: RGFlow, n: int, temperature: float, seed: int) -> Tensor:
    g = torch.Generator(device=model.level_map.device).manual_seed(seed)

    return model.sample_latents(n, temperature, generator=g)


@torch.no_grad()  # forward-mode AD still runs; no backward graph is kept
def _jvp_columns(model: RGFlow, z: Tensor, tangents: Tensor, chunk: int) -> Tensor:
    """|dG(z)/dz . t|_c for every sample and tangent.

    Args:
        z: (N, C, L, L) points.
        tangents: (K, C, L, L) directions.

    Returns:
        (K, N, L, L): the per-pixel L2 norm over colour channels of each directional
        derivative of the generator (pixel space) at each point.
    """
    g = _generator_in_pixels(model)
    n, k = len(z), len(tangents)
    out = []
    per_call = max(1, chunk // n)
    for start in range(0, k, per_call):
        t = tangents[start : start + per_call]  # (k', C, L, L)
        zz = z[None].expand(len(t), *z.shape).reshape(-1, *z.shape[1:])  # (k' N, C, L, L)
        tt = t[:, None].expand(len(t), n, *t.shape[1:]).reshape(-1, *t.shape[1:])
        with plain_path(model):
            _, dx = torch.func.jvp(g, (zz,), (tt,))
        out.append(dx.norm(dim=1).view(len(t), n, *dx.shape[2:]))

    return torch.cat(out)


def receptive_fields(
    model: RGFlow,
    latents: Sequence[Latent],
    n_samples: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 256,
) -> Tensor:
    """RF_l = E_{z ~ p_T(z)} |dx/dz_l|_c for each listed latent, in pixel space.

    Args:
        latents: (channel, row, col) of each latent.
        n_samples: prior samples for the expectation.
        temperature: of the prior samples.
        seed: seeds the samples.
        chunk: samples x latents per forward-mode pass (memory).

    Returns:
        (n_latents, L, L) heat maps (mean over samples of the channel norm).
    """
    model.eval()
    c, size = model.config.channels, model.config.image_size
    z = _prior_samples(model, n_samples, temperature, seed)
    tangents = z.new_zeros(len(latents), c, size, size)
    for k, (ch, i, j) in enumerate(latents):
        tangents[k, ch, i, j] = 1.0

    return _jvp_columns(model, z, tangents, chunk).mean(dim=1)


def site_generation_cone(model: RGFlow, i: int, j: int) -> np.ndarray:
    """Boolean (L, L): the pixels that the latent site (i, j) reaches in generation."""
    one = np.zeros(model.lattice.level_map().shape, dtype=bool)
    one[i, j] = True

    return model.lattice.generation_cone(one)


def disjoint_cone_groups(model: RGFlow, level: int | None = None) -> list[list[tuple[int, int]]]:
    """Partition the latent sites (of one level, or of all) into groups whose generation
    cones do not overlap.

    One forward-mode pass with the sum of a group's one-hot tangents then gives every member's
    Jacobian column exactly, each confined to its own cone (a "compressed Jacobian"). Greedy,
    coarse levels first, row-major within a level.
    """
    levels = model.lattice.level_map()
    chosen = levels >= 0 if level is None else levels == level
    sites = sorted(zip(*np.nonzero(chosen)), key=lambda s: -levels[s])
    groups: list[list[tuple[int, int]]] = []
    used: list[np.ndarray] = []
    for i, j in sites:
        cone = site_generation_cone(model, int(i), int(j))
        for group, mask in zip(groups, used):
            if not (mask & cone).any():
                group.append((int(i), int(j)))
                mask |= cone
                break
        else:
            groups.append([(int(i), int(j))])
            used.append(cone.copy())

    return groups


@dataclass
class StrengthResult:
    """Receptive fields and strengths of every latent (see :func:`receptive_field_strengths`)."""

    strength: Tensor  # (C, L, L): one scalar per latent
    maps: Tensor  # (C, L, L, L, L): RF map of each latent
    levels: np.ndarray  # (L, L) level of each site

    def by_level(self) -> dict[int, Tensor]:
        """Strengths grouped by level: level -> (n_latents,)."""
        lv = torch.as_tensor(self.levels.copy())

        return {h: self.strength[:, lv == h].reshape(-1) for h in range(int(lv.max()) + 1)}


def receptive_field_strengths(
    model: RGFlow,
    n_samples: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 256,
) -> StrengthResult:
    """RF maps and strengths (sum of the map over pixels) of every latent of the model.

    Uses :func:`disjoint_cone_groups`: latents whose cones are disjoint share one probe, so
    the cost is (number of groups) x C forward-mode passes instead of C L^2. Exact, because a
    pixel outside a latent's generation cone does not depend on it.

    Returns:
        A :class:`StrengthResult`.
    """
    model.eval()
    lat = model.lattice
    c, size = model.config.channels, model.config.image_size
    z = _prior_samples(model, n_samples, temperature, seed)
    groups = disjoint_cone_groups(model)

    tangents = z.new_zeros(len(groups) * c, c, size, size)
    for g, group in enumerate(groups):
        for ch in range(c):
            for i, j in group:
                tangents[g * c + ch, ch, i, j] = 1.0
    rf = _jvp_columns(model, z, tangents, chunk).mean(dim=1)  # (groups * C, L, L)

    maps = z.new_zeros(c, size, size, size, size)
    for g, group in enumerate(groups):
        for i, j in group:
            one = np.zeros((size, size), dtype=bool)
            one[i, j] = True
            cone = torch.as_tensor(lat.generation_cone(one), device=rf.device)
            for ch in range(c):
                maps[ch, i, j] = rf[g * c + ch] * cone
    strength = maps.flatten(3).sum(dim=3)

    return StrengthResult(strength=strength.cpu(), maps=maps.cpu(), levels=lat.level_map())


def rank_latents(result: StrengthResult, level: int, top: int | None = None) -> list[Latent]:
    """Latents of one level sorted by RF strength, strongest first."""
    levels = result.levels
    c = result.strength.shape[0]
    items = [
        (float(result.strength[ch, i, j]), (ch, int(i), int(j)))
        for i, j in zip(*np.nonzero(levels == level))
        for ch in range(c)
    ]
    items.sort(key=lambda t: -t[0])
    ranked = [latent for _, latent in items]

    return ranked[:top] if top else ranked


def effective_rf_size(rf: Tensor, mass: float = 0.9) -> Tensor:
    """Side of the smallest square (periodic) around the peak holding ``mass`` of an RF map.

    Args:
        rf: (..., L, L) non-negative maps.

    Returns:
        (...) sizes in pixels (1 .. L).
    """
    size = rf.shape[-1]
    flat = rf.reshape(-1, size, size)
    out = torch.empty(len(flat))
    for n, m in enumerate(flat):
        total = m.sum()
        if total <= 0:
            out[n] = 0
            continue
        peak = int(m.argmax())
        pi, pj = divmod(peak, size)
        rolled = torch.roll(m, shifts=(size // 2 - pi, size // 2 - pj), dims=(0, 1))
        for half in range(size // 2 + 1):
            lo, hi = size // 2 - half, size // 2 + half + 1
            if rolled[max(lo, 0) : hi, max(lo, 0) : hi].sum() >= mass * total:
                out[n] = min(2 * half + 1, size)
                break
        else:
            out[n] = size

    return out.view(rf.shape[:-2])


# ----------------------------------------------------------------------------------------
# Traversals, mixing, temperatures


@torch.no_grad()
def traverse(model: RGFlow, z: Tensor, latent: Latent, values: Sequence[float]) -> Tensor:
    """Decode z with one latent set to each value.

    Args:
        z: (B, C, L, L) base latents.
        latent: (channel, row, col).
        values: the values to give it.

    Returns:
        Images in [0, 1] of shape (len(values), B, C, L, L).
    """
    ch, i, j = latent
    frames = []
    for v in values:
        zz = z.clone()
        zz[:, ch, i, j] = v
        frames.append(model.decode_float(zz))

    return torch.stack(frames)


def level_mask(model: RGFlow, cut: int) -> Tensor:
    """Boolean (L, L): the sites of levels >= cut."""
    return model.level_map >= cut


@torch.no_grad()
def mix_levels(model: RGFlow, z_a: Tensor, z_b: Tensor, cut: int) -> Tensor:
    """z_mix = z_A on levels >= cut and z_B below it; cut = 0 gives A, cut = H gives B."""
    keep_a = level_mask(model, cut)

    return torch.where(keep_a, z_a, z_b)


@torch.no_grad()
def mixing_series(model: RGFlow, z_a: Tensor, z_b: Tensor) -> Tensor:
    """Decoded mixes for every cut h = 0 .. H: images (H + 1, B, C, L, L) in [0, 1]."""
    cuts = range(model.lattice.n_levels + 1)

    return torch.stack([model.decode_float(mix_levels(model, z_a, z_b, h)) for h in cuts])


def scale_split(images: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Split images (B, C, L, L) into coarse structure and detail at one scale.

    coarse = the images averaged over factor x factor tiles, shape (B, C, L/f, L/f);
    detail = images - coarse upsampled back to (B, C, L, L) (nearest), what the tiles hide.
    """
    coarse = torch.nn.functional.avg_pool2d(images, factor)  # (B, C, L/f, L/f)
    up = coarse.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)

    return coarse, images - up  # (B, C, L/f, L/f), (B, C, L, L)


def _share(mix: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per image: d(mix, b) / (d(mix, a) + d(mix, b)) with d the mean squared distance.

    1 means mix is a, 0 means mix is b, 0.5 means halfway.
    """
    d_a = (mix - a).pow(2).flatten(1).mean(1)
    d_b = (mix - b).pow(2).flatten(1).mean(1)

    return d_b / (d_a + d_b).clamp_min(1e-12)


def mixing_shares(series: Tensor, factor: int | None = None) -> tuple[Tensor, Tensor]:
    """How much of each source a level mix keeps, for every cut.

    series: images (H + 1, B, C, L, L) from :func:`mixing_series`, where cut 0 is image A and
    cut H is image B. At cut h the mix holds A's latents on levels >= h, whose sites form the
    stride-2^h sub-lattice, so by default the scale that splits coarse from detail is
    f = 2^h tiles (``factor`` fixes one f for every cut instead). The coarse share of A is
    ``_share`` of the f x f tile means and the detail share of B is ``1 - _share`` of the
    residual detail. Returns two (H + 1,) tensors averaged over the batch.
    """
    a, b = series[0], series[-1]
    size = a.shape[-1]
    coarse_share, detail_share = [], []
    for cut, mix in enumerate(series):
        f = factor if factor is not None else min(2 ** max(cut, 1), size)
        coarse_a, detail_a = scale_split(a, f)
        coarse_b, detail_b = scale_split(b, f)
        coarse, detail = scale_split(mix, f)
        coarse_share.append(_share(coarse, coarse_a, coarse_b).mean())
        detail_share.append(1 - _share(detail, detail_a, detail_b).mean())

    return torch.stack(coarse_share), torch.stack(detail_share)


def detail_energy(images: Tensor) -> Tensor:
    """Mean squared difference of neighbouring pixels per image, (B, C, L, L) -> (B,).

    A high-frequency energy: large for noisy or finely textured images, small for smooth ones.
    """
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]

    return 0.5 * (dx.pow(2).flatten(1).mean(1) + dy.pow(2).flatten(1).mean(1))


def coarse_diversity(images: Tensor, factor: int) -> float:
    """Spread of the coarse structure across a batch: the mean over tiles and channels of
    the standard deviation across images of the factor x factor tile means."""
    coarse, _ = scale_split(images, factor)  # (B, C, L/f, L/f)

    return float(coarse.std(dim=0).mean())


def mixed_temperature(
    model: RGFlow, high: float = 0.8, low: float = 0.2, cutoff: int = 1
) -> tuple[float, ...]:
    """Per-level temperatures of Appendix B: T_high on levels >= lambda, T_low below."""
    return tuple(high if h >= cutoff else low for h in range(model.lattice.n_levels))


@torch.no_grad()
def sample_images(
    model: RGFlow, n: int, temperature: float | Sequence[float] = 1.0, seed: int = 0
) -> Tensor:
    """n samples as images in [0, 1] (n, C, L, L), one temperature or one per level."""
    g = torch.Generator(device=model.level_map.device).manual_seed(seed)

    return model.decode_float(model.sample_latents(n, temperature, generator=g))


# ----------------------------------------------------------------------------------------
# Inpainting


@dataclass
class InpaintResult:
    """Outcome of :func:`inpaint`."""

    images: Tensor  # (B, C, L, L) in [0, 1], observed pixels pasted back
    latents_touched: int  # variables optimised per image
    sites_touched: int
    seconds: float
    psnr_hole: Tensor  # (B,) against the true image, in the hole only
    history: list[float]


def inpaint(
    model: RGFlow,
    pixels: Tensor,
    hole: np.ndarray | Tensor,
    method: str = "cone",
    steps: int = 200,
    lr: float = 0.05,
    weight: float = 100.0,
    init: str = "prior-mean",
) -> InpaintResult:
    """Fill a hole by maximising log p(y) with the observed pixels held in place.

    Minimises  -log p(y(z)) / D + weight * mean_{observed} (y(z) - y_obs)^2  over
    z_cone (``method="cone"``: the latents the hole's pixels depend on, found from the
    lattice) or over all of z (``"all"``), from the encoding of the image with the hole's
    pixels replaced by grey.

    Args:
        pixels: uint8 (B, C, L, L), the true images (the hole's content is used only for
            the PSNR).
        hole: boolean (L, L), True where pixels are missing.
        method: ``"cone"`` or ``"all"``.
        steps, lr: Adam iterations and step size.
        weight: strength of the observation penalty (logit space).
        init: ``"prior-mean"`` (cone latents start at 0) or ``"encode"`` (from the grey fill).

    Returns:
        An :class:`InpaintResult`.
    """
    if method not in ("cone", "all"):
        raise ValueError(f"method must be 'cone' or 'all', got {method!r}.")
    hole = torch.as_tensor(np.asarray(hole), dtype=torch.bool, device=model.level_map.device)
    size = model.config.image_size
    if hole.shape != (size, size) or not hole.any():
        raise ValueError(f"hole must be a non-empty boolean ({size}, {size}) mask.")
    model.eval()
    started = time.perf_counter()

    # 1. observed image in logit space, hole filled with grey, and its latents
    grey = pixels.clone()
    grey[..., hole] = 128
    x_obs = dequantize(grey, noise=False, dtype=model.prior.scale.dtype).to(hole.device)
    y_obs, _ = logit_transform(x_obs)
    with torch.no_grad():
        z0 = model(y_obs)[0]

    # 2. which latents are free
    if method == "cone":
        sites = torch.as_tensor(
            model.lattice.latents_of_region(hole.cpu().numpy()), device=hole.device
        )
    else:
        sites = torch.ones_like(hole)
    free = sites[None, None].expand_as(z0)
    if init == "prior-mean":
        z0 = torch.where(free, torch.zeros_like(z0), z0)
    delta = torch.zeros(
        int(free.sum() // len(z0)) * len(z0), dtype=z0.dtype, device=z0.device, requires_grad=True
    )
    with torch.no_grad():
        delta += z0[free]

    # 3. optimise
    observed = (~hole)[None, None].expand_as(y_obs)
    optimizer = torch.optim.Adam([delta], lr=lr)
    history = []
    dims = model.config.dims
    for _ in range(steps):
        z = z0.masked_scatter(free, delta)
        y, logdet_inv = model.inverse(z)
        nll = -(model.prior.log_prob(z) - logdet_inv) / dims
        fit = ((y - y_obs)[observed] ** 2).view(len(z), -1).mean(dim=1)
        loss = (nll + weight * fit).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())

    # 4. result: observed pixels pasted back, PSNR in the hole
    with torch.no_grad():
        z = z0.masked_scatter(free, delta)
        filled = model.decode_float(z)
        truth = pixels.to(filled.device).to(filled.dtype) / 255
        filled = torch.where(hole, filled, truth)
        err = ((filled - truth)[..., hole] ** 2).flatten(1).mean(dim=1)
        psnr = 10 * torch.log10(1 / err.clamp_min(1e-12))

    return InpaintResult(
        images=filled,
        latents_touched=int(sites.sum()) * model.config.channels,
        sites_touched=int(sites.sum()),
        seconds=time.perf_counter() - started,
        psnr_hole=psnr.cpu(),
        history=history,
    )


# ----------------------------------------------------------------------------------------
# Latent statistics


def latents_by_level(model: RGFlow, z: Tensor) -> dict[int, Tensor]:
    """Latents grouped by level: level -> (B, n_sites(level) * C), channel-major."""
    out = {}
    for h in range(model.lattice.n_levels):
        mask = model.level_map == h
        out[h] = z[..., mask].flatten(1)

    return out


def correlation_matrix(x: Tensor) -> Tensor:
    """Pearson correlations between the columns of x (N, K) -> (K, K)."""
    x = x.double() - x.double().mean(dim=0)
    x = x / x.norm(dim=0).clamp_min(1e-12)

    return x.T @ x


def cross_correlation(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlations between the columns of x (N, K) and of y (N, T) -> (K, T)."""
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    x = x / x.norm(dim=0).clamp_min(1e-12)
    y = y / y.norm(dim=0).clamp_min(1e-12)

    return x.T @ y


def offdiagonal_abs_corr(x: Tensor) -> float:
    """Mean |corr| over distinct pairs of columns of x (N, K): 0 for independent latents."""
    c = correlation_matrix(x).abs()
    k = len(c)

    return float((c.sum() - c.diagonal().sum()) / (k * (k - 1)))


def ridge_probe(
    features: Tensor,
    targets: Tensor,
    train_fraction: float = 0.8,
    alpha: float = 1.0,
    seed: int = 0,
) -> float:
    """Held-out R^2 of a ridge regression from features (N, K) to targets (N, T).

    Features and targets are standardised on the training part; R^2 is averaged over the
    target columns. 1 is perfect, 0 is no better than the mean.
    """
    x, y = features.double(), targets.double().reshape(len(targets), -1)
    n = len(x)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    n_train = int(train_fraction * n)
    tr, te = order[:n_train], order[n_train:]

    mx, sx = x[tr].mean(0), x[tr].std(0).clamp_min(1e-8)
    my, sy = y[tr].mean(0), y[tr].std(0).clamp_min(1e-8)
    xs, ys = (x - mx) / sx, (y - my) / sy

    k = xs.shape[1]
    a = xs[tr].T @ xs[tr] + alpha * torch.eye(k, dtype=xs.dtype)
    w = torch.linalg.solve(a, xs[tr].T @ ys[tr])
    pred = xs[te] @ w
    ss_res = ((ys[te] - pred) ** 2).sum(0)
    ss_tot = ((ys[te] - ys[te].mean(0)) ** 2).sum(0).clamp_min(1e-12)

    return float((1 - ss_res / ss_tot).mean())


def angle_features(degrees: Tensor) -> Tensor:
    """Orientation (period 180 degrees) as (cos 2 theta, sin 2 theta), (...,) -> (..., 2)."""
    theta = degrees.double() * math.pi / 90

    return torch.stack([theta.cos(), theta.sin()], dim=-1)
