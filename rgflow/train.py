"""Training and evaluation: AdamW on the negative log-likelihood, test bits/dim every epoch.

One step, as in the authors' ``main.py``:

    1. dequantise and logit-transform a batch of 8-bit images (random h-flip for faces)
    2. loss = -(log p(y) + log|det dy/dx|) / D                   (nats per dimension)
    3. backward, clip the global gradient norm to 1, AdamW step (lr 1e-3, preset decay)

    bits/dim = (loss + ln 256) / ln 2

Everything a run writes goes to ``out_dir``: ``log.jsonl`` (one JSON object per line:
train, eval, checkpoint and stop events), ``checkpoint.pt`` (the last complete checkpoint,
written atomically, with optimizer and RNG states, so a killed run resumes where its last
checkpoint left it with the same data order), ``metrics.json`` and ``samples.png``. Every
file is written to a temporary name and renamed, so a crash never leaves half of one.

Launched by ``torchrun`` (RANK, WORLD_SIZE and LOCAL_RANK set), or inside a process group
that is already initialised, training is data parallel (DistributedDataParallel): each of
the W processes takes its 1/W of every global batch of ``batch_size`` images, with the same
data order and dequantisation noise as a single process, so W processes reproduce the
single-process run up to float round-off. Only rank 0 writes logs, checkpoints and samples.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .checkpoints import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
)
from .model import RGFlow, RGFlowConfig, get_preset
from .plots import save_image_grid
from .preprocess import bits_per_dim, dequantize, logit_transform

__all__ = [
    "TrainConfig",
    "NonFiniteLossError",
    "train",
    "evaluate",
    "per_image_bpd",
    "build_model_config",
]


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
        batch_size: None takes the preset's (64). Under torchrun this is the global batch,
            split evenly over the processes.
        lr, weight_decay, clip_grad: AdamW settings; weight_decay None takes the preset's.
        seed: seeds the weights, the data order and the dequantisation noise.
        out_dir: where logs, checkpoints and samples go.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        train_size, test_size: use only the first N images (None: all).
        hflip: random horizontal flips (the authors use them for faces).
        log_every: steps between ``train`` log lines.
        checkpoint_minutes: minutes between checkpoints within an epoch.
        checkpoint_every: also checkpoint every this many steps (None: only by time and at
            the end of each epoch).
        nonfinite: ``"stop"`` raises on a NaN/inf loss; ``"skip"`` drops that batch.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        precision: ``"float32"`` (exact) or ``"bfloat16"`` (mixed precision matmuls).
        compile: run the training step's ``log_prob`` through ``torch.compile`` (the same
            function; fuses the elementwise work around the matmuls). Needs a C++ compiler
            on the CPU; the first step then takes minutes (tracing and code generation).
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
    checkpoint_every: int | None = None
    nonfinite: str = "stop"
    resume: bool = True
    precision: str = "float32"
    compile: bool = False
    sample_temperature: float = 1.0

    def __post_init__(self) -> None:
        get_preset(self.preset)  # raises on an unknown preset
        if self.nonfinite not in ("stop", "skip"):
            raise ValueError(f"nonfinite must be 'stop' or 'skip', got {self.nonfinite!r}.")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}.")
        for name in ("hflip", "resume", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        counts = ("epochs", "max_steps", "batch_size", "train_size", "test_size", "log_every")
        for name in (*counts, "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        _check_model_overrides(self.model)
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
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown TrainConfig option(s) {unknown}; the options are {known}. Check the "
                f"spelling, or use the rgflow version that wrote this config."
            )

        return cls(**data)


def _check_model_overrides(model: object) -> None:
    """Architecture overrides must be a dict of RGFlowConfig field names."""
    known = [f.name for f in dataclasses.fields(RGFlowConfig)]
    if not isinstance(model, dict):
        raise ValueError(
            f"model must be a dict of architecture overrides, e.g. {{'n_hidden': 64}}, got "
            f"{model!r}."
        )
    unknown = sorted(set(model) - set(known))
    if unknown:
        raise ValueError(
            f"unknown model option(s) {unknown}; the architecture options are {known} "
            f"(e.g. model={{'n_hidden': 64}}, or --set n_hidden=64 on the command line)."
        )


def build_model_config(config: TrainConfig, channels: int, image_size: int) -> RGFlowConfig:
    """The preset's architecture with the dataset's shape and the run's overrides."""
    changes: dict[str, Any] = {"channels": channels, "image_size": image_size, **config.model}
    if config.prior is not None:
        changes["prior"] = config.prior
    try:
        return get_preset(config.preset).config.replace(**changes)
    except TypeError as err:
        raise ValueError(
            f"bad model override {config.model}: {err}; see RGFlowConfig for the options."
        ) from None


