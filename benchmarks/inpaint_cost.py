"""Inpainting cost against image size: the causal cone (O(log L)) vs every latent (O(L^2)).

Run by hand (not a test); about a minute on two cores:

    .venv/bin/python benchmarks/inpaint_cost.py
    .venv/bin/python benchmarks/inpaint_cost.py --sizes 32 64 128 256 --hole 8 --steps 5

For each L, an untrained RG-Flow with perturbed weights (3 channels, n_layers 2, two
residual blocks, hidden width 64) and an 8 x 8 hole in the middle of the image. One
inpainting gradient step minimises

    loss(z) = -(log p_Z(z) + log|det dz/dy|) / D + w * mean_observed (y(z) - y_obs)^2

over latents z (``rgflow.explain.inpaint``), timed with every latent free (``z-space all``)
and with only the hole's cone free (``z-space cone``). Both run the whole inverse: the cone
holds top-level latents, whose generation cone is the whole image, so in z-space the
observed pixels move too and every block must be re-evaluated.

The cone's cost advantage appears in pixel space: with the hole's pixels y_h free and the
observed pixels fixed exactly, minimise -log p(y) / D. A hole pixel reaches only the latents
of its inference cone, so

* ``y-space full``: one forward pass over the whole image, differentiated;
* ``y-space cone-local``: only the blocks that contain a site depending on the hole are
  evaluated and differentiated, layer by layer; every other block keeps its output and
  log-det from one pass at the observed image, computed before the optimisation. Only the
  cone's latents change. The loss and gradient equal the full pass's (checked in float64
  on the two smallest sizes).

Latent counts come from ``rgflow.lattice.RGLattice``: the cone of the hole
(``latents_of_region``) times C, against C L^2.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import Tensor

from rgflow.lattice import RGLattice
from rgflow.model import RGFlow, RGFlowConfig

WEIGHT = 100.0  # the observation penalty's weight w (as in rgflow.explain.inpaint)


def make_model(size: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> RGFlow:
    """An untrained flow at side L with perturbed output scales (so it is not the identity)."""
    torch.manual_seed(seed)
    config = RGFlowConfig(
        image_size=size, channels=3, n_layers=2, n_resblocks=2, n_mlp=2, n_hidden=64
    )
    model = RGFlow(config).to(dtype).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale.scale"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=dtype))

    return model


def centre_hole(size: int, side: int) -> np.ndarray:
    """Boolean (L, L): a side x side square in the middle."""
    hole = np.zeros((size, size), dtype=bool)
    start = size // 2 - side // 2
    hole[start : start + side, start : start + side] = True

    return hole


class InpaintProblem:
    """The losses of one inpainting step, evaluated fully or only inside the cone.

    Args:
        model: the flow.
        y_obs: (B, C, L, L) observed image in logit space (any values in the hole).
        hole: boolean (L, L), the missing pixels.
    """

    def __init__(self, model: RGFlow, y_obs: Tensor, hole: np.ndarray) -> None:
        self.model, self.y_obs = model, y_obs
        self.lattice: RGLattice = model.lattice
        b, c, size, _ = y_obs.shape
        self.cone = self.lattice.latents_of_region(hole).reshape(-1)  # (L^2,) bool
        self.observed = torch.as_tensor(~hole.reshape(-1))  # (L^2,)
        self.n_observed = int(self.observed.sum()) * c
        self.dims = model.config.dims

        with torch.no_grad():
            self._base_pass()

    # 1. the fixed pass at y_obs: state entering every layer, per-block log-dets
    def _base_pass(self) -> None:
        model, b, c = self.model, self.y_obs.shape[0], self.y_obs.shape[1]
        x = self.y_obs.reshape(b, c, -1)  # (B, C, L^2)
        self.states: dict[int, Tensor] = {}
        self.block_logdets: dict[int, Tensor] = {}
        logdet = x.new_zeros(b)
        for layer, coupling in enumerate(model.layers):
            self.states[layer] = x
            index = model._block_index(layer)
            blocks, ld = coupling(model._gather(x, index))
            self.block_logdets[layer] = ld.view(b, -1)  # (B, n_blocks)
            logdet = logdet + self.block_logdets[layer].sum(dim=1)
            x = model._scatter(x, index, blocks)
        self.z0, self.logdet0 = x, logdet  # (B, C, L^2), (B,)
        self.log_pz0 = model.prior.log_prob(x)

    def initial_cone_latents(self) -> Tensor:
        """The free variables: z at the cone sites, (B, C, n_cone)."""
        return self.z0[..., torch.as_tensor(self.cone)].clone()

    # 2. the loss with a full inverse pass (methods "all" and "cone, full pass")
    def full_loss(self, z: Tensor) -> Tensor:
        """z (B, C, L^2) -> mean loss."""
        b, c, size = self.y_obs.shape[0], self.y_obs.shape[1], self.lattice.image_size
        y, logdet = self.model.inverse(z.view(b, c, size, size))
        nll = -(self.model.prior.log_prob(z) - logdet) / self.dims
        residual = (y.reshape(b, c, -1) - self.y_obs.reshape(b, c, -1)) ** 2
        fit = (residual * self.observed).sum(dim=(1, 2)) / self.n_observed

        return (nll + WEIGHT * fit).mean()

    def scatter_cone(self, cone_latents: Tensor) -> Tensor:
        """The full z (B, C, L^2) with the cone sites taken from cone_latents (B, C, n)."""
        mask = torch.as_tensor(self.cone).expand_as(self.z0)

        return self.z0.masked_scatter(mask, cone_latents)

    def cone_full_loss(self, cone_latents: Tensor) -> Tensor:
        """Only the cone latents (B, C, n_cone) free, the whole inverse evaluated."""
        return self.full_loss(self.scatter_cone(cone_latents))

    # 3. pixel space: the hole's pixels are free, the observed ones fixed exactly
    def hole_values(self) -> Tensor:
        """The free variables of the pixel-space problem: y at the hole, (B, C, n_hole)."""
        return self.y_obs.flatten(2)[..., ~self.observed].clone()

    def pixel_full_loss(self, hole_values: Tensor) -> Tensor:
        """-log p(y) / D with y = y_obs outside the hole, by a full forward pass."""
        mask = (~self.observed).expand_as(self.y_obs.flatten(2))
        y = self.y_obs.flatten(2).masked_scatter(mask, hole_values).view_as(self.y_obs)

        return -(self.model.log_prob(y) / self.dims).mean()

    def pixel_local_loss(self, hole_values: Tensor) -> Tensor:
        """The same loss, evaluating only the blocks of the hole's inference cone."""
        return self.local_pass(hole_values)[0]

    def local_pass(self, hole_values: Tensor) -> tuple[Tensor, int, int]:
        """hole_values (B, C, n_hole) -> (loss, blocks evaluated, latent sites updated).

        ``values`` holds the current value of every "dirty" site (one that depends on a hole
        pixel), in the order of ``sites``; all other sites keep their fixed-pass values, so
        only the blocks that contain a dirty site are evaluated. At the end the dirty sites
        are exactly the hole's inference cone: the only latents that change.
        """
        model, b = self.model, hole_values.shape[0]
        c, m2 = model.config.channels, model.config.kernel**2
        sites = np.flatnonzero(~self.observed.numpy())  # dirty sites so far
        position = np.full(self.lattice.n_sites, -1)
        position[sites] = np.arange(len(sites))
        values = hole_values  # (B, C, n_dirty)
        logdet_change = hole_values.new_zeros(b)
        evaluated = 0

        for layer in range(len(model.layers)):
            blocks = self.lattice.block_indices(layer)  # (n_blocks, m^2) flat sites
            hit = np.flatnonzero((position[blocks] >= 0).any(axis=1))
            new = np.setdiff1d(blocks[hit].ravel(), sites)  # sites that become dirty
            if len(new):
                fixed = self.states[layer][..., torch.as_tensor(new)]  # (B, C, n_new)
                values = torch.cat([values, fixed], dim=2)
                position[new] = len(sites) + np.arange(len(new))
                sites = np.concatenate([sites, new])
            index = torch.as_tensor(position[blocks[hit]])  # (n_hit, m^2)
            x = values[..., index]  # (B, C, n_hit, m^2)
            x = x.permute(0, 2, 1, 3).reshape(-1, c * m2)  # (B * n_hit, C * m^2)
            out, ld = model.layers[layer](x)
            out = out.view(b, len(hit), c, m2).permute(0, 2, 1, 3)  # (B, C, n_hit, m^2)
            values = values.index_copy(2, index.reshape(-1), out.reshape(b, c, -1))
            base = self.block_logdets[layer][:, torch.as_tensor(hit)].sum(dim=1)
            logdet_change = logdet_change + ld.view(b, -1).sum(dim=1) - base
            evaluated += len(hit)

        prior = model.prior
        dirty = torch.as_tensor(sites)
        log_pz = self.log_pz0 - prior.log_prob(self.z0[..., dirty]) + prior.log_prob(values)
        loss = -((log_pz + self.logdet0 + logdet_change) / self.dims).mean()

        return loss, evaluated, len(sites)


