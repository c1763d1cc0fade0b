"""Training runs end to end: logs, checkpoints, exact resume, test bits/dim, the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rgflow.checkpoints import load_checkpoint, load_model
from rgflow.cli import main
from rgflow.train import NonFiniteLossError, TrainConfig, read_log, train

SMALL = {"n_hidden": 8, "n_layers": 1, "n_resblocks": 1, "n_mlp": 1}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))


def _config(tmp_path, name: str = "run", **changes) -> TrainConfig:
    base = dict(
        preset="tiny",
        dataset="msds1",
        model=SMALL,
        train_size=96,
        test_size=32,
        batch_size=16,
        max_steps=4,
        out_dir=str(tmp_path / name),
        log_every=1,
        epochs=2,
    )
    return TrainConfig(**{**base, **changes})


def test_a_short_run_writes_logs_checkpoint_samples_and_metrics(tmp_path) -> None:
    result = train(_config(tmp_path), progress=False)
    out = tmp_path / "run"
    assert result["steps"] == 4 and 0 < result["test_bpd"] < 12
    assert (out / "samples.png").stat().st_size > 0
    events = [r["event"] for r in read_log(out / "log.jsonl")]
    assert events[0] == "start" and events[-1] == "stop" and "eval" in events
    assert json.loads((out / "metrics.json").read_text())["test_bpd"] == result["test_bpd"]
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck.train["step"] == 4 and ck.optimizer is not None


def test_an_epoch_ends_with_a_test_evaluation(tmp_path) -> None:
    train(_config(tmp_path, max_steps=None, epochs=2), progress=False)  # 6 batches per epoch
    evals = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r["event"] == "eval"]
    assert [e["step"] for e in evals] == [6, 12]


def test_resume_continues_exactly_where_the_checkpoint_left_off(tmp_path) -> None:
    straight = train(_config(tmp_path, "a", max_steps=8), progress=False)
    train(_config(tmp_path, "b", max_steps=5), progress=False)
    resumed = train(_config(tmp_path, "b", max_steps=8), progress=False)

    def losses(name):
        return [r["bpd"] for r in read_log(tmp_path / name / "log.jsonl") if r["event"] == "train"]

    assert losses("a") == losses("b")  # step for step, across the resume
    assert resumed["test_bpd"] == straight["test_bpd"]
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt").model
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt").model
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path) -> None:
    train(_config(tmp_path, max_steps=1), progress=False)
    with pytest.raises(Exception, match="seed"):
        train(_config(tmp_path, max_steps=2, seed=1), progress=False)


def test_same_seed_same_losses(tmp_path) -> None:
    train(_config(tmp_path, "x"), progress=False)
    train(_config(tmp_path, "y"), progress=False)
    logs = [
        [r["bpd"] for r in read_log(tmp_path / n / "log.jsonl") if r["event"] == "train"]
        for n in ("x", "y")
    ]
    assert logs[0] == logs[1]


def test_a_nan_loss_stops_with_the_step_and_last_checkpoint(tmp_path) -> None:
    config = _config(tmp_path, lr=1e30, max_steps=30)
    with pytest.raises(NonFiniteLossError, match="at step"):
        train(config, progress=False)


def test_the_cli_trains_and_prints_test_bits_per_dim(tmp_path, capsys) -> None:
    code = main(
        [
            "train",
            "--preset",
            "tiny",
            "--data",
            "msds2",
            "--set",
            "n_hidden=8",
            "--set",
            "n_layers=1",
            "--set",
            "n_resblocks=1",
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--train-size",
            "32",
            "--test-size",
            "16",
            "--out",
            str(tmp_path / "cli"),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test bits/dim" in printed
    model = load_model(tmp_path / "cli" / "checkpoint.pt")
    assert model.config.n_hidden == 8


def test_the_cli_explains_bad_options(tmp_path, capsys) -> None:
    assert main(["train", "--data", "nope", "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--preset", "huge"])


@pytest.mark.slow  # tracing and code generation: about a minute
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_a_compiled_run_takes_the_same_steps(tmp_path) -> None:
    """compile=True changes the speed, not the training: the same losses step by step."""
    eager = train(_config(tmp_path, "eager", max_steps=3, epochs=1), progress=False)
    torch._dynamo.reset()
    compiled_config = _config(tmp_path, "compiled", max_steps=3, epochs=1, compile=True)
    compiled = train(compiled_config, progress=False)

    losses = {
        name: [r["bpd"] for r in read_log(tmp_path / name / "log.jsonl") if r["event"] == "train"]
        for name in ("eager", "compiled")
    }
    assert len(losses["eager"]) == 3
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4)
    assert compiled["test_bpd"] == pytest.approx(eager["test_bpd"], rel=1e-4)


def test_compile_without_a_cpp_compiler_stops_before_training(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("rgflow.train.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler.*apt-get install g\\+\\+"):
        train(_config(tmp_path, compile=True), progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
