"""Measurements the claim notebooks (07, 08, 10, 11) share, on top of :mod:`rgflow.explain`.

* load_if_available    a model by checkpoint or shipped name, or None with the reason printed
* encode_all           latents of many images, in batches
* msds_factors         the global and the per-ellipse factor of MSDS1 / MSDS2 as probe targets
* ridge_probe_cv       held-out R^2 of a ridge probe whose penalty is chosen on a validation split
* level_probes         that R^2 from each level's latents
* tail_statistics      how heavy-tailed a set of non-negative scores is (kurtosis, top share)
* sparse_probe_curve   held-out R^2 from the k latents most correlated with a target
* latents_needed       the smallest k that reaches a fraction of the best R^2
* per_image_bpd        bits/dim of every image (from rgflow.train; evaluate is its mean)
* standard_error       of a mean

Nothing here trains or changes a model; every function is deterministic given its seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checkpoints import shipped_models
from .explain import angle_features, latents_by_level
from .model import RGFlow
from .nbtools import load_flow
from .train import per_image_bpd

__all__ = [
    "load_if_available",
    "encode_all",
    "MSDS_FACTOR_NAMES",
    "msds_factors",
    "ridge_probe_cv",
    "level_probes",
    "tail_statistics",
    "ProbeCurve",
    "sparse_probe_curve",
    "latents_needed",
    "per_image_bpd",
    "standard_error",
]

MSDS_FACTOR_NAMES = {
    "msds1": {"global": "colour (shared)", "local": "orientation (per ellipse)"},
    "msds2": {"global": "orientation (shared)", "local": "colour (per ellipse)"},
}
"""What the two factors returned by :func:`msds_factors` are, per dataset."""


def load_if_available(
    dataset: str, prior: str, checkpoint: str | os.PathLike | None = None, device: str = "cpu"
) -> tuple[RGFlow, str] | None:
    """:func:`rgflow.nbtools.load_flow`, or None (saying so) when no such model is shipped.

    A notebook that compares several models shows what exists and names what it skips. A
    ``checkpoint`` that is given must load: its errors are raised, not skipped.
    """
    if checkpoint is None and f"{dataset}-{prior}" not in shipped_models():
        print(
            f"no {dataset}-{prior} model: shipped are {sorted(shipped_models()) or 'none'}; "
            f"that part is skipped (train one, or pass its checkpoint)."
        )
        return None

    return load_flow(dataset, prior, checkpoint, device)


@torch.no_grad()
def encode_all(model: RGFlow, pixels: Tensor, batch_size: int = 250) -> Tensor:
    """Latents of uint8 images (N, C, L, L) -> z (N, C, L, L) on the CPU, in batches."""
    device = model.level_map.device
    parts = [
        model.encode(pixels[k : k + batch_size].to(device)).cpu()
        for k in range(0, len(pixels), batch_size)
    ]

    return torch.cat(parts)


def msds_factors(dataset: str, labels: Tensor) -> dict[str, Tensor]:
    """The two factors of an MSDS image as regression targets.

    MSDS1 shares one colour across the image (each ellipse jitters around it) and gives every
    ellipse its own orientation; MSDS2 shares one orientation (each ellipse adds 0..45 degrees)
    and gives every ellipse its own colour. Orientations have period 180 degrees and enter as
    (cos 2 theta, sin 2 theta); the shared orientation of an MSDS2 image is the direction of
    the mean of those vectors.

    Args:
        dataset: ``"msds1"`` or ``"msds2"``.
        labels: int (N, 4, 4, 6) per-ellipse labels (x, y, angle, R, G, B).

    Returns:
        ``{"global": (N, 3 or 2), "local": (N, 16 * 2 or 16 * 3)}``, float64; the names of
        the two factors are in :data:`MSDS_FACTOR_NAMES`.
    """
    if dataset not in MSDS_FACTOR_NAMES:
        raise ValueError(f"dataset must be 'msds1' or 'msds2', got {dataset!r}.")
    if labels.dim() != 4 or labels.shape[1:] != (4, 4, 6):
        raise ValueError(f"labels must have shape (N, 4, 4, 6), got {tuple(labels.shape)}.")
    labels = labels.double()
    n = len(labels)
    colour = labels[..., 3:6] / 255  # (N, 4, 4, 3)
    direction = angle_features(labels[..., 2])  # (N, 4, 4, 2)
    if dataset == "msds1":
        return {"global": colour.mean(dim=(1, 2)), "local": direction.reshape(n, -1)}
    mean_dir = direction.mean(dim=(1, 2))  # (N, 2)

    return {
        "global": mean_dir / mean_dir.norm(dim=1, keepdim=True).clamp_min(1e-12),
        "local": colour.reshape(n, -1),
    }


def ridge_probe_cv(
    features: Tensor,
    targets: Tensor,
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0),
    fractions: tuple[float, float] = (0.6, 0.2),
    seed: int = 0,
) -> tuple[float, float]:
    """Held-out R^2 of a ridge regression whose penalty is chosen on a validation split.

    The samples are split (seeded) into train / validation / test parts in the given
    fractions (the rest is the test part). Features and targets are standardised on the
    training part; each alpha is fitted there and scored on the validation part; the best
    is refitted on train + validation and scored once on the test part. Choosing alpha
    matters when the features outnumber the samples, as the fine levels' latents do: a fixed
    small penalty then overfits.

    Args:
        features: (N, K).
        targets: (N, T) or (N,).
        alphas: candidate penalties (on standardised features).
        fractions: train and validation fractions.

    Returns:
        (R^2 on the test part averaged over the target columns, the chosen alpha).
    """
    x, y = features.double(), targets.double().reshape(len(targets), -1)
    n = len(x)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_tr, n_va = int(fractions[0] * n), int(fractions[1] * n)
    tr, va, te = order[:n_tr], order[n_tr : n_tr + n_va], order[n_tr + n_va :]
    if min(len(tr), len(va), len(te)) < 2:
        raise ValueError(f"{n} samples are too few for the split {fractions}.")

    def fit(rows: Tensor, alpha_list: Sequence[float]) -> list[tuple[Tensor, ...]]:
        """Standardise on ``rows``; ridge weights for each alpha from one eigendecomposition.

        w = (X^T X + a I)^-1 X^T Y = X^T (X X^T + a I)^-1 Y: the smaller Gram matrix is
        decomposed once, which keeps wide problems (K >> N) cheap.
        """
        mx, sx = x[rows].mean(0), x[rows].std(0).clamp_min(1e-8)
        my, sy = y[rows].mean(0), y[rows].std(0).clamp_min(1e-8)
        xs, ys = (x[rows] - mx) / sx, (y[rows] - my) / sy
        wide = xs.shape[1] > xs.shape[0]
        lam, vec = torch.linalg.eigh(xs @ xs.T if wide else xs.T @ xs)
        proj = vec.T @ ys if wide else vec.T @ (xs.T @ ys)  # (r, T)
        out = []
        for a in alpha_list:
            w = vec @ (proj / (lam.clamp_min(0) + a)[:, None])
            out.append((mx, sx, my, sy, xs.T @ w if wide else w))
        return out

    def r2(rows: Tensor, model: tuple[Tensor, ...]) -> float:
        mx, sx, my, sy, w = model
        truth = (y[rows] - my) / sy
        ss_res = ((truth - ((x[rows] - mx) / sx) @ w) ** 2).sum(0)
        ss_tot = ((truth - truth.mean(0)) ** 2).sum(0).clamp_min(1e-12)

        return float((1 - ss_res / ss_tot).mean())

    scores = [r2(va, m) for m in fit(tr, alphas)]
    alpha = alphas[max(range(len(alphas)), key=scores.__getitem__)]

    return r2(te, fit(torch.cat([tr, va]), [alpha])[0]), float(alpha)


def level_probes(
    model: RGFlow, z: Tensor, targets: Tensor, seed: int = 0, budget: int | None = None
) -> dict[int, float]:
    """Held-out R^2 of a linear probe from each level's latents.

    Args:
        z: latents (N, C, L, L) of N images.
        targets: (N, T) values to predict.
        budget: None: all latents of the level, penalty chosen on a validation split
            (:func:`ridge_probe_cv`). A number k: only the k latents of the level most
            correlated with the targets (:func:`sparse_probe_curve`), so that levels with
            many latents and levels with few compete on equal terms.

    Returns:
        level -> R^2 averaged over the target columns, levels 0 .. H-1.
    """
    by_level = latents_by_level(model, z.to(model.level_map.device))
    if budget is None:
        return {h: ridge_probe_cv(x.cpu(), targets, seed=seed)[0] for h, x in by_level.items()}

    return {
        h: sparse_probe_curve(x.cpu(), targets, (budget,), seed=seed).r2[0]
        for h, x in by_level.items()
    }


def tail_statistics(values: Tensor) -> dict[str, float]:
    """How concentrated a set of non-negative scores (e.g. RF strengths) is.

    Returns:
        ``n``, ``mean``, ``max``, ``kurtosis`` (excess: 0 for a Gaussian, 3 for a Laplace
        distribution, larger for a heavier tail) and ``top_decile_share``, the fraction of the
        total held by the largest 10% of the values (0.1 when all are equal).
    """
    v = values.detach().double().flatten()
    if len(v) < 2:
        raise ValueError(f"need at least two values, got {len(v)}.")
    centred = v - v.mean()
    var = centred.pow(2).mean()
    kurt = float(centred.pow(4).mean() / var**2 - 3) if var > 0 else 0.0
    top = v.sort(descending=True).values[: max(1, len(v) // 10)]
    total = v.sum()

    return {
        "n": len(v),
        "mean": float(v.mean()),
        "max": float(v.max()),
        "kurtosis": kurt,
        "top_decile_share": float(top.sum() / total) if total > 0 else float("nan"),
    }


@dataclass
class ProbeCurve:
    """Held-out R^2 of ridge probes on the k features most correlated with a target."""

    sizes: list[int]  # k, increasing
    r2: list[float]  # held-out R^2 (mean over target columns) with the top-k features
    order: Tensor  # (K,) feature indices, most correlated first (training part only)


def sparse_probe_curve(
    features: Tensor,
    targets: Tensor,
    sizes: Sequence[int],
    train_fraction: float = 0.8,
    alpha: float = 1.0,
    seed: int = 0,
) -> ProbeCurve:
    """How few features carry a target: R^2 from the top-k features, for each k.

    Features are ranked on the training part alone by their multiple correlation with the
    target columns, sqrt(sum_t corr(x, y_t)^2); for each k a ridge regression on the first k
    is fitted there and scored on the held-out part. A disentangled code reaches its best
    R^2 with few features.

    Args:
        features: (N, K).
        targets: (N, T) or (N,).
        sizes: the k to try (clipped to K).
        alpha: ridge penalty on standardised features.

    Returns:
        A :class:`ProbeCurve`.
    """
    x, y = features.double(), targets.double().reshape(len(targets), -1)
    n, k_all = x.shape
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(train_fraction * n)
    if not 2 <= n_train <= n - 2:
        raise ValueError(f"{n} samples are too few for a split at {train_fraction}.")
    tr, te = order[:n_train], order[n_train:]

    # 1. standardise on the training part
    mx, sx = x[tr].mean(0), x[tr].std(0).clamp_min(1e-8)
    my, sy = y[tr].mean(0), y[tr].std(0).clamp_min(1e-8)
    xs, ys = (x - mx) / sx, (y - my) / sy

    # 2. rank the features by their multiple correlation with the targets (training part)
    corr = xs[tr].T @ ys[tr] / (n_train - 1)  # (K, T)
    ranking = corr.pow(2).sum(dim=1).argsort(descending=True)

    # 3. ridge on the top k, scored on the held-out part
    ss_tot = ((ys[te] - ys[te].mean(0)) ** 2).sum(0).clamp_min(1e-12)
    kept, r2 = [], []
    for k in sorted({min(int(s), k_all) for s in sizes if s >= 1}):
        cols = ranking[:k]
        a, b = xs[tr][:, cols], xs[te][:, cols]
        w = torch.linalg.solve(a.T @ a + alpha * torch.eye(k, dtype=a.dtype), a.T @ ys[tr])
        ss_res = ((ys[te] - b @ w) ** 2).sum(0)
        kept.append(k)
        r2.append(float((1 - ss_res / ss_tot).mean()))

    return ProbeCurve(sizes=kept, r2=r2, order=ranking)


def latents_needed(curve: ProbeCurve, fraction: float = 0.9) -> int | None:
    """The smallest k whose R^2 reaches ``fraction`` of the curve's best; None if best <= 0."""
    best = max(curve.r2)
    if best <= 0:
        return None

    return next(k for k, r in zip(curve.sizes, curve.r2) if r >= fraction * best)


def standard_error(values: Tensor) -> float:
    """Standard error of the mean of a 1-d sample: std / sqrt(n)."""
    v = values.double().flatten()

    return float(v.std() / math.sqrt(len(v)))