def time_steps(loss_fn, variable: Tensor, steps: int) -> float:
    """Median seconds of one loss + backward + Adam step on ``variable``."""
    variable = variable.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([variable], lr=0.05)
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        start = time.perf_counter()
        loss = loss_fn(variable)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)

    return float(np.median(times[1:]))


def check_local_equals_full(size: int, hole_side: int) -> float:
    """Largest relative difference of loss and gradient, local vs full pass, in float64."""
    model = make_model(size, torch.float64)
    hole = centre_hole(size, hole_side)
    y_obs = torch.randn(2, 3, size, size, dtype=torch.float64)
    problem = InpaintProblem(model, y_obs, hole)
    free = (problem.hole_values() + 0.3).requires_grad_()

    full = problem.pixel_full_loss(free)
    (grad_full,) = torch.autograd.grad(full, free)
    local = problem.pixel_local_loss(free)
    (grad_local,) = torch.autograd.grad(local, free)

    return max(
        abs((local - full).item()) / abs(full.item()),
        ((grad_local - grad_full).abs().max() / grad_full.abs().max()).item(),
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--hole", type=int, default=8, help="side of the square hole")
    p.add_argument("--steps", type=int, default=5, help="timed steps per method (median)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    for size in args.sizes[:2]:
        err = check_local_equals_full(size, args.hole)
        print(f"L={size}: local vs full pass, max relative difference (float64) {err:.1e}")
        if err > 1e-9:
            raise AssertionError(f"the local pass differs from the full pass: {err:.1e}")

    head = (
        "| L | latents: all | latents: cone | blocks/step: full | blocks/step: cone "
        "| z-space all s/step | z-space cone s/step | y-space full s/step "
        "| y-space cone-local s/step | speed-up |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for size in args.sizes:
        model = make_model(size)
        hole = centre_hole(size, args.hole)
        y_obs = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        problem = InpaintProblem(model, y_obs, hole)
        cone0, hole0 = problem.initial_cone_latents(), problem.hole_values()
        all_blocks = sum(len(model.lattice.block_indices(i)) for i in range(len(model.layers)))
        c = model.config.channels

        t_all = time_steps(problem.full_loss, problem.z0, args.steps)
        t_cone = time_steps(problem.cone_full_loss, cone0, args.steps)
        t_full = time_steps(problem.pixel_full_loss, hole0, args.steps)
        t_local = time_steps(problem.pixel_local_loss, hole0, args.steps)
        _, evaluated, updated = problem.local_pass(hole0)
        if updated != int(problem.cone.sum()):
            raise AssertionError("the local pass updated latents outside the hole's cone")
        rows.append(
            f"| {size} | {c * size**2:,} | {c * updated:,} | {all_blocks:,} | {evaluated:,} "
            f"| {t_all:.4f} | {t_cone:.4f} | {t_full:.4f} | {t_local:.4f} "
            f"| {t_full / t_local:.1f}x |"
        )
        print(rows[-1], flush=True)
    print(
        f"\nhole {args.hole}x{args.hole} in the centre, batch 1, float32, "
        f"{torch.get_num_threads()} threads, median of {args.steps} steps\n"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
