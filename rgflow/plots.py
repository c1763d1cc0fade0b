"""Image grids, heat maps and the one ``savefig`` through which every figure is written.

Figures land in ``figures/`` (or the directory a notebook's ``out_dir`` names) under stable
names, as PNG and optionally PDF, each with a JSON sidecar of the parameters that made it.
matplotlib is imported inside the functions that draw, so importing rgflow stays light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["image_grid", "save_image_grid", "to_display", "savefig", "FIGURE_DIR"]

FIGURE_DIR = Path("figures")


def to_display(images: Tensor | np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float images (N, C, H, W) -> float (N, H, W, C) in [0, 1] for imshow."""
    x = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    x = x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)

    return np.clip(np.moveaxis(x, 1, -1), 0, 1)


def image_grid(images: Tensor | np.ndarray, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) into one uint8 picture (rows * (H + pad), ..., C or no C).

    Grey images (C = 1) come back as (H', W'); colour ones as (H', W', 3).
    """
    x = (to_display(images) * 255).round().astype(np.uint8)  # (N, H, W, C)
    n, h, w, c = x.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = np.zeros((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top : top + h, left : left + w] = x[k]

    return grid[..., 0] if c == 1 else grid


def save_image_grid(
    images: Tensor | np.ndarray, path: str | os.PathLike, nrow: int = 8, scale: int = 2
) -> Path:
    """Write an image grid as PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, nrow)
    picture = Image.fromarray(grid)
    if scale > 1:
        picture = picture.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    picture.save(path)

    return path


def savefig(
    fig: Any,
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    pdf: bool = False,
    meta: dict | None = None,
    dpi: int = 150,
) -> Path:
    """Save a matplotlib figure as ``<out_dir>/<name>.png`` (and ``.pdf``), stably named.

    Args:
        fig: the figure.
        name: a stable file stem, e.g. ``"fig4_receptive_fields"``.
        out_dir: defaults to ``figures/`` in the working directory.
        pdf: also write a PDF.
        meta: parameters that made the figure (model, seed, ...), written to
            ``<name>.json`` beside it.

    Returns:
        The PNG path.
    """
    if not name or any(sep in name for sep in "/\\") or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}.")
    out = Path(out_dir) if out_dir is not None else FIGURE_DIR
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    if pdf:
        fig.savefig(out / f"{name}.pdf", bbox_inches="tight", metadata={"CreationDate": None})
    if meta is not None:
        with open(out / f"{name}.json", "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")

    return png


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (Tensor, np.ndarray)):
        return np.asarray(value).tolist()
    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, Sequence):
        return list(value)

    return repr(value)
