"""Small helpers the figure notebooks share: parameters, models by name, loud checks.

Every notebook starts with a papermill ``parameters`` cell::

    profile = "smoke"      # "smoke": two CPU cores, shipped models; "paper": the paper's run
    dataset = "msds1"      # which data the model was trained on
    prior = "laplace"      # "laplace" or "gaussian"
    checkpoint = None      # a checkpoint path or shipped model name; None: the shipped one
    device = "cpu"
    seed = 0
    out_dir = "../figures"

and then calls :func:`check_parameters` and :func:`load_flow`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_model, shipped_models
from .model import RGFlow

__all__ = [
    "Profile",
    "PROFILES",
    "check_parameters",
    "load_flow",
    "check",
    "seed_everything",
    "cached_strengths",
]


@dataclass(frozen=True)
class Profile:
    """How much work a notebook does: sample counts and optimisation lengths."""

    name: str
    rf_samples: int  # prior samples per receptive-field expectation
    strength_samples: int  # prior samples for the strength of every latent
    images: int  # test images for statistics and probes
    inpaint_steps: int
    grid: int  # samples in a figure grid


PROFILES = {
    "smoke": Profile(
        "smoke", rf_samples=16, strength_samples=2, images=1000, inpaint_steps=150, grid=16
    ),
    "paper": Profile(
        "paper", rf_samples=256, strength_samples=64, images=10000, inpaint_steps=1000, grid=16
    ),
}

PRIORS = ("laplace", "gaussian")


def check_parameters(
    profile: str,
    prior: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    dataset: str | None = None,
) -> Profile:
    """Validate a notebook's parameters; raise a ValueError that names the bad one."""
    for name, value in (("profile", profile), ("prior", prior), ("dataset", dataset)):
        if value is not None and not isinstance(value, str):
            raise ValueError(
                f"{name} must be a string, got {type(value).__name__} {value!r}; set it in the "
                f"parameters cell (or papermill -p {name} NAME)."
            )
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}.")
    if prior is not None and prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}.")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be like 'cpu' or 'cuda:0', got {device!r}.") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here.")
    if dataset is not None:
        from .data import DATASETS

        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}.")

    return PROFILES[profile]


def load_flow(
    dataset: str,
    prior: str = "laplace",
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
) -> tuple[RGFlow, str]:
    """The model a notebook shows: ``checkpoint`` if given, else the shipped one.

    Returns:
        The model (eval mode, on ``device``) and a short description of where it came from.
    """
    if checkpoint is not None:
        model = load_model(checkpoint, device=device)
        return model, str(checkpoint)
    name = f"{dataset}-{prior}"
    if name not in shipped_models():
        raise ValueError(
            f"no shipped model {name!r} (shipped: {sorted(shipped_models())}); train one with "
            f"`python -m rgflow train --data {dataset} --prior {prior} --out runs/{name}` and "
            f"pass checkpoint='runs/{name}/checkpoint.pt'."
        )

    return load_model(name, device=device), name


def check(condition: bool, message: str) -> None:
    """Fail loudly (AssertionError, which stops papermill and nbval) when a result is off."""
    if not condition:
        raise AssertionError(f"CHECK FAILED: {message}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a torch generator seeded the same way."""
    torch.manual_seed(seed)
    np.random.seed(seed)

    return torch.Generator().manual_seed(seed)


def figure_dir(out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)

    return path


def _model_key(model: RGFlow, *extra: object) -> str:
    """A digest of the model's config and weights (and of ``extra``): a cache key."""
    import hashlib

    h = hashlib.sha256(repr(model.config.to_dict()).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(extra).encode())

    return h.hexdigest()[:24]


def cached_strengths(
    model: RGFlow, n_samples: int, seed: int, cache_dir: str | os.PathLike | None = None
):
    """:func:`rgflow.explain.receptive_field_strengths`, computed once per model and setting.

    The strengths of every latent cost thousands of forward-mode passes, and notebooks 04 and
    05 (and the latent explorer) need the same ones; the result is stored under the rgflow
    cache folder (``$RGFLOW_CACHE`` or ``~/.cache/rgflow``) in ``strengths/<key>.pt``, where
    the key digests the model's config and weights, ``n_samples`` and ``seed``. A changed
    model gets a new key, so a stale result is never reused.
    """
    from .data.cache import resolve_cache_dir
    from .explain import StrengthResult, receptive_field_strengths

    folder = resolve_cache_dir(cache_dir) / "strengths"
    path = folder / f"{_model_key(model, n_samples, seed)}.pt"
    if path.exists():
        try:
            saved = torch.load(path, weights_only=True)
            return StrengthResult(saved["strength"], saved["maps"], saved["levels"].numpy())
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)

    result = receptive_field_strengths(model, n_samples=n_samples, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(
        {
            "strength": result.strength,
            "maps": result.maps,
            "levels": torch.as_tensor(result.levels.copy()),
        },
        tmp,
    )
    os.replace(tmp, path)

    return result