# ----------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def per_image_bpd(
    model: RGFlow, images: Tensor, seed: int = 0, batch_size: int = 256, progress: bool = False
) -> Tensor:
    """Bits/dim of each uint8 image (N, C, L, L) -> (N,), with seeded dequantisation noise.

    The noise is drawn batch by batch on the CPU from one generator seeded with ``seed``, so
    the same images, seed and batch size give the same numbers on any device.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = model.level_map.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    batches = range(0, len(images), batch_size)
    for start in tqdm(batches, desc="test bits/dim", disable=not progress, leave=False):
        pixels = images[start : start + batch_size]
        x = dequantize(pixels, generator, dtype=model.prior.scale.dtype).to(device)
        y, logdet = logit_transform(x)
        out.append(bits_per_dim(model.log_prob(y) + logdet, model.config.dims).cpu())
    model.train(was_training)

    return torch.cat(out)


def evaluate(
    model: RGFlow,
    images: Tensor,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Mean test bits/dim of uint8 images (N, C, L, L): the mean of :func:`per_image_bpd`.

    Summed batch by batch in float64, as the training log has always reported it.
    """
    bpd = per_image_bpd(model, images, seed, batch_size, progress)

    return sum(batch.sum().item() for batch in bpd.split(batch_size)) / len(bpd)


# ----------------------------------------------------------------------------------------
# Processes: one, or a torch.distributed group


@dataclass(frozen=True)
class _Ranks:
    """This process's place in a data-parallel run; rank 0 of 1 when there is none.

    Every collective is a no-op for a single process, so that path is unchanged.
    """

    rank: int = 0
    world: int = 1
    owns_group: bool = False  # the group was started here, so it is destroyed here

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, x: Tensor) -> Tensor:
        """This rank's contiguous 1/W of a global batch: (B, ...) -> (B / W, ...)."""
        if not self.distributed:
            return x
        n = len(x) // self.world

        return x[self.rank * n : (self.rank + 1) * n]

    def mean(self, value: Tensor) -> Tensor:
        """The mean of a scalar tensor over the ranks (the tensor itself for one process)."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)

        return total / self.world

    def agree(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Rank 0's flags on every rank (decisions that depend on rank 0's clock)."""
        if not self.distributed:
            return flags
        t = torch.tensor(flags, dtype=torch.int32, device=device)
        dist.broadcast(t, src=0)

        return [bool(v) for v in t.tolist()]

    def share(self, obj: Any) -> Any:
        """Rank 0's object (plain data) on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)

        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _setup_distributed(config: TrainConfig, device: torch.device) -> tuple[_Ranks, torch.device]:
    """Join the process group (or start it, under torchrun); pick this rank's device.

    A process group that is already initialised is used as it is; otherwise WORLD_SIZE > 1
    (set by torchrun, with RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) starts one with
    NCCL on CUDA and gloo on the CPU.
    """
    joined = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if joined else int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Ranks(), device
    batch = config.effective_batch_size
    if batch % world:
        raise ValueError(
            f"batch_size {batch} is the global batch and must split evenly over the {world} "
            f"processes; use a multiple of {world} (each process takes batch_size / {world})."
        )
    rank = dist.get_rank() if joined else int(os.environ.get("RANK", "0"))
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if joined:
        return _Ranks(rank, world), device
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={world} asks for a distributed run, but this torch build has no "
            f"torch.distributed; install a build with it, or run a single process."
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=60))

    return _Ranks(dist.get_rank(), world, owns_group=True), device


class _LogProb(torch.nn.Module):
    """``flow.log_prob`` as ``forward``, so that DistributedDataParallel can wrap it."""

    def __init__(self, flow: RGFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, y: Tensor) -> Tensor:
        return self.flow.log_prob(y)


def _compiled(log_prob: Callable, device: torch.device) -> Callable:
    """``torch.compile(log_prob)``; on the CPU, first checks that a C++ compiler is there.

    Inductor's CPU backend writes C++ and builds it with ``$CXX`` (default ``g++``); without
    one the first training step would fail deep inside torch after minutes of tracing.
    """
    compiler = os.environ.get("CXX", "g++")
    if device.type == "cpu" and shutil.which(compiler) is None:
        raise RuntimeError(
            f"compile=True needs a C++ compiler for torch.compile on the CPU, and {compiler!r} "
            "is not on PATH: install one (Debian: apt-get install g++) or set CXX, or train "
            "without --compile (the same model; compiled small-preset steps ran 1.3-1.7x faster)."
        )

    return torch.compile(log_prob)


def _log_prob_fn(model: RGFlow, ranks: _Ranks, device: torch.device) -> Callable:
    """``model.log_prob``, or its DDP wrapper (which averages the gradients over the ranks)."""
    if not ranks.distributed:
        return model.log_prob
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # The buffers (block indices, level map, prior scale) are equal on every rank: no syncs.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        no_sync = {"forward_sync_buffers": False}
    else:  # torch before 2.13
        no_sync = {"broadcast_buffers": False}

    return DistributedDataParallel(_LogProb(model), device_ids=ids, **no_sync)


# ----------------------------------------------------------------------------------------
# Training


class _JsonLog:
    """Append-only JSON-lines log; one write per record, so a crash leaves no half line."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)


