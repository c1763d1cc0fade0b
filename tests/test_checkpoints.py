"""Save/load: same log_prob, CUDA-saved files on a CPU machine, refusals with clear reasons."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from conftest import randomize_

from rgflow.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_state_into,
    save_checkpoint,
)
from rgflow.model import RGFlow, RGFlowConfig


@pytest.fixture
def saved(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = randomize_(RGFlow(tiny_config))
    path = save_checkpoint(tmp_path / "ck.pt", model, metrics={"test_bpd": 1.5})
    return model, path


def test_save_then_load_gives_the_same_log_prob(saved) -> None:
    model, path = saved
    y = torch.randn(4, 1, 8, 8)
    loaded = load_model(path)
    assert loaded.config == model.config
    torch.testing.assert_close(loaded.log_prob(y), model.log_prob(y), rtol=0, atol=0)
    ck = load_checkpoint(path)
    assert ck.metrics == {"test_bpd": 1.5}
    assert ck.versions["torch"] == torch.__version__


def test_a_checkpoint_saved_on_cuda_loads_on_the_cpu(tmp_path, tiny_config) -> None:
    """Tag every storage as cuda:0 while saving, as a GPU run would write them."""
    model = randomize_(RGFlow(tiny_config))

    def tag_as_cuda(obj):
        return "cuda:0" if getattr(obj, "device", torch.device("cpu")).type == "cpu" else None

    registry = torch.serialization._package_registry
    entry = (0, tag_as_cuda, lambda obj, location: None)
    registry.insert(0, entry)
    try:
        path = save_checkpoint(tmp_path / "gpu.pt", model)
    finally:
        registry.remove(entry)

    with pytest.raises(RuntimeError):  # a plain load really needs CUDA
        torch.load(path, weights_only=True)
    loaded = load_model(path)  # maps to the CPU
    y = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded.log_prob(y), model.log_prob(y))


def test_loading_into_another_config_is_an_error(saved) -> None:
    _, path = saved
    other = RGFlow(
        RGFlowConfig(
            image_size=8,
            channels=1,
            n_layers=2,
            n_resblocks=2,
            n_mlp=1,
            n_hidden=16,
            prior="gaussian",
        )
    )
    with pytest.raises(CheckpointError, match="prior: checkpoint 'laplace' vs model 'gaussian'"):
        load_state_into(other, load_checkpoint(path))


def test_truncated_file_is_refused(saved, tmp_path) -> None:
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(bad)


def test_missing_file_says_how_to_get_one(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="rgflow train"):
        load_checkpoint(tmp_path / "nope.pt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, saved) -> None:
    model, _ = saved
    marker = tmp_path / "PWNED"
    state = {
        "format": "rgflow-checkpoint",
        "format_version": 1,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "x": _Payload(),
    }
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(path)
    finally:
        os.chdir(cwd)
    assert not marker.exists()


def test_foreign_and_future_files_are_refused(tmp_path, saved) -> None:
    model, _ = saved
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    with pytest.raises(CheckpointError, match="not an rgflow checkpoint"):
        load_checkpoint(plain)
    future = tmp_path / "future.pt"
    torch.save(
        {"format": "rgflow-checkpoint", "format_version": 99, "config": {}, "model": {}}, future
    )
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(future)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps([1, 2, 3]) * 3)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
