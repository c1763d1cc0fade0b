"""Every bad input a user can give, in one table: the error type, and a message that names
the problem and says what to do.

Each row is (id, action, exception, problem, remedy): ``action(tmp_path)`` must raise
``exception`` with a message matching both regular expressions (case-insensitive). The rows
cover the model and its config, pixels and latents, datasets on disk, presets and options
(library and command line), notebook parameters, and damaged or foreign checkpoints.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import randomize_
from PIL import Image

from rgflow.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_state_into,
    save_checkpoint,
)
from rgflow.cli import main
from rgflow.data import DatasetFormatError, DatasetNotFoundError, load_dataset
from rgflow.lattice import LatticeError
from rgflow.model import RGFlow, RGFlowConfig, get_preset
from rgflow.nbtools import check_parameters, load_flow
from rgflow.preprocess import PixelError
from rgflow.train import TrainConfig, train

TINY = dict(image_size=8, channels=1, kernel=4, n_layers=1, n_resblocks=1, n_mlp=1, n_hidden=8)


class CliError(Exception):
    """The command line exited with an error; the message is what it printed on stderr."""


def _cli(*argv: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
    if code:
        raise CliError(f"exit {code}: {err.getvalue()}")


def _flow() -> RGFlow:
    torch.manual_seed(0)
    return RGFlow(RGFlowConfig(**TINY))


def _pixels(channels: int = 1, dtype: torch.dtype = torch.uint8, high: int = 256) -> torch.Tensor:
    return torch.randint(0, high, (2, channels, 8, 8)).to(dtype)


def _with(value: float) -> torch.Tensor:
    """Normal noise (2, 1, 8, 8) with one entry set to ``value``."""
    y = torch.randn(2, 1, 8, 8)
    y[1, 0, 3, 4] = value
    return y


# ----------------------------------------------------------------------------------------
# Files on disk


def _celeba(root: Path, partition: str | None, jpeg: str = "whole") -> Path:
    """A CelebA folder in torchvision's layout with one 178x218 JPEG, listed as train."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    path = folder / "img_align_celeba" / "000001.jpg"
    Image.new("RGB", (178, 218), (120, 60, 30)).save(path, quality=90)
    if jpeg == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    if partition is not None:
        (folder / "list_eval_partition.txt").write_text(partition)
    return root


def _load_celeba(root: Path) -> None:
    load_dataset("celeba32", "train", root, cache_dir=root / "cache")


def _saved(tmp: Path, edit: Callable[[dict], None]) -> Path:
    """A real checkpoint of the tiny model, re-saved after ``edit`` changed its content."""
    path = save_checkpoint(tmp / "ck.pt", randomize_(_flow()))
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    return path


def _rename_a_key(state: dict) -> None:
    key = next(iter(state["model"]))
    state["model"]["renamed." + key] = state["model"].pop(key)


def _load_into_its_model(path: Path) -> None:
    checkpoint = load_checkpoint(path)
    load_state_into(RGFlow(checkpoint.config), checkpoint)


def _truncated_checkpoint(tmp: Path) -> Path:
    path = save_checkpoint(tmp / "ck.pt", _flow())
    path.write_bytes(path.read_bytes()[:1000])
    return path


# ----------------------------------------------------------------------------------------
# The table

Case = tuple[str, Callable[[Path], object], type[BaseException], str, str]

