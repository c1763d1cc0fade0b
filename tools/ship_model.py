"""Package a finished training run as a shipped model: weights only, checksum, registry entry.

    python tools/ship_model.py runs/shipped/msds1-laplace --name msds1-laplace

Writes rgflow/weights/<name>.pt (the checkpoint without optimizer state) and records its
SHA-256, the exact training command, seed, steps, wall time and test bits/dim in
rgflow/weights/registry.json, which rgflow.checkpoints.load_pretrained checks on load.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from rgflow.checkpoints import load_checkpoint, save_checkpoint, sha256
from rgflow.model import RGFlow
from rgflow.train import TrainConfig, read_log

WEIGHTS = Path("rgflow/weights")


def command_line(config: TrainConfig) -> str:
    """The `python -m rgflow train` command that reproduces a run."""
    args = [
        "python",
        "-m",
        "rgflow",
        "train",
        "--preset",
        config.preset,
        "--data",
        config.dataset,
        "--epochs",
        str(config.epochs),
        "--seed",
        str(config.seed),
        "--out",
        config.out_dir,
    ]
    if config.prior:
        args += ["--prior", config.prior]
    for flag, value in (
        ("--max-steps", config.max_steps),
        ("--max-minutes", config.max_minutes),
        ("--test-size", config.test_size),
        ("--train-size", config.train_size),
        ("--batch-size", config.batch_size),
    ):
        if value is not None:
            args += [flag, str(value)]
    for key, value in config.model.items():
        args += ["--set", f"{key}={value}"]
    if config.hflip:
        args.append("--hflip")

    return shlex.join(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    ck = load_checkpoint(args.run / "checkpoint.pt")
    config = TrainConfig.from_dict(ck.train["config"])
    model = RGFlow(ck.config)
    model.load_state_dict(ck.model)
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(
        WEIGHTS / f"{args.name}.pt",
        model,
        train={"config": ck.train["config"], "step": ck.train["step"]},
        metrics=ck.metrics,
    )

    stop = [r for r in read_log(args.run / "log.jsonl") if r["event"] == "stop"][-1]
    registry_path = WEIGHTS / "registry.json"
    registry = json.loads(registry_path.read_text()) if registry_path.exists() else {"models": {}}
    registry["models"][args.name] = {
        "file": path.name,
        "sha256": sha256(path),
        "dataset": config.dataset,
        "prior": ck.config.prior,
        "preset": config.preset,
        "parameters": model.num_parameters(),
        "steps": ck.train["step"],
        "seed": config.seed,
        "wall_seconds": stop["wall_seconds"],
        "test_bpd": ck.metrics["test_bpd"],
        "test_images": ck.metrics["test_images"],
        "command": command_line(config),
        "threads": "OMP_NUM_THREADS=1, two streams at once on 2 cores (tools/train_shipped.sh)",
    }
    registry_path.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    print(json.dumps(registry["models"][args.name], indent=2))


if __name__ == "__main__":
    main()