def _epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The data order of one epoch: a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)

    return torch.randperm(n, generator=g)


def _load_data(config: TrainConfig, ranks: _Ranks) -> tuple[Any, Any]:
    """Train and test sets; rank 0 first, so that it alone builds any dataset cache."""
    from .data import load_dataset

    def load() -> tuple[Any, Any]:
        train_set = load_dataset(
            config.dataset, "train", config.data_root, size=config.train_size, seed=config.seed
        )
        test_set = load_dataset(
            config.dataset, "test", config.data_root, size=config.test_size, seed=config.seed
        )
        return train_set, test_set

    data = load() if ranks.main else None
    ranks.barrier()

    return data or load()


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files a killed run left behind (never a complete file)."""
    for stale in [*out.glob(".*.tmp"), *out.glob(".*.tmp.png")]:
        stale.unlink(missing_ok=True)


@dataclass
class _Run:
    """One training run's model, optimizer, RNG and position: what a checkpoint holds."""

    config: TrainConfig
    model: RGFlow
    optimizer: torch.optim.Optimizer
    noise: torch.Generator
    log: _JsonLog
    ranks: _Ranks
    path: Path  # the checkpoint
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0  # training seconds of earlier invocations
    skipped: int = 0  # batches dropped for a non-finite loss
    saved_step: int | None = None  # step of the last complete checkpoint

    def save(self, elapsed: float, metrics: dict) -> None:
        """Rank 0 writes the checkpoint atomically; every rank waits until it is complete."""
        if self.ranks.main:
            _save(self, elapsed, metrics)
        self.saved_step = self.step
        self.ranks.barrier()

    def nonfinite_error(self, loss: float) -> NonFiniteLossError:
        if self.saved_step is None:
            last_good = "There is no checkpoint yet"
        else:
            last_good = f"The last good checkpoint is {self.path} (step {self.saved_step})"

        return NonFiniteLossError(
            f"loss is {loss} at step {self.step} (epoch {self.epoch}); training stopped. "
            f"{last_good}. Lower the lr, check the data, or pass nonfinite='skip' "
            f"(--skip-nonfinite) to drop such batches."
        )


