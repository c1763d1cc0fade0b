"""The bijector inside every RG block: RealNVP on the C * m * m variables of one block.

One RG layer owns one :class:`RealNVPCoupling`, shared by all of its blocks (the blocks are
stacked into the batch, like a convolution whose stride equals its kernel). A coupling has
``n_layers`` subnet layers; subnet layer k owns one s-net s_k and one t-net t_k and performs
two affine half-steps with them (authors' ``code/layers/rnvp.py``):

    y = A x + B (x exp(s) + t),   s = B s_k(A x),  t = B t_k(A x)     (condition on A, update B)
    the same with A and B swapped, using the same s_k and t_k         (condition on B, update A)

A and B are the checkerboard masks of the m x m block, repeated over channels: A = 1 where
a + b is even. log|det| of a half-step is the sum of s over the updated variables.

The s- and t-nets are residual MLPs over the whole flattened block (channel-major (c, a, b)):

    x <- (x + f_r(x)) / sqrt(2),  r = 1 .. n_resblocks,
    f_r = Swish -> Linear -> Swish -> Linear -> ... -> Linear   (widths [D, hidden * n_mlp, D])
    s_k(u) = tanh(sigma * ResNet_s(u)),   t_k(u) = sigma' * ResNet_t(u)

with a learnable per-feature Swish gain (x sigmoid(beta x), beta = 1 at init), weight-normed
linears (uniform init of variance 2.81 / fan_in, zero bias) and a per-feature output scale
sigma initialised to zero, so every coupling is the identity at initialisation. Parameter
names follow the authors' state_dict (``s_layers.{k}.res_blocks.{r}.{2j+1}.weight_g``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .fast import coupling_forward

__all__ = [
    "Swish",
    "Scale",
    "WeightNormLinear",
    "ResidualMLP",
    "RealNVPCoupling",
    "checkerboard_mask",
]

SWISH_GAIN = 2.81  # the authors' variance gain for Swish: Var(w) = 2.81 / fan_in


class Swish(nn.Module):
    """Swish with a learnable gain per feature: x * sigmoid(beta * x), beta = 1 at init."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.scale * x)


