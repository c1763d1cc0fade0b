"""The fast path of the RealNVP coupling: the same mathematics in fewer, larger operations.

The plain path (:class:`rgflow.coupling.RealNVPCoupling` with ``fast = False``) follows the
authors' structure: the s-net and the t-net of a subnet layer are two chains of small matmuls
and elementwise operations, and every weight norm is recomputed at every call. The fast path
reads the same parameters and computes the same function, y = A x + B (x exp(s) + t):

1. Once per coupling call, the weight-normed weights W = g v / ||v|| of each residual block
   are computed for the s-net and the t-net together, paired on a leading axis of size 2.
2. The s-net and the t-net run together: each linear is one batched matmul on (2, N, width).
3. A residual block is one autograd node (:class:`ResidualBlock`) with a hand-written
   backward. Its elementwise work (Swish, Swish') runs on tiles of rows small enough to stay
   in the cache between the matmul that produces a tile and the one that consumes it; the
   matmuls that sum over rows (dL/dW) run once on all rows. sigmoid(beta z) is never
   stored: the backward recomputes it tile by tile.
4. The masks fold into the output scale: s = B tanh(sigma h) = tanh((B sigma) h) and
   t = (B sigma') h are exactly zero on A, so y = x exp(s) + t equals A x + B (x exp(s) + t)
   bit for bit (exp(0) = 1).

Mixed precision: under ``torch.autocast`` the hidden layers (matmuls and Swish) run in the
autocast dtype; the residual stream, s, t, y and the log-determinant stay in the input's
dtype (float32), so log|det| = sum(s) is accumulated in float32.

Switch between the paths with :func:`set_fast`; recompute (gradient checkpointing) with
:func:`set_recompute`. Both act on every coupling inside a module, e.g. an ``RGFlow``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from .coupling import RealNVPCoupling

__all__ = [
    "RECOMPUTE",
    "PairedBlock",
    "PairedLayer",
    "ResidualBlock",
    "compute_dtype",
    "coupling_forward",
    "paired_block",
    "paired_layers",
    "set_fast",
    "set_recompute",
]

SQRT2 = math.sqrt(2)


# ----------------------------------------------------------------------------------------
# Switches


def _couplings(module: nn.Module) -> list[nn.Module]:
    from .coupling import RealNVPCoupling

    return [m for m in module.modules() if isinstance(m, RealNVPCoupling)]


def set_fast(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Use the fast (True) or the plain (False) path in every coupling of ``module``."""
    for coupling in _couplings(module):
        coupling.fast = enabled

    return module


RECOMPUTE = ("none", "swish", "all")