def train(
    config: TrainConfig,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or resume) a model as ``config`` says; return the final metrics.

    Under torchrun (or in an initialised process group) every process calls this; see the
    module docstring. The checkpoint folder must then be one that every node sees.

    Returns:
        A dict with ``test_bpd``, ``train_bpd`` (running mean of the last epoch), ``steps``,
        ``epochs``, ``wall_seconds``, ``skipped_batches``, ``out_dir``, ``checkpoint`` and
        ``samples``.

    Raises:
        NonFiniteLossError: the loss became NaN or inf (with ``nonfinite="stop"``).
        CheckpointError: the checkpoint to resume from is damaged or from another run.
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {config.device!r} asked for, but CUDA is not available.")
    ranks, device = _setup_distributed(config, device)
    try:
        return _train(config, ranks, device, progress, callback)
    finally:
        if ranks.owns_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    ranks: _Ranks,
    device: torch.device,
    progress: bool,
    callback: Callable[[dict], None] | None,
) -> dict:
    from tqdm.auto import tqdm

    out = Path(config.out_dir)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out)
    log = _JsonLog(out / "log.jsonl", enabled=ranks.main)

    # 1. Data and model
    train_set, test_set = _load_data(config, ranks)
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
    run = _Run(config, model, optimizer, noise, log, ranks, out / "checkpoint.pt")

    # 2. Resume from the last complete checkpoint
    if ranks.share(config.resume and run.path.exists()):
        _resume(run, device)
        log.write("resume", step=run.step, epoch=run.epoch, batch=run.batch_in_epoch)
    else:
        log.write(
            "start",
            config=config.to_dict(),
            model=model_config.to_dict(),
            parameters=model.num_parameters(),
            processes=ranks.world,
        )
    log_prob = _log_prob_fn(model, ranks, device)
    if config.compile:
        log_prob = _compiled(log_prob, device)

    # 3. Loop
    batch_size = config.effective_batch_size
    n_train = len(train_set)
    if ranks.distributed and n_train < batch_size:
        raise ValueError(
            f"the training set has {n_train} images, fewer than one global batch of "
            f"{batch_size}; use a smaller batch_size or more training images."
        )
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
        initial=min(run.step, total_steps),
        desc="train",
        disable=not (progress and ranks.main),
        dynamic_ncols=True,
    )
    while run.step < total_steps:
        order = _epoch_order(n_train, config.seed, run.epoch)
        while run.batch_in_epoch < batches_per_epoch and run.step < total_steps:
            start = run.batch_in_epoch * batch_size
            pixels = train_set.images[order[start : start + batch_size]]
            loss = _train_step(model, log_prob, optimizer, pixels, noise, config, device, ranks)
            run.batch_in_epoch += 1
            run.step += 1

            if not math.isfinite(loss):
                if config.nonfinite == "stop":
                    log.write("nonfinite", step=run.step, epoch=run.epoch)
                    bar.close()
                    raise run.nonfinite_error(loss)
                run.skipped += 1
                log.write("skip_nonfinite", step=run.step, epoch=run.epoch, loss=str(loss))
                continue

            bpd = (loss + math.log(256)) / math.log(2)
            running.append(bpd)
            bar.update(1)
            if run.step % config.log_every == 0 or run.step == 1:
                mean_bpd = sum(running[-config.log_every :]) / len(running[-config.log_every :])
                bar.set_postfix(bpd=f"{mean_bpd:.3f}")
                record = {
                    "step": run.step,
                    "epoch": run.epoch,
                    "bpd": round(mean_bpd, 5),
                    "seconds": round(run.elapsed + time.monotonic() - started, 2),
                }
                log.write("train", **record)
                if callback and ranks.main:
                    callback(record)

            now = time.monotonic()
            every = config.checkpoint_every
            save, stop = ranks.agree(
                [
                    now - last_save > 60 * config.checkpoint_minutes
                    or (every is not None and run.step % every == 0),
                    config.max_minutes is not None and now - started > 60 * config.max_minutes,
                ],
                device,
            )
            if save:
                run.save(run.elapsed + now - started, metrics)
                last_save = now
            if stop:
                stop_reason = "time budget"
                break
        if stop_reason != "done":
            break

        if run.batch_in_epoch >= batches_per_epoch:  # an epoch ended: evaluate, checkpoint
            metrics = _end_of_epoch(model, test_set, config, run, running)
            run.epoch, run.batch_in_epoch = run.epoch + 1, 0
            run.save(run.elapsed + time.monotonic() - started, metrics)
            last_save = time.monotonic()
            running = running[-config.log_every :]
    bar.close()

    # 4. Final evaluation (if the run stopped inside an epoch), checkpoint and samples
    if not metrics or metrics.get("step") != run.step:
        metrics = _end_of_epoch(model, test_set, config, run, running)
    wall = run.elapsed + time.monotonic() - started
    run.save(wall, metrics)
    result = {
        **metrics,
        "steps": run.step,
        "epochs": run.epoch,
        "wall_seconds": round(wall, 1),
        "stop": stop_reason,
        "skipped_batches": run.skipped,
        "processes": ranks.world,
        "out_dir": str(out),
        "checkpoint": str(run.path),
        "samples": str(out / "samples.png"),
        "parameters": model.num_parameters(),
    }
    if ranks.main:
        _write_samples(model, out / "samples.png", config)
        text = json.dumps(result, indent=2).encode()
        atomic_write_bytes(out / "metrics.json", lambda f: f.write(text))
        log.write("stop", **{k: v for k, v in result.items() if k != "out_dir"})
        if run.skipped:
            warnings.warn(
                f"{run.skipped} batch(es) had a non-finite loss and were skipped; see the "
                f"skip_nonfinite events in {log.path}.",
                RuntimeWarning,
                stacklevel=3,
            )
    ranks.barrier()

    return result


