"""Command line: ``python -m rgflow {train,eval,sample,info,figures}`` (or ``rgflow ...``).

Arguments are parsed only inside :func:`main`; importing this module does nothing.

Examples::

    python -m rgflow train --preset small --data msds1 --max-minutes 10 --out runs/msds1
    python -m rgflow train --preset small --data fashion-mnist --out runs/fmnist
    python -m rgflow train --preset tiny --data msds2 --set n_hidden=32 --prior gaussian
    torchrun --nproc_per_node 4 -m rgflow train --preset celeba32 --data celeba32 \
        --data-root /data --device cuda --out runs/celeba   # one process per GPU
    python -m rgflow eval runs/msds1/checkpoint.pt --data msds1
    python -m rgflow sample msds1-laplace --temperature 0.8 --out samples.png
    python -m rgflow info
    python -m rgflow figures                      # every notebook, in place
    python -m rgflow figures 04 -p profile=paper -p device=cuda
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _override(text: str) -> tuple[str, object]:
    """Parse ``name=value`` (value as a Python literal, e.g. 64 or (4,3,2,1))."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes name=value, got {text!r}")
    name, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    if isinstance(parsed, list):
        parsed = tuple(parsed)

    return name.strip(), parsed


def build_parser() -> argparse.ArgumentParser:
    from .model import PRESETS

    parser = argparse.ArgumentParser(prog="rgflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume) a model")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--data", default="msds1", help="dataset name (see `rgflow info`)")
    p.add_argument("--data-root", default=None, help="folder of an on-disk dataset")
    p.add_argument("--prior", default=None, choices=["laplace", "gaussian"])
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="NAME=VALUE",
        help="architecture override, e.g. n_hidden=64",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--clip-grad", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<data>-<preset>)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--hflip", action="store_true", help="random horizontal flips")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step's log_prob (needs g++; first step takes minutes)",
    )
    p.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="drop batches with a NaN/inf loss instead of stopping",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists in --out"
    )
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="also checkpoint every STEPS optimizer steps",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("eval", help="test bits/dim of a checkpoint or shipped model")
    p.add_argument("model", help="checkpoint path or shipped model name")
    p.add_argument("--data", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("sample", help="write a grid of samples as PNG")
    p.add_argument("model", help="checkpoint path or shipped model name")
    p.add_argument("--out", default="samples.png")
    p.add_argument("-n", type=int, default=64)
    p.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=[1.0],
        help="one temperature, or one per level (finest first)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")

    sub.add_parser("info", help="presets, datasets and shipped models")
    sub.add_parser("figures", help="run the figure notebooks (see `rgflow figures -h`)")
    parser.commands = sub.choices  # type: ignore[attr-defined]  # name -> its parser

    return parser


def _reject_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Exit (code 2) naming the unknown arguments, the closest options and the usage."""
    sub = parser.commands[command]  # type: ignore[attr-defined]
    options = re.findall(r"--[\w-]+", sub.format_usage())
    names = [arg.split("=")[0] for arg in unknown]
    close = [m for name in names for m in difflib.get_close_matches(name, options, n=1)]
    hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
    sub.error(
        f"unrecognized arguments: {' '.join(unknown)}{hint} "
        f"(`rgflow {command} -h` lists every option)"
    )


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        preset=args.preset,
        dataset=args.data,
        data_root=args.data_root,
        prior=args.prior,
        model=dict(args.overrides),
        epochs=args.epochs,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        clip_grad=args.clip_grad,
        seed=args.seed,
        out_dir=args.out or f"runs/{args.data}-{args.preset}",
        device=args.device,
        train_size=args.train_size,
        test_size=args.test_size,
        hflip=args.hflip,
        log_every=args.log_every,
        checkpoint_minutes=args.checkpoint_minutes,
        checkpoint_every=args.checkpoint_every,
        nonfinite="skip" if args.skip_nonfinite else "stop",
        resume=not args.no_resume,
        precision=args.precision,
        compile=args.compile,
    )
    result = train(config, progress=not args.quiet)
    if result.get("processes", 1) > 1 and os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    print(
        f"test bits/dim {result['test_bpd']:.4f} on {result['test_images']} {args.data} test "
        f"images after {result['steps']} steps ({result['wall_seconds']:.0f} s, "
        f"{result['parameters']:,} parameters)"
    )
    print(f"samples: {result['samples']}\ncheckpoint: {result['checkpoint']}")
    if result.get("skipped_batches"):
        print(f"skipped {result['skipped_batches']} batch(es) with a non-finite loss")

    return 0


def _eval(args: argparse.Namespace) -> int:
    from .checkpoints import load_model
    from .data import load_dataset
    from .train import evaluate

    model = load_model(args.model, device=args.device)
    data = load_dataset(args.data, args.split, args.data_root, size=args.size)
    bpd = evaluate(model, data.images, seed=args.seed, progress=True)
    print(
        json.dumps(
            {
                "model": args.model,
                "data": args.data,
                "split": args.split,
                "images": len(data),
                "bits_per_dim": round(bpd, 5),
            }
        )
    )

    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .checkpoints import load_model
    from .plots import save_image_grid

    model = load_model(args.model, device=args.device)
    t = args.temperature[0] if len(args.temperature) == 1 else tuple(args.temperature)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    with torch.no_grad():
        pixels = model.decode(model.sample_latents(args.n, t, generator=g))
    print(save_image_grid(pixels, args.out))

    return 0


def _info(_: argparse.Namespace) -> int:
    from .checkpoints import shipped_models
    from .data import DATASETS
    from .model import PRESETS

    print("presets:")
    for name, preset in PRESETS.items():
        print(f"  {name:10s} {preset.description}")
    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:14s} {info.description}")
    print("shipped models:")
    for name, record in shipped_models().items():
        print(f"  {name:22s} test bits/dim {record.get('test_bpd', '?')}")

    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["figures"]:  # the notebook runner has its own options
        from .figures import main as figures_main

        return figures_main(argv[1:])
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _reject_unknown(parser, args.command, unknown)
    handlers = {"train": _train, "eval": _eval, "sample": _sample, "info": _info}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError, ArithmeticError) as err:
        print(f"rgflow {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