CASES: list[Case] = [
    # -- the lattice: image side and kernel
    ("side-28-not-m2k", lambda t: RGFlowConfig(image_size=28), LatticeError,
     r"image side L=28 must be m \* 2\^k", r"resize or pad"),
    ("side-24-not-m2k", lambda t: RGFlowConfig(image_size=24), LatticeError,
     r"L=24 must be m \* 2\^k", r"e\.g\. 4, 8, 16, 32"),
    ("side-below-kernel", lambda t: RGFlowConfig(image_size=2), LatticeError,
     r"L=2 must be m \* 2\^k", r"pick another kernel"),
    ("kernel-odd", lambda t: RGFlowConfig(image_size=12, kernel=3), LatticeError,
     r"kernel m=3 must be an even integer", r"use m=4"),
    ("kernel-float", lambda t: RGFlowConfig(kernel=4.0), LatticeError,
     r"must be integers", r"4\.0"),
    ("per-level-count", lambda t: RGFlowConfig(n_layers=(1, 2)), ValueError,
     r"gives 2 levels.*has 4", r"one number or one per level"),
    ("channels-zero", lambda t: RGFlowConfig(channels=0), ValueError,
     r"channels must be a positive integer", r"got 0"),
    # -- inputs of the flow: shape, channels, dtype, range, NaN and inf
    ("y-3-channels", lambda t: _flow()(torch.randn(2, 3, 8, 8)), ValueError,
     r"shape \(B, 1, 8, 8\).*got \(2, 3, 8, 8\)", r"use a model built for it"),
    ("pixels-3-channels", lambda t: _flow().encode(_pixels(3)), PixelError,
     r"model has 1 channel.*pixels have 3", r"use a model trained on 3-channel data"),
    ("pixels-16x16", lambda t: _flow().bits_per_dim(torch.zeros(2, 1, 16, 16, dtype=torch.uint8)),
     PixelError, r"takes 8x8 images but got 16x16", r"resize or crop"),
    ("pixels-no-batch-dim", lambda t: _flow().encode(_pixels()[0]), PixelError,
     r"shape \(B, C, L, L\), got \(1, 8, 8\)", r"pixels\[None\]"),
    ("pixels-numpy", lambda t: _flow().encode(_pixels().numpy()), PixelError,
     r"must be a torch\.Tensor, got ndarray", r"torch\.as_tensor\(pixels\)"),
    ("pixels-float-0-1", lambda t: _flow().encode(torch.rand(2, 1, 8, 8)), PixelError,
     r"uint8 in 0\.\.255, got dtype torch\.float32", r"\(x \* 255\)\.round\(\)"),
    ("pixels-float-0-255", lambda t: _flow().encode(_pixels(dtype=torch.float32)), PixelError,
     r"floats in 0\.\.255", r"x\.round\(\)\.to\(torch\.uint8\)"),
    ("pixels-int64-in-range", lambda t: _flow().encode(_pixels(dtype=torch.int64)), PixelError,
     r"got dtype torch\.int64", r"pixels\.to\(torch\.uint8\)"),
    ("pixels-int64-out-of-range",
     lambda t: _flow().encode(_pixels(dtype=torch.int64, high=1024)), PixelError,
     r"does not fit in 0\.\.255", r"rescale them to 8 bits"),
    ("pixels-float-nan", lambda t: _flow().encode(_with(float("nan"))), PixelError,
     r"uint8.*NaN or inf", r"fix those first"),
    ("y-uint8", lambda t: _flow()(_pixels()), TypeError,
     r"must be floating point, got torch\.uint8", r"use encode\(\) or log_prob_pixels\(\)"),
    ("y-float16", lambda t: _flow()(torch.randn(2, 1, 8, 8).half()), TypeError,
     r"torch\.float16 but the model is torch\.float32", r"y\.to\(torch\.float32\)"),
    ("y-float64", lambda t: _flow().log_prob(torch.randn(2, 1, 8, 8).double()), TypeError,
     r"torch\.float64 but the model is torch\.float32", r"model\.to\(torch\.float64\)"),
    ("y-nan", lambda t: _flow().log_prob(_with(float("nan"))), ValueError,
     r"y holds 1 NaN or infinite value", r"drop those images"),
    ("y-inf", lambda t: _flow()(_with(float("inf"))), ValueError,
     r"y holds 1 NaN or infinite", r"find where they came from"),
    ("z-nan-decode", lambda t: _flow().decode(_with(float("nan"))), ValueError,
     r"z holds 1 NaN or infinite", r"drop those"),
    ("z-list", lambda t: _flow().inverse([[0.0]]), TypeError,
     r"z must be a torch\.Tensor, got list", r"torch\.as_tensor\(z"),
    ("temperature-text", lambda t: _flow().sample(2, "hot"), TypeError,
     r"temperature must be a number", r"one per level"),
    ("temperature-negative", lambda t: _flow().sample(2, -1.0), ValueError,
     r"temperature must be finite and > 0, got -1", r"T = 1 is the trained prior"),
    ("temperature-per-level-count", lambda t: _flow().sample(2, [1.0, 1.0, 1.0]), ValueError,
     r"one per level \(2 for this model\), got 3", r"give one temperature"),
    # -- datasets on disk
    ("mnist-folder-missing", lambda t: load_dataset("mnist", "train", t / "nope"),
     DatasetNotFoundError, r"no train-images-idx3-ubyte", r"pass root="),
    ("cifar10-folder-empty", lambda t: load_dataset("cifar10", "train", t), DatasetNotFoundError,
     r"no data_batch_1", r"Expected layout.*Pass root="),
    ("celeba-folder-empty", lambda t: _load_celeba(t), DatasetNotFoundError,
     r"holds img_align_celeba/ or list_eval_partition\.txt", r"Pass root="),
    ("celeba-no-root", lambda t: load_dataset("celeba32", "train"), DatasetNotFoundError,
     r"no root given", r"Pass root="),
    ("celeba-no-partition-file", lambda t: _load_celeba(_celeba(t, None)), DatasetNotFoundError,
     r"partition file .*list_eval_partition\.txt is missing", r"copy list_eval_partition\.txt"),
    ("celeba-empty-partition-file", lambda t: _load_celeba(_celeba(t, "")), DatasetFormatError,
     r"train split .* holds no images", r"check them against the expected layout"),
    ("celeba-bad-partition-line", lambda t: _load_celeba(_celeba(t, "000001.jpg train\n")),
     DatasetFormatError, r"line 1: expected '<image>\.jpg <0\|1\|2>'", r"got '000001\.jpg train'"),
    ("celeba-truncated-jpeg",
     lambda t: _load_celeba(_celeba(t, "000001.jpg 0\n", jpeg="truncated")), DatasetFormatError,
     r"000001\.jpg .*truncated or damaged", r"restore it from the CelebA distribution"),
    ("celeba-listed-jpeg-missing", lambda t: _load_celeba(_celeba(t, "000002.jpg 0\n")),
     DatasetNotFoundError, r"000002\.jpg is listed .* but missing", r"restore it"),
    ("dataset-unknown", lambda t: load_dataset("celeba"), ValueError,
     r"unknown dataset 'celeba'", r"known datasets: msds1"),
    ("split-unknown", lambda t: load_dataset("msds1", "validation"), ValueError,
     r"unknown split 'validation'", r"choose one of train, test"),
    # -- presets and options, in the library
    ("preset-unknown", lambda t: get_preset("huge"), ValueError,
     r"unknown preset 'huge'", r"choose one of \['celeba32'"),
    ("train-preset-unknown", lambda t: TrainConfig(preset="medium"), ValueError,
     r"unknown preset 'medium'", r"choose one of"),
    ("prior-unknown", lambda t: RGFlowConfig(prior="cauchy"), ValueError,
     r"unknown prior 'cauchy'", r"choose one of \['gaussian', 'laplace'\]"),
    ("model-option-unknown", lambda t: TrainConfig(model={"width": 64}), ValueError,
     r"unknown model option\(s\) \['width'\]", r"n_hidden"),
    ("model-option-not-dict", lambda t: TrainConfig(model=64), ValueError,
     r"model must be a dict", r"\{'n_hidden': 64\}"),
    ("train-option-unknown", lambda t: TrainConfig.from_dict({"epochz": 3}), ValueError,
     r"unknown TrainConfig option\(s\) \['epochz'\]", r"check the spelling"),
    ("nonfinite-option", lambda t: TrainConfig(nonfinite="ignore"), ValueError,
     r"nonfinite must be 'stop' or 'skip', got 'ignore'", r"'stop' or 'skip'"),
    ("precision-option", lambda t: TrainConfig(precision="fp16"), ValueError,
     r"precision must be 'float32' or 'bfloat16', got 'fp16'", r"'bfloat16'"),
    ("batch-size-zero", lambda t: TrainConfig(batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0", r"positive integer"),
    ("epochs-bool", lambda t: TrainConfig(epochs=True), ValueError,
     r"epochs must be a positive integer, got True", r"positive integer"),
    ("checkpoint-every-float", lambda t: TrainConfig(checkpoint_every=2.5), ValueError,
     r"checkpoint_every must be a positive integer, got 2\.5", r"positive integer"),
    ("lr-negative", lambda t: TrainConfig(lr=-1.0), ValueError,
     r"lr must be a positive number, got -1", r"positive number"),
    # -- presets and options, on the command line
    ("cli-option-unknown", lambda t: _cli("train", "--epochz", "3"), CliError,
     r"unrecognized arguments: --epochz 3", r"did you mean --epochs.*rgflow train -h"),
    ("cli-preset-unknown", lambda t: _cli("train", "--preset", "huge"), CliError,
     r"invalid choice: 'huge'", r"choose from"),
    ("cli-set-syntax", lambda t: _cli("train", "--set", "n_hidden"), CliError,
     r"--set takes name=value, got 'n_hidden'", r"name=value"),
    ("cli-set-unknown", lambda t: _cli("train", "--set", "width=3", "--out", str(t)), CliError,
     r"unknown model option\(s\) \['width'\]", r"--set n_hidden=64"),
    ("cli-dataset-unknown", lambda t: _cli("train", "--data", "imagenet", "--out", str(t)),
     CliError, r"unknown dataset 'imagenet'", r"known datasets"),
    ("cli-command-unknown", lambda t: _cli("fit"), CliError,
     r"invalid choice: 'fit'", r"choose from"),
    # -- notebook parameters (papermill -p)
    ("nb-profile-value", lambda t: check_parameters("fast"), ValueError,
     r"profile must be one of \['paper', 'smoke'\], got 'fast'", r"'smoke'"),
    ("nb-profile-type", lambda t: check_parameters(["smoke"]), ValueError,
     r"profile must be a string, got list", r"parameters cell"),
    ("nb-prior-type", lambda t: check_parameters("smoke", prior=1), ValueError,
     r"prior must be a string, got int", r"papermill -p prior"),
    ("nb-prior-value", lambda t: check_parameters("smoke", prior="cauchy"), ValueError,
     r"prior must be one of", r"'laplace', 'gaussian'"),
    ("nb-seed-type", lambda t: check_parameters("smoke", seed="0"), ValueError,
     r"seed must be a non-negative integer, got '0'", r"non-negative integer"),
    ("nb-seed-negative", lambda t: check_parameters("smoke", seed=-1), ValueError,
     r"seed must be a non-negative integer, got -1", r"non-negative integer"),
    ("nb-device-value", lambda t: check_parameters("smoke", device="gpu"), ValueError,
     r"got 'gpu'", r"like 'cpu' or 'cuda:0'"),
    ("nb-dataset-value", lambda t: check_parameters("smoke", dataset="celeb"), ValueError,
     r"dataset must be one of .*got 'celeb'", r"'celeba32'"),
    ("nb-dataset-type", lambda t: check_parameters("smoke", dataset=["msds1"]), ValueError,
     r"dataset must be a string, got list", r"parameters cell"),
    ("nb-checkpoint-missing", lambda t: load_flow("msds1", checkpoint=t / "none.pt"),
     FileNotFoundError, r"no checkpoint at .*none\.pt", r"python -m rgflow train"),
    # -- damaged or foreign checkpoints (weights-only loading; see also test_checkpoints)
    ("ckpt-truncated-cli", lambda t: _cli("sample", str(_truncated_checkpoint(t))), CliError,
     r"damaged or not a checkpoint", r"use an earlier checkpoint or train again"),
    ("ckpt-other-version-keys",
     lambda t: _load_into_its_model(_saved(t, _rename_a_key)), CheckpointError,
     r"does not fit an RGFlow.*unexpected renamed\.", r"load it with that version, or retrain"),
    ("ckpt-format-version-text",
     lambda t: load_checkpoint(_saved(t, lambda s: s.update(format_version="1"))),
     CheckpointError, r"unknown checkpoint format version '1'", r"not written by rgflow"),
    ("ckpt-config-field-unknown",
     lambda t: load_checkpoint(_saved(t, lambda s: s["config"].update(depth=3))),
     CheckpointError, r"invalid model config.*unknown RGFlowConfig fields \['depth'\]",
     r"load it with the version that wrote it"),
    ("ckpt-model-not-dict",
     lambda t: _load_into_its_model(_saved(t, lambda s: s.update(model=[1, 2]))),
     CheckpointError, r"holds no weights", r"use another checkpoint"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "error", "problem", "remedy"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_input_is_refused_with_a_message_that_says_what_to_do(
    tmp_path, monkeypatch, action, error, problem, remedy
) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # anything a case writes by accident lands here
    with pytest.raises(error) as caught:
        action(tmp_path)
    message = str(caught.value)
    assert re.search(problem, message, re.IGNORECASE | re.DOTALL), message
    assert re.search(remedy, message, re.IGNORECASE | re.DOTALL), message
    assert "Traceback" not in message


def test_the_table_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


# ----------------------------------------------------------------------------------------
# Inputs that need more than one line to set up


class _Payload:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch PAYLOAD_RAN",))


def test_training_refuses_to_resume_from_a_checkpoint_with_a_pickle_payload(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RGFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"format": "rgflow-checkpoint", "payload": _Payload()}, out / "checkpoint.pt")
    config = TrainConfig(
        preset="tiny", model={"n_hidden": 8, "n_layers": 1, "n_resblocks": 1, "n_mlp": 1},
        train_size=16, test_size=8, batch_size=8, max_steps=1, out_dir=str(out),
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="refused to load .*nothing of it was executed"):
        train(config, progress=False)
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_loading_a_missing_checkpoint_says_how_to_make_one(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="rgflow train --out DIR"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize("temperature", [10.0, 1e3, 1e10, 1e30, 1e38])
def test_sampling_at_a_high_temperature_is_finite_or_says_why(temperature: float) -> None:
    flow = randomize_(_flow())
    g = torch.Generator().manual_seed(0)
    try:
        y, log_p = flow.sample(8, temperature, generator=g)
        pixels = flow.decode(flow.sample_latents(8, temperature, generator=g))
    except FloatingPointError as err:
        assert "lower temperature" in str(err), err
        return
    assert not torch.isnan(y).any() and not torch.isnan(log_p).any()
    assert pixels.dtype == torch.uint8


def test_a_huge_temperature_overflow_is_reported() -> None:
    with pytest.raises(FloatingPointError, match=r"temperature 1e\+38 overflow.*lower"):
        randomize_(_flow()).sample(64, 1e38)