def _train_step(
    model: RGFlow,
    log_prob: Callable[[Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    pixels: Tensor,
    noise: torch.Generator,
    config: TrainConfig,
    device: torch.device,
    ranks: _Ranks,
) -> float:
    """One optimizer step on a global batch; returns its loss in nats per dimension.

    The loss may be non-finite: then no step is taken. The noise of the whole global batch
    is drawn on every rank (the same stream as one process); each rank keeps its shard.
    """
    x = dequantize(pixels, noise)  # noise drawn on the CPU: the same stream on every device
    if config.hflip:
        flip = torch.rand(len(x), generator=noise) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = ranks.shard(x).to(device, non_blocking=True)

    y, logdet_logit = logit_transform(x)
    with _autocast(config.precision, device):
        log_p = log_prob(y)
    loss = -(log_p.float() + logdet_logit).mean() / model.config.dims

    optimizer.zero_grad(set_to_none=True)
    total = ranks.mean(loss)  # the global batch's loss: the same number on every rank
    if not torch.isfinite(total):
        return float(total.detach())
    loss.backward()  # DDP averages the gradients over the ranks here
    if config.clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
    optimizer.step()

    return total.item()


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    return torch.autocast(device_type=device.type, enabled=False)


def _end_of_epoch(
    model: RGFlow, test_set: Any, config: TrainConfig, run: _Run, running: list[float]
) -> dict:
    """Rank 0 measures test bits/dim and logs it; every rank gets the same metrics."""
    metrics = None
    if run.ranks.main:
        test_bpd = evaluate(model, test_set.images, seed=config.seed)
        train_bpd = sum(running) / len(running) if running else float("nan")
        metrics = {
            "test_bpd": round(test_bpd, 5),
            "train_bpd": round(train_bpd, 5),
            "epoch": run.epoch,
            "step": run.step,
            "test_images": len(test_set),
        }
        run.log.write("eval", **metrics)

    return run.ranks.share(metrics)


def _save(run: _Run, elapsed: float, metrics: dict) -> None:
    train_state = {
        "config": run.config.to_dict(),
        "step": run.step,
        "epoch": run.epoch,
        "batch_in_epoch": run.batch_in_epoch,
        "elapsed": elapsed,
        "skipped": run.skipped,
        "noise_rng": run.noise.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    save_checkpoint(run.path, run.model, run.optimizer, train=train_state, metrics=metrics)
    run.log.write("checkpoint", step=run.step, epoch=run.epoch, path=str(run.path))


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


def _resume(run: _Run, device: torch.device) -> None:
    """Load weights, optimizer, RNG states and position from the run's checkpoint."""
    path, config = run.path, run.config
    checkpoint = load_checkpoint(path, map_location=device)
    saved = checkpoint.train.get("config", {})
    changed = [k for k in _RESUME_MUST_MATCH if saved.get(k) != config.to_dict().get(k)]
    if changed:
        raise CheckpointError(
            f"{path} belongs to a run with other settings ({', '.join(changed)} differ); "
            f"use another out_dir, or pass resume=False (--no-resume) to start over there."
        )
    load_state_into(run.model, checkpoint)
    if checkpoint.optimizer is None:
        raise CheckpointError(f"{path} has no optimizer state, so training cannot resume.")
    run.optimizer.load_state_dict(checkpoint.optimizer)
    run.noise.set_state(checkpoint.train["noise_rng"].cpu())
    torch.set_rng_state(checkpoint.train["torch_rng"].cpu())
    t = checkpoint.train
    run.step, run.epoch = int(t["step"]), int(t["epoch"])
    run.batch_in_epoch, run.elapsed = int(t["batch_in_epoch"]), float(t["elapsed"])
    run.skipped = int(t.get("skipped", 0))
    run.saved_step = run.step


@torch.no_grad()
def _write_samples(model: RGFlow, path: Path, config: TrainConfig, n: int = 64) -> Path:
    """A grid of samples, written to a temporary name and renamed into place."""
    was_training = model.training
    model.eval()
    g = torch.Generator(device=model.level_map.device).manual_seed(config.seed)
    z = model.sample_latents(n, config.sample_temperature, generator=g)
    pixels = model.decode(z)
    model.train(was_training)
    tmp = path.with_name(f".{path.name}.tmp.png")
    save_image_grid(pixels, tmp, nrow=8)
    os.replace(tmp, path)

    return path


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a run's ``log.jsonl``."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
