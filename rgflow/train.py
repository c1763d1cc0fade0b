"""Training and evaluation: AdamW on the negative log-likelihood, test bits/dim every epoch.

One step, as in the authors' ``main.py``:

    1. dequantise and logit-transform a batch of 8-bit images (random h-flip for faces)
    2. loss = -(log p(y) + log|det dy/dx|) / D                   (nats per dimension)
    3. backward, clip the global gradient norm to 1, AdamW step (lr 1e-3, preset decay)

    bits/dim = (loss + ln 256) / ln 2

Everything a run writes goes to ``out_dir``: ``log.jsonl`` (one JSON object per line:
train, eval, checkpoint and stop events), ``checkpoint.pt`` (the last complete checkpoint,
written atomically, with optimizer and RNG states, so a killed run resumes where its last
checkpoint left it with the same data order), ``metrics.json`` and ``samples.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoints import CheckpointError, load_checkpoint, load_state_into, save_checkpoint
from .model import RGFlow, RGFlowConfig, get_preset
from .plots import save_image_grid
from .preprocess import bits_per_dim, dequantize, logit_transform

__all__ = ["TrainConfig", "NonFiniteLossError", "train", "evaluate", "build_model_config"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    Args:
        preset: architecture and defaults, see ``rgflow.model.PRESETS``.
        dataset: a name from ``rgflow.data.DATASETS``.
        data_root: folder for datasets read from disk (CelebA, CIFAR-10, MNIST).
        prior: override the preset's prior (``"laplace"`` or ``"gaussian"``).
        model: other architecture overrides, e.g. ``{"n_hidden": 64}``.
        epochs: passes over the training set.
        max_steps: stop after this many optimizer steps in total (None: no limit).
        max_minutes: stop after this much training time in this invocation (None: none).
        batch_size: None takes the preset's (64).
        lr, weight_decay, clip_grad: AdamW settings; weight_decay None takes the preset's.
        seed: seeds the weights, the data order and the dequantisation noise.
        out_dir: where logs, checkpoints and samples go.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        train_size, test_size: use only the first N images (None: all).
        hflip: random horizontal flips (the authors use them for faces).
        log_every: steps between ``train`` log lines.
        checkpoint_minutes: minutes between checkpoints within an epoch.
        nonfinite: ``"stop"`` raises on a NaN/inf loss; ``"skip"`` drops that batch.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        precision: ``"float32"`` (exact) or ``"bfloat16"`` (mixed precision matmuls).
        sample_temperature: temperature of the sample grid written at the end.
    """

    preset: str = "small"
    dataset: str = "msds1"
    data_root: str | None = None
    prior: str | None = None
    model: dict = field(default_factory=dict)
    epochs: int = 1
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float | None = None
    clip_grad: float = 1.0
    seed: int = 0
    out_dir: str = "runs/default"
    device: str = "cpu"
    train_size: int | None = None
    test_size: int | None = None
    hflip: bool = False
    log_every: int = 25
    checkpoint_minutes: float = 5.0
    nonfinite: str = "stop"
    resume: bool = True
    precision: str = "float32"
    sample_temperature: float = 1.0

    def __post_init__(self) -> None:
        get_preset(self.preset)  # raises on an unknown preset
        if self.nonfinite not in ("stop", "skip"):
            raise ValueError(f"nonfinite must be 'stop' or 'skip', got {self.nonfinite!r}.")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}.")
        for name in ("epochs", "max_steps", "batch_size", "train_size", "test_size", "log_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("lr", "max_minutes", "checkpoint_minutes", "sample_temperature"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}.")

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or get_preset(self.preset).batch_size

    @property
    def effective_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return get_preset(self.preset).weight_decay

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return cls(**data)


def build_model_config(config: TrainConfig, channels: int, image_size: int) -> RGFlowConfig:
    """The preset's architecture with the dataset's shape and the run's overrides."""
    changes: dict[str, Any] = {"channels": channels, "image_size": image_size, **config.model}
    if config.prior is not None:
        changes["prior"] = config.prior
    try:
        return get_preset(config.preset).config.replace(**changes)
    except TypeError as err:
        raise ValueError(f"bad model override {sorted(config.model)}: {err}") from None


# ----------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(
    model: RGFlow,
    images: Tensor,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Mean test bits/dim of uint8 images (N, C, L, L), with seeded dequantisation noise."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = model.level_map.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    total, count = 0.0, 0
    batches = range(0, len(images), batch_size)
    for start in tqdm(batches, desc="test bits/dim", disable=not progress, leave=False):
        pixels = images[start : start + batch_size]
        x = dequantize(pixels, generator, dtype=model.prior.scale.dtype).to(device)
        y, logdet = logit_transform(x)
        bpd = bits_per_dim(model.log_prob(y) + logdet, model.config.dims)
        total += bpd.sum().item()
        count += len(pixels)
    model.train(was_training)

    return total / count


