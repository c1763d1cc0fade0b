"""Crashes and numerical trouble in training: SIGKILL at random points, NaN losses.

A run of ``python -m rgflow train`` is killed with SIGKILL at three seeded random points
(while it trains, evaluates or writes a checkpoint), resumed each time, and must end with
the same losses, step for step, and the same weights and optimizer state as a run that was
never interrupted; after every kill, each file in the run folder is complete.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rgflow.train as train_module
from rgflow.checkpoints import load_checkpoint
from rgflow.train import NonFiniteLossError, TrainConfig, read_log, train

ARCH = {"n_hidden": 8, "n_layers": 1, "n_resblocks": 1, "n_mlp": 1}
STEPS = 30  # 12 batches per epoch: two evaluations happen inside the run
FINAL_FILES = {"log.jsonl", "checkpoint.pt", "metrics.json", "samples.png"}


def _config(out: Path, **changes: object) -> TrainConfig:
    base = dict(
        preset="tiny",
        dataset="msds1",
        model=ARCH,
        train_size=96,
        test_size=16,
        batch_size=8,
        epochs=3,
        max_steps=STEPS,
        checkpoint_every=1,
        log_every=1,
        out_dir=str(out),
    )
    return TrainConfig(**{**base, **changes})


def _command(out: Path) -> list[str]:
    sets = [arg for k, v in ARCH.items() for arg in ("--set", f"{k}={v}")]
    return [
        sys.executable, "-m", "rgflow", "train", "--preset", "tiny", "--data", "msds1",
        *sets, "--train-size", "96", "--test-size", "16", "--batch-size", "8",
        "--epochs", "3", "--max-steps", str(STEPS), "--checkpoint-every", "1",
        "--log-every", "1", "--quiet", "--out", str(out),
    ]  # fmt: skip


def _records(path: Path) -> list[dict]:
    return read_log(path) if path.exists() else []


def _wait_for_checkpoint(proc: subprocess.Popen, log: Path, seen: int, step: int) -> None:
    """Block until a checkpoint at ``step`` or later is logged after the first ``seen`` lines."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        fresh = _records(log)[seen:]
        if any(r["event"] == "checkpoint" and r["step"] >= step for r in fresh):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"no checkpoint at step {step} within 300 s")


def _assert_every_file_is_complete(out: Path) -> None:
    """What a kill leaves: complete files, plus at most a temporary file (never renamed)."""
    for path in out.iterdir():
        if path.name.startswith("."):
            assert path.name.endswith((".tmp", ".tmp.png")), path
            continue
        assert path.name in FINAL_FILES, path
    for record in _records(out / "log.jsonl"):  # every line parses: no half-written record
        assert "event" in record
    if (out / "checkpoint.pt").exists():
        assert load_checkpoint(out / "checkpoint.pt").optimizer is not None
    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())


def _losses(log: Path) -> dict[int, set[float]]:
    """Every logged loss of each step (a step redone after a resume is logged again)."""
    losses: dict[int, set[float]] = {}
    for r in _records(log):
        if r["event"] == "train":
            losses.setdefault(r["step"], set()).add(r["bpd"])
    return losses


@pytest.fixture
def one_thread():
    """One intra-op thread here and in the subprocesses, so float sums agree bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    torch.set_num_threads(threads)


def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(
    tmp_path, monkeypatch, one_thread
) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))
    env = {**one_thread, "RGFLOW_CACHE": str(tmp_path / "cache")}
    reference = train(_config(tmp_path / "straight"), progress=False)

    out = tmp_path / "crashed"
    log = out / "log.jsonl"
    rng = random.Random(6)
    kills = [rng.randint(3, 7), rng.randint(11, 15), rng.randint(19, 23)]  # checkpoint steps
    for target in kills:
        seen = len(_records(log))
        proc = subprocess.Popen(
            _command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        _wait_for_checkpoint(proc, log, seen, target)
        time.sleep(rng.uniform(0, 0.1))  # land anywhere: a step, an evaluation, a write
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        proc.stderr.close()
        _assert_every_file_is_complete(out)
        resumed_from = load_checkpoint(out / "checkpoint.pt").train["step"]
        assert resumed_from >= target

    result = train(_config(out), progress=False)  # the last resume runs to the end

    events = [r["event"] for r in _records(log)]
    assert events.count("resume") == 3 and events[-1] == "stop"
    straight = _losses(tmp_path / "straight" / "log.jsonl")
    crashed = _losses(log)
    assert sorted(crashed) == list(range(1, STEPS + 1))
    assert crashed == straight  # step for step, including steps redone after a kill
    assert result["test_bpd"] == reference["test_bpd"]
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(out / "checkpoint.pt")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    moments_a = [t for s in a.optimizer["state"].values() for t in s.values()]
    moments_b = [t for s in b.optimizer["state"].values() for t in s.values()]
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # temporaries gone
    assert {p.name for p in out.iterdir()} == FINAL_FILES


# ----------------------------------------------------------------------------------------
# Non-finite losses


def _poison_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the loss of one training step NaN (through its logit log-det)."""
    real = train_module.logit_transform
    calls = [0]

    def poisoned(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls[0] += 1
        y, logdet = real(x)
        if calls[0] == step:
            logdet = torch.full_like(logdet, float("nan"))
        return y, logdet

    monkeypatch.setattr(train_module, "logit_transform", poisoned)


def test_a_nan_loss_stops_with_its_step_and_the_last_good_checkpoint(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))
    _poison_step(monkeypatch, 5)
    config = _config(tmp_path / "run", checkpoint_every=2, max_steps=8)
    with pytest.raises(NonFiniteLossError) as caught:
        train(config, progress=False)
    message = str(caught.value)
    assert "at step 5" in message
    assert f"{tmp_path / 'run' / 'checkpoint.pt'} (step 4)" in message
    assert "nonfinite='skip'" in message and "lower the lr" in message.lower()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").train["step"] == 4
    assert read_log(tmp_path / "run" / "log.jsonl")[-1]["event"] == "nonfinite"


def test_a_nan_loss_with_skip_drops_the_batch_and_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))
    _poison_step(monkeypatch, 2)
    config = _config(tmp_path / "run", nonfinite="skip", max_steps=4, checkpoint_every=None)
    with pytest.warns(RuntimeWarning, match="1 batch.*non-finite.*skipped"):
        result = train(config, progress=False)
    assert result["skipped_batches"] == 1 and result["steps"] == 4
    records = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in records if r["event"] == "skip_nonfinite"] == [2]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 3, 4]
    weights = load_checkpoint(tmp_path / "run" / "checkpoint.pt").model
    assert all(torch.isfinite(w).all() for w in weights.values())
