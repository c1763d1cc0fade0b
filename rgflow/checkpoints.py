"""Checkpoints: save and load with their config, metrics and versions; shipped models by name.

A checkpoint is a plain dictionary of tensors, numbers and strings written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses any
pickled Python object, so a file from elsewhere cannot run code when it is loaded. Files
are written to a temporary name and renamed, so a crash never leaves a half-written file.

Layout (``format_version`` 1)::

    format            "rgflow-checkpoint"
    format_version    1
    config            RGFlowConfig as a dict
    model             state_dict
    optimizer         AdamW state_dict (training checkpoints only)
    train             the TrainConfig as a dict, step, epoch, batch, RNG states
    metrics           the last logged metrics (test bits/dim, ...)
    versions          rgflow, torch, numpy and python that wrote it
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import RGFlow, RGFlowConfig

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_state_into",
    "shipped_models",
    "load_pretrained",
    "sha256",
]

FORMAT = "rgflow-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, foreign, unsafe or for another model."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (all tensors on the ``map_location`` device)."""

    path: Path
    config: RGFlowConfig
    model: dict[str, torch.Tensor]
    optimizer: dict | None = None
    train: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


def versions() -> dict[str, str]:
    from . import __version__

    return {
        "rgflow": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(
    path: str | os.PathLike,
    model: RGFlow,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    train: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": _jsonable(model.config.to_dict()),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "train": train or {},
        "metrics": metrics or {},
        "versions": versions(),
    }
    atomic_write_bytes(path, lambda f: torch.save(state, f))

    return path


def _jsonable(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint safely (weights only), mapping its tensors to ``map_location``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated or damaged, is not an rgflow checkpoint,
            comes from a newer format, or carries pickled Python objects (refused unread).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train one with `python -m rgflow train --out DIR` "
            f"(it writes DIR/checkpoint.pt) or load a shipped model by name."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = [line.strip() for line in str(err).splitlines() if "Unsupported" in line]
        raise CheckpointError(
            f"refused to load {path}: it contains Python objects beyond tensors and plain "
            f"data, which could run code, so nothing of it was executed. Only load rgflow "
            f"checkpoints, or re-save the weights as a plain state_dict. "
            f"({reason[0] if reason else 'not a weights-only file'})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is damaged or not a checkpoint (truncated download or disk full?): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}. Use an earlier "
            f"checkpoint or train again."
        ) from None

    return _parse(path, state)


def _parse(path: Path, state: Any) -> Checkpoint:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an rgflow checkpoint (no 'format': '{FORMAT}' entry); a bare "
            f"state_dict can be loaded with RGFlow.load_state_dict after building the model."
        )
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(
            f"{path} has an unknown checkpoint format version {version!r} (this rgflow "
            f"reads 1..{FORMAT_VERSION}); the file is damaged or was not written by rgflow."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}, newer than this rgflow reads "
            f"({FORMAT_VERSION}); upgrade rgflow (it was written by "
            f"{state.get('versions', {}).get('rgflow', 'an unknown version')})."
        )
    try:
        config = RGFlowConfig.from_dict(dict(state["config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path} has an invalid model config: {err} The file is damaged or was written by "
            f"another rgflow version ({state.get('versions', {}).get('rgflow', 'unknown')}); "
            f"load it with the version that wrote it."
        ) from None

    return Checkpoint(
        path=path,
        config=config,
        model=state["model"],
        optimizer=state.get("optimizer"),
        train=state.get("train") or {},
        metrics=state.get("metrics") or {},
        versions=state.get("versions") or {},
    )


def load_state_into(model: RGFlow, checkpoint: Checkpoint) -> None:
    """Load a checkpoint's weights into a model of the same config, strictly.

    Raises:
        CheckpointError: the configs differ (the fields are named) or a key is missing.
    """
    if checkpoint.config != model.config:
        mine, theirs = model.config.to_dict(), checkpoint.config.to_dict()
        diff = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
        details = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"{checkpoint.path} was trained with another config ({details}); build the model "
            f"from the checkpoint with load_model() instead."
        )
    if not isinstance(checkpoint.model, dict):
        raise CheckpointError(
            f"{checkpoint.path} holds no weights (its 'model' entry is "
            f"{type(checkpoint.model).__name__}); the file is damaged, use another checkpoint."
        )
    expected, found = model.state_dict(), checkpoint.model
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(
        k
        for k in set(expected) & set(found)
        if getattr(found[k], "shape", None) != expected[k].shape
    )
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{checkpoint.path} does not fit an RGFlow of its own config (missing "
            f"{_first(missing)}, unexpected {_first(unexpected)}, other shape "
            f"{_first(reshaped)}); it was written by another rgflow version "
            f"({checkpoint.versions.get('rgflow', 'unknown')}) or edited. Load it with "
            f"that version, or retrain."
        )
    model.load_state_dict(found, strict=True)


def _first(keys: list[str], n: int = 3) -> str:
    """Up to n names and a count of the rest, for messages."""
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""

    return ", ".join(keys[:n]) + more


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> RGFlow:
    """Build the model a checkpoint (or a shipped model's name) describes and load its weights."""
    if not os.path.exists(path) and str(path) in shipped_models():
        return load_pretrained(str(path), device=device, dtype=dtype)
    checkpoint = load_checkpoint(path, map_location="cpu")
    model = RGFlow(checkpoint.config)
    load_state_into(model, checkpoint)
    model.eval()

    return model.to(device=device, dtype=dtype) if dtype else model.to(device)


# ----------------------------------------------------------------------------------------
# Models shipped with the project


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)

    return digest.hexdigest()


def _weights_dir() -> Path:
    return Path(str(resources.files("rgflow") / "weights"))


def shipped_models() -> dict[str, dict]:
    """The registry of trained models shipped in ``rgflow/weights`` (name -> record)."""
    registry = _weights_dir() / "registry.json"
    if not registry.is_file():
        return {}
    with open(registry) as f:
        return json.load(f)["models"]


def load_pretrained(
    name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> RGFlow:
    """Load a shipped model by name after checking its SHA-256 against the registry.

    Raises:
        ValueError: unknown name (the known ones are listed).
        CheckpointError: the file is missing or its checksum differs (damaged or replaced).
    """
    models = shipped_models()
    if name not in models:
        raise ValueError(f"no shipped model {name!r}; known: {sorted(models) or 'none'}.")
    record = models[name]
    path = _weights_dir() / record["file"]
    if not path.is_file():
        raise CheckpointError(
            f"shipped model {name!r} is listed but {path} is missing; restore it with "
            f"`git checkout -- {path.name}` or retrain it with: {record.get('command', '?')}"
        )
    digest = sha256(path)
    if digest != record["sha256"]:
        raise CheckpointError(
            f"checksum mismatch for shipped model {name!r} ({path}): expected "
            f"{record['sha256'][:16]}..., found {digest[:16]}...; the file is damaged or was "
            f"replaced. Restore it from git or retrain with: {record.get('command', '?')}"
        )

    return load_model(path, device=device, dtype=dtype)
