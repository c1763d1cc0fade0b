"""Slider latency of the widget panels: time from a value change to the new image.

Run by hand (not a test); on the machine the panels should feel responsive on:

    OMP_NUM_THREADS=1 python benchmarks/slider_latency.py --checkpoint msds1-laplace
    python benchmarks/slider_latency.py --checkpoint runs/dev/checkpoint.pt --changes 50

For each panel it sets a slider's value ``--changes`` times (after a few warm-up changes) and
times ``slider.value = v`` until it returns: the observers run synchronously, so that is the
time until ``panel.image`` (the numpy array) and the image widget's PNG bytes are both new.
Prints one JSON line per panel (median, p90, max in ms of wall time, and the median CPU time
of the process, which is the latency on idle cores when other jobs share the machine) and
fails if the wall-time median of the latent explorer is not under ``--budget-ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rgflow.data import load_dataset
from rgflow.nbtools import load_flow
from rgflow.widgets import InpaintPanel, LatentExplorer, MixingPanel


def time_changes(
    set_value: Callable[[int], None], changes: int, warmup: int = 5
) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``set_value(n)`` for n = 0 .. changes - 1, after warm-up.

    The CPU time (this process, all threads) is what the wall time would be on otherwise idle
    cores when the update runs on one thread; on a busy machine the wall time is longer.
    """
    for n in range(warmup):
        set_value(-1 - n)
    wall, cpu = [], []
    for n in range(changes):
        started, started_cpu = time.perf_counter(), time.process_time()
        set_value(n)
        wall.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - started_cpu))

    return wall, cpu


def summary(name: str, times: tuple[list[float], list[float]], changed: int) -> dict:
    """Median, p90 and max of the wall times (and the CPU median), with how many redrew."""
    wall, cpu = times

    return {
        "panel": name,
        "changes": len(wall),
        "image_changed": changed,
        "median_ms": round(statistics.median(wall), 1),
        "p90_ms": round(float(np.percentile(wall, 90)), 1),
        "max_ms": round(max(wall), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
        "cpu_p90_ms": round(float(np.percentile(cpu, 90)), 1),
    }


def bench_explorer(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> dict:
    """Move the explorer's sliders to random values; each move decodes once."""
    explorer = LatentExplorer(model, images, level=args.level, top=args.top, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    changed = 0

    def move(n: int) -> None:
        nonlocal changed
        slider = explorer.sliders[n % len(explorer.sliders)]
        before = explorer.image
        slider.value = float(rng.uniform(slider.min, slider.max))
        changed += n >= 0 and not np.array_equal(before, explorer.image)

    times = time_changes(move, args.changes)

    return summary(f"explorer (level {explorer.level.value})", times, changed)


def bench_mixing(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> dict:
    """Step the level cut h through 0 .. H and back; each step decodes once."""
    panel = MixingPanel(model, images, seed=args.seed)
    n_levels = model.lattice.n_levels
    cycle = list(range(n_levels + 1)) + list(range(n_levels - 1, 0, -1))
    changed = 0

    def move(n: int) -> None:
        nonlocal changed
        value = cycle[n % len(cycle)]
        if value == panel.cut.value:
            value = (value + 1) % (n_levels + 1)
        before = panel.image
        panel.cut.value = value
        changed += n >= 0 and not np.array_equal(before, panel.image)

    times = time_changes(move, args.changes)

    return summary("mixing (cut h)", times, changed)


def bench_inpaint(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> dict:
    """Move the hole; each move redraws the masked image and the cone (no decode)."""
    panel = InpaintPanel(model, images, seed=args.seed)
    size = model.config.image_size
    changed = 0

    def move(n: int) -> None:
        nonlocal changed
        slider = panel.hole["row" if n % 2 else "col"]
        before = panel.image
        slider.value = (slider.value + 3) % (size - panel.hole["height"].value)
        changed += n >= 0 and not np.array_equal(before, panel.image)

    times = time_changes(move, args.changes)
    result = summary("inpainting (hole position)", times, changed)
    started = time.perf_counter()
    panel.steps.value = args.fill_steps
    panel.fill()
    result["fill_s"] = round(time.perf_counter() - started, 2)
    result["fill_steps"] = args.fill_steps

    return result


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint path or shipped model name (default: the shipped <dataset>-<prior>)",
    )
    parser.add_argument("--dataset", default="msds1")
    parser.add_argument("--prior", default="laplace")
    parser.add_argument("--changes", type=int, default=50, help="value changes per panel")
    parser.add_argument("--level", type=int, default=None, help="explorer level (default top)")
    parser.add_argument("--top", type=int, default=6, help="sliders in the explorer")
    parser.add_argument("--fill-steps", type=int, default=50, help="inpainting steps, timed once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-ms", type=float, default=100.0)

    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    model, source = load_flow(args.dataset, args.prior, args.checkpoint)
    images = load_dataset(args.dataset, "test", size=16).images
    print(
        json.dumps(
            {
                "model": source,
                "parameters": model.num_parameters(),
                "torch_threads": torch.get_num_threads(),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                "cpus": os.cpu_count(),
            }
        ),
        flush=True,
    )

    results = [
        bench(model, images, args) for bench in (bench_explorer, bench_mixing, bench_inpaint)
    ]
    for result in results:
        print(json.dumps(result), flush=True)
    explorer = results[0]
    if explorer["median_ms"] >= args.budget_ms:
        print(
            f"explorer median {explorer['median_ms']} ms is over the {args.budget_ms} ms budget",
            file=sys.stderr,
        )
        return 1

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
