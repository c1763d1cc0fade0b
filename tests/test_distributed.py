"""Data-parallel training: two gloo processes on the CPU reproduce one process.

Two processes, with the environment torchrun gives them (RANK, LOCAL_RANK, WORLD_SIZE),
run ``rgflow train``; each trains on its half of every global batch, and the result must
match a single process that sees the whole global batch, up to float round-off. They meet
through a file store rather than torchrun's TCP server, and gloo's own sockets are bound to
the loopback interface. The second run of each pair makes one rank's loss NaN: both ranks
must agree to skip that batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import rgflow.train as train_module
from rgflow.checkpoints import load_checkpoint
from rgflow.cli import main
from rgflow.train import TrainConfig, read_log, train

ARCH = {"n_hidden": 8, "n_layers": 1, "n_resblocks": 1, "n_mlp": 1}
STEPS = 4
WORLD = 2
POISONED_STEP = 2


def _config(out: Path, **changes: object) -> TrainConfig:
    base = dict(
        preset="tiny",
        dataset="msds1",
        model=ARCH,
        train_size=64,
        test_size=16,
        batch_size=16,  # the global batch: 8 images per process
        hflip=True,  # flips use the noise stream too: it must stay in step
        max_steps=STEPS,
        log_every=1,
        out_dir=str(out),
    )
    return TrainConfig(**{**base, **changes})


def _poison(step: int, rank: int | None) -> None:
    """NaN in the loss of one step, on one rank (None: every process)."""
    real = train_module.logit_transform
    calls = [0]

    def poisoned(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls[0] += 1
        y, logdet = real(x)
        mine = rank is None or dist.get_rank() == rank
        if calls[0] == step and mine:
            logdet = torch.full_like(logdet, float("nan"))
        return y, logdet

    train_module.logit_transform = poisoned


def _command(out: Path) -> list[str]:
    """The command line of ``_config(out)``."""
    sets = [arg for k, v in ARCH.items() for arg in ("--set", f"{k}={v}")]
    return [
        "train", "--preset", "tiny", "--data", "msds1", *sets, "--train-size", "64",
        "--test-size", "16", "--batch-size", "16", "--hflip", "--max-steps", str(STEPS),
        "--log-every", "1", "--quiet", "--out", str(out),
    ]  # fmt: skip


def _worker(rank: int, store: str, root: str) -> None:
    """One process of the group: a clean run, then a run with a NaN on rank 1.

    The first run goes through the command line and the environment torchrun sets, so
    ``train`` starts (and ends) the group itself; only the rendezvous differs from torchrun:
    a file store instead of a TCP server.
    """
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    real_init = dist.init_process_group
    inits = [0]

    def init_from_file(backend: str, **kwargs: object) -> None:
        inits[0] += 1
        url = f"file://{store}.{inits[0]}"
        real_init(backend, init_method=url, rank=rank, world_size=WORLD, **kwargs)

    dist.init_process_group = init_from_file
    assert main(_command(Path(root) / "two")) == 0
    assert inits[0] == 1 and not dist.is_initialized()  # train() started and ended the group

    _poison(POISONED_STEP, rank=1)
    train(_config(Path(root) / "two-nan", nonfinite="skip"), progress=False)
    assert inits[0] == 2 and not dist.is_initialized()


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["bpd"] for r in read_log(out / "log.jsonl") if r["event"] == "train"}


def _max_abs_diff(a: Path, b: Path) -> float:
    wa = load_checkpoint(a / "checkpoint.pt").model
    wb = load_checkpoint(b / "checkpoint.pt").model
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Train the pair of runs with two processes and with one; return the folder."""
    root = tmp_path_factory.mktemp("ddp")
    saved = {k: os.environ.get(k) for k in ("RGFLOW_CACHE", "GLOO_SOCKET_IFNAME")}
    os.environ["RGFLOW_CACHE"] = str(root / "cache")
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo listens on 127.0.0.1 only
    real = train_module.logit_transform
    try:
        train(_config(root / "one"), progress=False)  # also fills the data cache
        mp.spawn(_worker, args=(str(root / "store"), str(root)), nprocs=WORLD, join=True)
        _poison(POISONED_STEP, rank=None)
        with pytest.warns(RuntimeWarning, match="skipped"):
            train(_config(root / "one-nan", nonfinite="skip"), progress=False)
    finally:
        train_module.logit_transform = real
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return root


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(runs) -> None:
    diff = _max_abs_diff(runs / "one", runs / "two")
    assert diff < 1e-5, diff
    one, two = _losses(runs / "one"), _losses(runs / "two")
    assert sorted(two) == list(range(1, STEPS + 1))
    assert all(abs(one[s] - two[s]) < 1e-4 for s in one), (one, two)
    a = load_checkpoint(runs / "one" / "checkpoint.pt").metrics["test_bpd"]
    b = load_checkpoint(runs / "two" / "checkpoint.pt").metrics["test_bpd"]
    assert abs(a - b) < 1e-4


def test_only_rank_zero_writes(runs) -> None:
    events = [r["event"] for r in read_log(runs / "two" / "log.jsonl")]
    assert events.count("start") == 1 and events.count("stop") == 1
    assert events.count("train") == STEPS  # not once per process
    start = read_log(runs / "two" / "log.jsonl")[0]
    assert start["processes"] == WORLD
    assert not [p for p in (runs / "two").iterdir() if p.name.startswith(".")]


def test_a_nan_on_one_rank_makes_every_rank_skip_that_batch(runs) -> None:
    records = read_log(runs / "two-nan" / "log.jsonl")
    assert [r["step"] for r in records if r["event"] == "skip_nonfinite"] == [POISONED_STEP]
    assert sorted(_losses(runs / "two-nan")) == [s for s in range(1, STEPS + 1) if s != 2]
    diff = _max_abs_diff(runs / "one-nan", runs / "two-nan")
    assert diff < 1e-5, diff


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc_per_node 3 would set
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="batch_size 16 .* split evenly over the 3 processes"):
        train(_config(tmp_path / "run"), progress=False)
    assert not dist.is_initialized()  # refused before any process group was started