# ----------------------------------------------------------------------------------------
# Training


class _JsonLog:
    """Append-only JSON-lines log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The data order of one epoch: a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)

    return torch.randperm(n, generator=g)


def _load_data(config: TrainConfig) -> tuple[Any, Any]:
    from .data import load_dataset

    train_set = load_dataset(
        config.dataset, "train", config.data_root, size=config.train_size, seed=config.seed
    )
    test_set = load_dataset(
        config.dataset, "test", config.data_root, size=config.test_size, seed=config.seed
    )

    return train_set, test_set


def train(
    config: TrainConfig,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or resume) a model as ``config`` says; return the final metrics.

    Returns:
        A dict with ``test_bpd``, ``train_bpd`` (running mean of the last epoch), ``steps``,
        ``epochs``, ``wall_seconds``, ``out_dir``, ``checkpoint`` and ``samples``.
    """
    from tqdm.auto import tqdm

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = _JsonLog(out / "log.jsonl")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {config.device!r} asked for, but CUDA is not available.")

    # 1. Data and model
    train_set, test_set = _load_data(config)
    model_config = build_model_config(config, train_set.channels, train_set.image_size)
    torch.manual_seed(config.seed)
    model = RGFlow(model_config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        weight_decay=config.effective_weight_decay,
        fused=device.type in ("cpu", "cuda"),  # one kernel for all tensors, the same update
    )
    noise = torch.Generator().manual_seed(config.seed + 1)
    step, epoch, batch_in_epoch, elapsed = 0, 0, 0, 0.0

    # 2. Resume from the last complete checkpoint
    ckpt_path = out / "checkpoint.pt"
    if config.resume and ckpt_path.exists():
        step, epoch, batch_in_epoch, elapsed = _resume(
            ckpt_path, config, model, optimizer, noise, device
        )
        log.write("resume", step=step, epoch=epoch, batch=batch_in_epoch)
    else:
        log.write(
            "start",
            config=config.to_dict(),
            model=model_config.to_dict(),
            parameters=model.num_parameters(),
        )

    # 3. Loop
    batch_size = config.effective_batch_size
    n_train = len(train_set)
    batches_per_epoch = max(1, n_train // batch_size)  # drop the last partial batch
    total_steps = config.epochs * batches_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    started = time.monotonic()
    last_save = started
    metrics: dict[str, Any] = {}
    running: list[float] = []
    stop_reason = "done"
    model.train()

    bar = tqdm(
        total=total_steps,
        initial=min(step, total_steps),
        desc="train",
        disable=not progress,
        dynamic_ncols=True,
    )
    while step < total_steps:
        order = _epoch_order(n_train, config.seed, epoch)
        while batch_in_epoch < batches_per_epoch and step < total_steps:
            index = order[batch_in_epoch * batch_size : (batch_in_epoch + 1) * batch_size]
            loss = _train_step(model, optimizer, train_set.images[index], noise, config, device)
            batch_in_epoch += 1
            step += 1

            if not math.isfinite(loss):
                if config.nonfinite == "stop":
                    log.write("nonfinite", step=step, epoch=epoch)
                    bar.close()
                    last_good = ckpt_path if ckpt_path.exists() else "none"
                    raise NonFiniteLossError(
                        f"loss is {loss} at step {step} (epoch {epoch}); training stopped. "
                        f"The last good checkpoint is {last_good}. "
                        f"Lower the lr, check the data, or pass nonfinite='skip' "
                        f"(--skip-nonfinite) to drop such batches."
                    )
                log.write("skip_nonfinite", step=step, epoch=epoch)
                continue

            bpd = (loss + math.log(256)) / math.log(2)
            running.append(bpd)
            bar.update(1)
            if step % config.log_every == 0 or step == 1:
                mean_bpd = sum(running[-config.log_every :]) / len(running[-config.log_every :])
                bar.set_postfix(bpd=f"{mean_bpd:.3f}")
                record = {
                    "step": step,
                    "epoch": epoch,
                    "bpd": round(mean_bpd, 5),
                    "seconds": round(elapsed + time.monotonic() - started, 2),
                }
                log.write("train", **record)
                if callback:
                    callback(record)

            now = time.monotonic()
            if now - last_save > 60 * config.checkpoint_minutes:
                _save(
                    ckpt_path,
                    model,
                    optimizer,
                    config,
                    step,
                    epoch,
                    batch_in_epoch,
                    noise,
                    elapsed + now - started,
                    metrics,
                    log,
                )
                last_save = now
            if config.max_minutes is not None and now - started > 60 * config.max_minutes:
                stop_reason = "time budget"
                break
        if stop_reason != "done":
            break

        if batch_in_epoch >= batches_per_epoch:  # an epoch ended: evaluate, checkpoint
            metrics = _end_of_epoch(model, test_set, config, epoch, step, log, running)
            epoch, batch_in_epoch = epoch + 1, 0
            _save(
                ckpt_path,
                model,
                optimizer,
                config,
                step,
                epoch,
                batch_in_epoch,
                noise,
                elapsed + time.monotonic() - started,
                metrics,
                log,
            )
            last_save = time.monotonic()
            running = running[-config.log_every :]
    bar.close()

    # 4. Final evaluation (if the run stopped inside an epoch), checkpoint and samples
    if not metrics or metrics.get("step") != step:
        metrics = _end_of_epoch(model, test_set, config, epoch, step, log, running)
    wall = elapsed + time.monotonic() - started
    _save(
        ckpt_path, model, optimizer, config, step, epoch, batch_in_epoch, noise, wall, metrics, log
    )
    samples = _write_samples(model, out / "samples.png", config)
    result = {
        **metrics,
        "steps": step,
        "epochs": epoch,
        "wall_seconds": round(wall, 1),
        "stop": stop_reason,
        "out_dir": str(out),
        "checkpoint": str(ckpt_path),
        "samples": str(samples),
        "parameters": model.num_parameters(),
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(result, f, indent=2)
    log.write("stop", **{k: v for k, v in result.items() if k != "out_dir"})

    return result


def _train_step(
    model: RGFlow,
    optimizer: torch.optim.Optimizer,
    pixels: Tensor,
    noise: torch.Generator,
    config: TrainConfig,
    device: torch.device,
) -> float:
    """One optimizer step; returns the loss in nats per dimension (may be non-finite)."""
    x = dequantize(pixels, noise)  # noise drawn on the CPU: the same stream on every device
    if config.hflip:
        flip = torch.rand(len(x), generator=noise) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = x.to(device, non_blocking=True)

    y, logdet_logit = logit_transform(x)
    with _autocast(config.precision, device):
        log_p = model.log_prob(y)
    loss = -(log_p.float() + logdet_logit).mean() / model.config.dims

    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return float(loss.detach())
    loss.backward()
    if config.clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
    optimizer.step()

    return loss.item()


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    return torch.autocast(device_type=device.type, enabled=False)


def _end_of_epoch(
    model: RGFlow,
    test_set: Any,
    config: TrainConfig,
    epoch: int,
    step: int,
    log: _JsonLog,
    running: list[float],
) -> dict:
    test_bpd = evaluate(model, test_set.images, seed=config.seed)
    train_bpd = sum(running) / len(running) if running else float("nan")
    metrics = {
        "test_bpd": round(test_bpd, 5),
        "train_bpd": round(train_bpd, 5),
        "epoch": epoch,
        "step": step,
        "test_images": len(test_set),
    }
    log.write("eval", **metrics)

    return metrics


def _save(
    path: Path,
    model: RGFlow,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    noise: torch.Generator,
    elapsed: float,
    metrics: dict,
    log: _JsonLog,
) -> None:
    train_state = {
        "config": config.to_dict(),
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "elapsed": elapsed,
        "noise_rng": noise.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    save_checkpoint(path, model, optimizer, train=train_state, metrics=metrics)
    log.write("checkpoint", step=step, epoch=epoch, path=str(path))


_RESUME_MUST_MATCH = (
    "preset",
    "dataset",
    "prior",
    "model",
    "batch_size",
    "seed",
    "train_size",
    "data_root",
)


def _resume(
    path: Path,
    config: TrainConfig,
    model: RGFlow,
    optimizer: torch.optim.Optimizer,
    noise: torch.Generator,
    device: torch.device,
) -> tuple[int, int, int, float]:
    checkpoint = load_checkpoint(path, map_location=device)
    saved = checkpoint.train.get("config", {})
    changed = [k for k in _RESUME_MUST_MATCH if saved.get(k) != config.to_dict().get(k)]
    if changed:
        raise CheckpointError(
            f"{path} belongs to a run with other settings ({', '.join(changed)} differ); "
            f"use another out_dir, or pass resume=False (--no-resume) to start over there."
        )
    load_state_into(model, checkpoint)
    if checkpoint.optimizer is None:
        raise CheckpointError(f"{path} has no optimizer state, so training cannot resume.")
    optimizer.load_state_dict(checkpoint.optimizer)
    noise.set_state(checkpoint.train["noise_rng"].cpu())
    torch.set_rng_state(checkpoint.train["torch_rng"].cpu())
    t = checkpoint.train

    return int(t["step"]), int(t["epoch"]), int(t["batch_in_epoch"]), float(t["elapsed"])


@torch.no_grad()
def _write_samples(model: RGFlow, path: Path, config: TrainConfig, n: int = 64) -> Path:
    was_training = model.training
    model.eval()
    g = torch.Generator(device=model.level_map.device).manual_seed(config.seed)
    z = model.sample_latents(n, config.sample_temperature, generator=g)
    pixels = model.decode(z)
    model.train(was_training)

    return save_image_grid(pixels, path, nrow=8)


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a run's ``log.jsonl``."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