class Scale(nn.Module):
    """A per-feature multiplicative scale, initialised to zero (identity coupling at init)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation, W = g * v / ||v|| (row norms).

    Same parameters as ``torch.nn.utils.weight_norm(nn.Linear(...))`` with dim 0: ``weight_g``
    of shape (out, 1), ``weight_v`` of shape (out, in) and ``bias`` (out,), so the authors'
    state_dict keys load unchanged.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = math.sqrt(SWISH_GAIN * 3 / in_features)  # U(-b, b) has variance b^2 / 3
        v = torch.empty(out_features, in_features).uniform_(-bound, bound)

        self.weight_g = nn.Parameter(v.norm(dim=1, keepdim=True))
        self.weight_v = nn.Parameter(v)
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def weight(self) -> Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        out, inp = self.weight_v.shape
        return f"in_features={inp}, out_features={out}"


class ResidualMLP(nn.Module):
    """The s- or t-net: residual MLP blocks, a zero-initialised Scale, optionally a tanh.

    Args:
        features: D = C * m * m, the flattened block.
        hidden: width of the hidden layers.
        n_mlp: hidden layers per residual block.
        n_resblocks: residual blocks.
        final_tanh: True for the s-net (bounds the log-scale to (-1, 1)).

    Shapes:
        (N, D) -> (N, D).
    """

    def __init__(
        self, features: int, hidden: int, n_mlp: int, n_resblocks: int, final_tanh: bool
    ) -> None:
        super().__init__()
        widths = [features] + [hidden] * n_mlp + [features]
        self.res_blocks = nn.ModuleList([self._residual_block(widths) for _ in range(n_resblocks)])
        self.scale = Scale(features)
        self.final_tanh = final_tanh

    @staticmethod
    def _residual_block(widths: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [Swish(fan_in), WeightNormLinear(fan_in, fan_out)]  # pre-activation

        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.res_blocks:
            x = (x + block(x)) / math.sqrt(2)
        x = self.scale(x)

        return torch.tanh(x) if self.final_tanh else x


def checkerboard_mask(channels: int, kernel: int) -> Tensor:
    """Mask A of a block, flattened channel-major: 1 where a + b is even, shape (C * m * m,)."""
    a = torch.arange(kernel)
    even = ((a[:, None] + a[None, :]) % 2 == 0).to(torch.get_default_dtype())  # (m, m)

    return even.expand(channels, kernel, kernel).reshape(-1)


class RealNVPCoupling(nn.Module):
    """The bijector of one RG layer: ``n_layers`` subnet layers of two affine half-steps.

    Args:
        channels: C.
        kernel: m, the block side.
        n_layers: subnet layers (each owns one s-net and one t-net).
        hidden, n_mlp, n_resblocks: the residual MLPs' sizes.

    Shapes:
        forward: blocks (N, C * m * m) -> (blocks (N, C * m * m), log|det| (N,)), the inference
        direction x -> z; inverse: the same shapes, the generation direction z -> x, returning
        log|det dx/dz| = -(forward log|det|).
    """

    def __init__(
        self,
        channels: int,
        kernel: int,
        n_layers: int,
        hidden: int,
        n_mlp: int,
        n_resblocks: int,
    ) -> None:
        super().__init__()
        features = channels * kernel * kernel
        self.s_layers = nn.ModuleList(
            [ResidualMLP(features, hidden, n_mlp, n_resblocks, True) for _ in range(n_layers)]
        )
        self.t_layers = nn.ModuleList(
            [ResidualMLP(features, hidden, n_mlp, n_resblocks, False) for _ in range(n_layers)]
        )
        mask = checkerboard_mask(channels, kernel)
        self.register_buffer("mask_left", mask)  # A: (a + b) even
        self.register_buffer("mask_right", 1 - mask)  # B
        self.recompute = False  # gradient checkpointing of each s/t call while training
        self.fast = True  # the same function via rgflow.fast; False: the plain path below
        self.recompute_swish = False  # fast path: keep pre-activations only, see rgflow.fast

    def _net(self, net: nn.Module, u: Tensor) -> Tensor:
        if self.recompute and self.training and torch.is_grad_enabled() and u.requires_grad:
            return checkpoint(net, u, use_reentrant=False, preserve_rng_state=False)

        return net(u)

    def _half_forward(
        self, x: Tensor, s_net: nn.Module, t_net: nn.Module, keep: Tensor, update: Tensor
    ) -> tuple[Tensor, Tensor]:
        x_keep = keep * x
        s = update * self._net(s_net, x_keep)
        t = update * self._net(t_net, x_keep)
        y = x_keep + update * (x * torch.exp(s) + t)

        return y, s.sum(dim=1)

    def _half_inverse(
        self, y: Tensor, s_net: nn.Module, t_net: nn.Module, keep: Tensor, update: Tensor
    ) -> tuple[Tensor, Tensor]:
        y_keep = keep * y
        s = update * self._net(s_net, y_keep)
        t = update * self._net(t_net, y_keep)
        x = y_keep + update * (y - t) * torch.exp(-s)

        return x, -s.sum(dim=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.fast:
            return coupling_forward(self, x)

        a, b = self.mask_left, self.mask_right
        logdet = x.new_zeros(x.shape[0])

        for s_net, t_net in zip(self.s_layers, self.t_layers):
            x, ld = self._half_forward(x, s_net, t_net, a, b)  # condition on A, update B
            logdet = logdet + ld
            x, ld = self._half_forward(x, s_net, t_net, b, a)  # condition on B, update A
            logdet = logdet + ld

        return x, logdet

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.fast:
            return coupling_forward(self, y, inverse=True)

        a, b = self.mask_left, self.mask_right
        logdet = y.new_zeros(y.shape[0])

        for s_net, t_net in zip(reversed(self.s_layers), reversed(self.t_layers)):
            y, ld = self._half_inverse(y, s_net, t_net, b, a)
            logdet = logdet + ld
            y, ld = self._half_inverse(y, s_net, t_net, a, b)
            logdet = logdet + ld

        return y, logdet