def set_recompute(module: nn.Module, mode: str | bool = "all") -> nn.Module:
    """What every coupling of ``module`` recomputes in the backward pass while training.

    ``"none"`` (or False): keep the pre-activations z_j and activations a_j. ``"swish"``:
    the fast path keeps only the pre-activations and recomputes a_j = Swish(z_j) tile by
    tile (half the activation memory, elementwise work only; the plain path ignores it).
    ``"all"`` (or True): gradient checkpointing of each s/t evaluation, both paths (least
    memory, ~1.33x the matmuls).
    """
    mode = {True: "all", False: "none"}.get(mode, mode) if isinstance(mode, bool) else mode
    if mode not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {RECOMPUTE} or a bool, got {mode!r}.")
    for coupling in _couplings(module):
        coupling.recompute = mode == "all"
        coupling.recompute_swish = mode == "swish"

    return module


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype of the hidden layers: the autocast dtype for float32 x under autocast."""
    device = x.device.type
    if x.dtype == torch.float32 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)

    return x.dtype


# ----------------------------------------------------------------------------------------
# Paired (s-net, t-net) parameters


@dataclass(frozen=True)
class PairedBlock:
    """One residual block of the s-net and the t-net of a subnet layer, paired on axis 0.

    For the J linears of a block (widths w_0 = D, w_1 .. w_{J-1} = hidden, w_J = D):
    ``betas[j]`` (2, 1, w_j) are the Swish gains, ``weights[j]`` (2, w_{j+1}, w_j) the
    weight-normed weights and ``biases[j]`` (2, 1, w_{j+1}) the biases.
    """

    betas: tuple[Tensor, ...]
    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]


@dataclass(frozen=True)
class PairedLayer:
    """One subnet layer k: its residual blocks and output scales (sigma, sigma') (2, 1, D)."""

    blocks: tuple[PairedBlock, ...]
    scale: Tensor


def _pair(tensors: Sequence[Tensor]) -> Tensor:
    """The (s-net, t-net) values of one parameter, stacked on a new leading axis of size 2."""
    return torch.stack(tuple(tensors))


def paired_block(
    s_block: nn.Sequential, t_block: nn.Sequential, dtype: torch.dtype
) -> PairedBlock:
    """One residual block of the s- and t-net as a :class:`PairedBlock`.

    W = g v / ||v|| (row norms) for both nets at once; weights and biases are cast to
    ``dtype`` (the matmul dtype), the Swish gains keep theirs. Pairs are stacked block by
    block: tensors of a few MB are recycled by the allocator, while one stack of every
    block's weights (tens of MB) would be fresh, page-faulted memory at every call.
    """
    betas, weights, biases = [], [], []
    for j in range(len(s_block) // 2):  # a block is (Swish, Linear) * J
        swish, linear = (s_block[2 * j], t_block[2 * j]), (s_block[2 * j + 1], t_block[2 * j + 1])
        v = _pair([m.weight_v for m in linear])  # (2, out, in)
        g = _pair([m.weight_g for m in linear])  # (2, out, 1)
        weights.append((v * (g / v.norm(dim=2, keepdim=True))).to(dtype))  # W = g v / ||v||
        biases.append(_pair([m.bias for m in linear]).unsqueeze(1).to(dtype))  # (2, 1, out)
        betas.append(_pair([m.scale for m in swish]).unsqueeze(1))  # (2, 1, in)

    return PairedBlock(tuple(betas), tuple(weights), tuple(biases))


def paired_layers(coupling: RealNVPCoupling, dtype: torch.dtype) -> list[PairedLayer]:
    """The coupling's parameters as one :class:`PairedLayer` per subnet layer."""
    layers = []
    for s_net, t_net in zip(coupling.s_layers, coupling.t_layers):
        blocks = tuple(
            paired_block(s_block, t_block, dtype)
            for s_block, t_block in zip(s_net.res_blocks, t_net.res_blocks)
        )
        scale = _pair([s_net.scale.scale, t_net.scale.scale]).unsqueeze(1)  # (2, 1, D)
        layers.append(PairedLayer(blocks, scale))

    return layers


# ----------------------------------------------------------------------------------------
# One residual block of the s- and t-nets, tiled over rows, with a hand-written backward

CHUNK_BYTES = 4 << 20  # rows per tile: about this many bytes of a (2, rows, widest) tensor


def _row_tiles(rows: int, widest: int, dtype: torch.dtype) -> list[slice]:
    """Consecutive row ranges whose (2, rows, widest) activations fit in ``CHUNK_BYTES``.

    The elementwise work of a tile (Swish and its derivative) runs while the tile is still
    in the cache that the matmul producing it left it in; a whole (2, N, 512) tensor is not.
    """
    size = max(1, CHUNK_BYTES // (2 * widest * torch.finfo(dtype).bits // 8))

    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def _swish(z: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """sig = sigmoid(beta z) and a = z sig, in z's dtype: z (2, n, w) or (n, w), beta (2, 1, w)."""
    sig = torch.mul(z, beta.to(z.dtype)).sigmoid_()  # (2, n, w)

    return sig, sig * z


def _swish_backward(grad: Tensor, z: Tensor, sig: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of a = z sig, sig = sigmoid(beta z), with respect to z and beta.

    da/dz = sig + beta m / grad,  da/dbeta = z m / grad,  with m = grad z sig (1 - sig).

    Shapes: grad (2, n, w) (overwritten), z (2, n, w) or (n, w), sig (2, n, w), beta
    (2, 1, w) -> (2, n, w), (2, 1, w) in beta's dtype.
    """
    m = torch.ops.aten.sigmoid_backward(grad * z, sig)  # grad z sig (1 - sig), one pass
    grad_z = grad.mul_(sig).addcmul_(m, beta.to(m.dtype))  # grad sig + beta m
    grad_beta = m.mul_(z).sum(dim=1, keepdim=True, dtype=beta.dtype)  # (2, 1, w)

    return grad_z, grad_beta


def _unpack(params: Sequence[Tensor]) -> tuple[Sequence[Tensor], ...]:
    """(betas, weights, biases) from the flat parameter list of a block."""
    n = len(params) // 3

    return params[:n], params[n : 2 * n], params[2 * n :]


def residual_block(x: Tensor, *params: Tensor) -> Tensor:
    """The residual block without a graph (inference): same function as ResidualBlock.

    Each row tile runs through all J linears before the next tile starts, so the hidden
    activations never leave the cache. Shapes and dtypes as in :class:`ResidualBlock`.
    """
    betas, weights, biases = _unpack(params)
    dtype = weights[0].dtype
    out = x.new_empty(2, *x.shape[-2:])  # (2, N, D)
    for tile in _row_tiles(x.shape[-2], max(w.shape[1] for w in weights), dtype):
        z = x[..., tile, :]  # (2, n, D) or (n, D)
        for beta, weight, bias in zip(betas, weights, biases):
            a = _swish(z.to(x.dtype), beta)[1].to(dtype)  # (2, n, w_j)
            z = torch.baddbmm(bias, a, weight.transpose(1, 2))  # (2, n, w_{j+1})
        torch.add(x[..., tile, :], z, out=out[:, tile]).div_(SQRT2)

    return out


class ResidualBlock(torch.autograd.Function):
    """x -> (x + f(x)) / sqrt(2) for the s- and t-net together, f = (Swish -> Linear) * J.

    With z_0 = x:  a_j = z_j sigmoid(beta_j z_j),  z_{j+1} = a_j W_j^T + b_j  (j = 0 .. J-1).

    Shapes: x (N, D) for the first block (both nets see the same input) or (2, N, D); the
    output is (2, N, D).

    Dtypes: the matmuls run in the weights' dtype (bfloat16 under autocast), everything else
    in x's dtype: the Swish and its derivative, the residual stream and dL/dbeta. Only the
    matmul operands a_j, dL/dz_{j+1} and results z_{j+1}, dL/da_j are rounded to bfloat16.

    The rows are processed in tiles (:func:`_row_tiles`) for every elementwise operation,
    while the matmuls that reduce over rows (dL/dW_j = dL/dz_{j+1}^T a_j) run once on all
    N rows. Saved for the backward: x, the pre-activations z_1 .. z_{J-1} and, unless
    ``lean``, the activations a_0 .. a_{J-1}; sigmoid(beta z) is recomputed tile by tile
    in the backward (cheaper than writing and reading it back). With ``lean`` the a_j are
    recomputed too (about half the memory, no extra matmul).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, lean: bool, *params: Tensor) -> Tensor:
        betas, weights, biases = _unpack(params)
        dtype, rows, n = weights[0].dtype, x.shape[-2], len(weights)
        widths = [w.shape[2] for w in weights]  # w_0 .. w_{J-1}, the inputs of the linears
        hidden = [x.new_empty(2, rows, w, dtype=dtype) for w in widths[1:]]  # z_1 .. z_{J-1}
        acts = [] if lean else [x.new_empty(2, rows, w, dtype=dtype) for w in widths]
        out = x.new_empty(2, *x.shape[-2:])  # (2, N, D)

        for tile in _row_tiles(rows, max(w.shape[1] for w in weights), dtype):
            z = x[..., tile, :]  # (2, n, D) or (n, D)
            for j in range(n):
                z = z.to(x.dtype)
                sig = torch.mul(z, betas[j].to(z.dtype)).sigmoid_()  # (2, n, w_j)
                a = torch.mul(sig, z, out=acts[j][:, tile]) if acts else sig.mul_(z)
                w_t = weights[j].transpose(1, 2)
                if j < n - 1:
                    z = torch.baddbmm(biases[j], a.to(dtype), w_t, out=hidden[j][:, tile])
                else:
                    z = torch.baddbmm(biases[j], a.to(dtype), w_t)  # (2, n, D)
            torch.add(x[..., tile, :], z, out=out[:, tile]).div_(SQRT2)

        ctx.n, ctx.lean = n, lean
        ctx.save_for_backward(*params, x, *hidden, *acts)

        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        n, lean = ctx.n, ctx.lean
        tensors = ctx.saved_tensors  # unpack once (checkpointing allows no second unpack)
        params, x = tensors[: 3 * n], tensors[3 * n]
        hidden = tensors[3 * n + 1 : 4 * n]  # z_1 .. z_{J-1}
        acts = list(tensors[4 * n :])  # a_0 .. a_{J-1}, or none
        betas, weights, _ = _unpack(params)
        dtype, rows = weights[0].dtype, x.shape[-2]
        tiles = _row_tiles(rows, max(w.shape[1] for w in weights), dtype)

        grad_res = grad / SQRT2  # (2, N, D): the skip's gradient, and dL/dz_J
        grad_z = grad_res.to(dtype)
        grad_betas, grad_weights, grad_biases = [None] * n, [None] * n, [None] * n
        for j in reversed(range(n)):
            z_all = x if j == 0 else hidden[j - 1]  # (2, N, w_j) or (N, w_j)
            width = z_all.shape[-1]
            a_all = x.new_empty(2, rows, width, dtype=dtype) if lean else acts[j]
            grad_in = x.new_empty(2, rows, width, dtype=x.dtype if j == 0 else dtype)
            grad_beta = betas[j].new_zeros(betas[j].shape)  # (2, 1, w_j)
            for tile in tiles:
                z = z_all[..., tile, :].to(x.dtype)  # (2, n, w_j) or (n, w_j)
                sig = torch.mul(z, betas[j].to(z.dtype)).sigmoid_()  # recomputed, (2, n, w_j)
                if lean:
                    torch.mul(sig, z, out=a_all[:, tile])
                into = grad_in[:, tile] if x.dtype == dtype else None  # no cast, no copy
                grad_a = torch.bmm(grad_z[:, tile], weights[j], out=into).to(x.dtype)
                grad_a, grad_beta_tile = _swish_backward(grad_a, z, sig, betas[j])
                if into is None:
                    grad_in[:, tile] = grad_a  # dL/dz_j, rounded to the matmul dtype
                grad_beta += grad_beta_tile
            grad_weights[j] = torch.bmm(grad_z.transpose(1, 2), a_all)  # (2, w_{j+1}, w_j)
            grad_biases[j] = grad_z.sum(dim=1, keepdim=True)  # (2, 1, w_{j+1})
            grad_betas[j], grad_z = grad_beta, grad_in

        grad_x = grad_res + grad_z  # (2, N, D)
        if x.dim() == 2:
            grad_x = grad_x.sum(dim=0)  # both nets read the same x: (N, D)

        return (grad_x.to(x.dtype), None, *grad_betas, *grad_weights, *grad_biases)


def _paired_nets(u: Tensor, blocks: Sequence[PairedBlock], lean: bool) -> Tensor:
    """The s- and t-nets' residual MLPs on the same input: u (N, D) -> h (2, N, D)."""
    h = u
    for block in blocks:
        params = (*block.betas, *block.weights, *block.biases)
        if torch.is_grad_enabled():
            h = ResidualBlock.apply(h, lean, *params)
        else:
            h = residual_block(h, *params)

    return h


# ----------------------------------------------------------------------------------------
# The coupling


def _s_and_t(
    x: Tensor, layer: PairedLayer, keep: Tensor, update: Tensor, recompute: str
) -> tuple[Tensor, Tensor]:
    """s = B tanh(sigma ResNet_s(A x)), t = B sigma' ResNet_t(A x), both (N, D), 0 on A."""
    u = x * keep  # (N, D)
    lean = recompute == "swish"
    if recompute == "all":
        h = checkpoint(_paired_nets, u, layer.blocks, lean, use_reentrant=False,
                       preserve_rng_state=False)  # fmt: skip
    else:
        h = _paired_nets(u, layer.blocks, lean)  # (2, N, D)
    st = h * (layer.scale * update)  # (2, N, D), exactly zero on the kept half

    return torch.tanh(st[0]), st[1]


def coupling_forward(
    coupling: RealNVPCoupling, x: Tensor, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """The coupling (or its inverse) on blocks x (N, D) -> (N, D), log|det| (N,).

    Forward half-step:  y = x exp(s) + t,      log|det| = sum(s);
    inverse half-step:  x = (y - t) exp(-s),   log|det| = -sum(s).
    """
    dtype = compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):  # dtypes are explicit below
        return _coupling(coupling, x, dtype, inverse)


def _coupling(
    coupling: RealNVPCoupling, x: Tensor, dtype: torch.dtype, inverse: bool
) -> tuple[Tensor, Tensor]:
    a, b = coupling.mask_left, coupling.mask_right
    recompute = "none"
    if coupling.training and torch.is_grad_enabled():
        recompute = "all" if coupling.recompute else coupling.recompute_swish and "swish"
    layers = paired_layers(coupling, dtype)
    steps = [(layer, keep, update) for layer in layers for keep, update in ((a, b), (b, a))]
    logdet = x.new_zeros(x.shape[0])

    for layer, keep, update in reversed(steps) if inverse else steps:
        s, t = _s_and_t(x, layer, keep, update, recompute)
        if inverse:
            x = (x - t) * torch.exp(-s)
            logdet = logdet - s.sum(dim=1)
        else:
            x = x * torch.exp(s) + t  # = A x + B (x exp(s) + t), s = t = 0 on A
            logdet = logdet + s.sum(dim=1)

    return x, logdet
