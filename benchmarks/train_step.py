"""Training-step and sampling throughput of RG-Flow presets, with FLOP accounting.

Run by hand (not a test), ideally on an otherwise idle machine:

    .venv/bin/python benchmarks/train_step.py --preset tiny small celeba32 --path plain fast
    .venv/bin/python benchmarks/train_step.py --preset small --path fast --precision bfloat16
    .venv/bin/python benchmarks/train_step.py --preset tiny --precision float32 bfloat16 \\
        --bpd-steps 150 --data msds1        # test bits/dim after 150 steps of rgflow.train
    python benchmarks/train_step.py --preset celeba32 --path fast --precision float32 bfloat16 \\
        --device cuda --tf32 --steps 10     # on a GPU: fraction of the GPU's matmul rate

Every (preset, path, precision) runs in a fresh subprocess, so that its peak resident memory
is its own. One training step is what ``rgflow.train`` does per batch: dequantise and logit-
transform uint8 images, log p(y) (under bfloat16 autocast if asked), loss = -mean log p / D,
backward, clip the global gradient norm to 1, AdamW.

FLOPs are counted analytically from the architecture, matmuls only (the Swish, masks and
optimizer are O(parameters + activations), well under 1% of the total):

    forward   = sum over RG layers l, s/t-net evaluations and linears (w_in -> w_out) of
                2 N_l w_in w_out,   N_l = B * (blocks of layer l)
    backward  = 2 x forward (dL/d input and dL/d weight, one matmul each)
    step      = 3 x forward; gradient checkpointing (--recompute all) executes one more
                forward, which is not counted as useful work.

``--count-flops`` cross-checks the count with ``torch.utils.flop_counter.FlopCounterMode``
on one step (which counts what actually executes, recomputation included).

The matmul reference is a bare ``torch.mm`` of every (M, K) @ (K, N) shape that the step
performs (forward, dL/dx and dL/dW of every linear), timed in the same process with the
same threads and dtype, weighted by how often the step performs it. Fraction of matmul
rate = achieved useful FLOP/s / (step FLOPs / total bare-matmul time).

``others`` is the CPU (in cores) that other processes used during the timed steps, from
/proc/stat minus this process's own time. With two OpenMP threads on two cores, anything
else running makes a step several times slower: s/step is the median of the steps during
which others used < 0.1 core (of all steps if none was), and ``--wait-idle`` waits for a
quiet machine before each configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from rgflow.fast import set_fast, set_recompute
from rgflow.lattice import RGLattice
from rgflow.model import PRESETS, RGFlow, RGFlowConfig
from rgflow.preprocess import dequantize, logit_transform

# The authors' implementation on 2 CPU cores, batch 64, 32 x 32 x 3 (seconds per step).
REFERENCE_SECONDS = {"celeba32": 19.2, "small": 0.89, "tiny": 0.54}
REFERENCE_BATCH = 64
CLEAN_CORES = 0.1  # a step is uncontended if other processes used less CPU than this

Shape = tuple[int, int, int]  # (M, K, N) of an (M, K) @ (K, N) matmul


# ----------------------------------------------------------------------------------------
# FLOP accounting


def forward_matmuls(config: RGFlowConfig, batch: int) -> Counter[Shape]:
    """The matmuls of one forward pass, as {(M, K, N): count}.

    Every RG layer l runs n_layers subnet layers x 2 half-steps x 2 nets (s, t) x
    n_resblocks residual blocks, each a chain of linears over the widths
    [D, hidden * n_mlp, D] with D = C m^2, on M = B * blocks(l) rows.
    """
    lattice = RGLattice(config.image_size, config.kernel)
    features = config.channels * config.kernel**2
    shapes: Counter[Shape] = Counter()
    for layer in range(lattice.n_layers):
        h = lattice.layer_level(layer)
        rows = batch * lattice.block_indices(layer).shape[0]
        hidden, n_mlp = config.per_level("n_hidden")[h], config.per_level("n_mlp")[h]
        widths = [features] + [hidden] * n_mlp + [features]
        calls = config.per_level("n_layers")[h] * 2 * 2 * config.per_level("n_resblocks")[h]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            shapes[(rows, w_in, w_out)] += calls

    return shapes


def step_matmuls(config: RGFlowConfig, batch: int) -> Counter[Shape]:
    """Forward, dL/dx = dL/dy W and dL/dW = dL/dy^T x for every forward matmul."""
    shapes: Counter[Shape] = Counter()
    for (m, k, n), count in forward_matmuls(config, batch).items():
        shapes[(m, k, n)] += count  # y = x W^T
        shapes[(m, n, k)] += count  # dL/dx
        shapes[(n, m, k)] += count  # dL/dW

    return shapes


def flops(shapes: Counter[Shape]) -> int:
    """2 M K N per matmul."""
    return sum(2 * m * k * n * count for (m, k, n), count in shapes.items())


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_seconds(
    shape: Shape, dtype: torch.dtype, windows: int = 7, device: torch.device | None = None
) -> float:
    """Time of one bare torch.mm of this shape (contiguous operands).

    The median over ``windows`` windows of at least 50 ms each (the resolution of
    /proc/stat is 10 ms); windows during which other processes used the CPU are dropped
    if any clean ones remain.
    """
    device = device or torch.device("cpu")
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    torch.mm(a, b)
    synchronize(device)
    start = time.perf_counter()
    torch.mm(a, b)
    synchronize(device)
    reps = max(1, int(0.05 / max(time.perf_counter() - start, 1e-6)))
    times = []
    for _ in range(windows):
        with OtherLoad() as load:
            for _ in range(reps):
                torch.mm(a, b)
            synchronize(device)
        times.append((load.cores >= CLEAN_CORES, load.seconds / reps))
    clean = [t for busy, t in times if not busy] or [t for _, t in times]

    return sorted(clean)[len(clean) // 2]


# ----------------------------------------------------------------------------------------
# One configuration (runs in a child process)


def _perturb_(model: RGFlow, seed: int = 0) -> None:
    """Small non-zero output scales, so every coupling really transforms its input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale.scale"):
                p.copy_(0.01 * torch.randn(p.shape, generator=g))


def _train_step(model, optimizer, pixels, noise, precision: str) -> float:
    """The step of rgflow.train: preprocess, log_prob, backward, clip, AdamW."""
    x = dequantize(pixels, noise).to(model.level_map.device)  # noise drawn on the CPU
    y, logdet_logit = logit_transform(x)
    dtype = torch.bfloat16 if precision == "bfloat16" else None
    with torch.autocast(y.device.type, dtype=dtype, enabled=dtype is not None):
        log_p = model.log_prob(y)
    loss = -(log_p.float() + logdet_logit).mean() / model.config.dims
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()

    return loss.item()


def run_one(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":  # TF32 for float32 matmuls only with --tf32 (torch's default)
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.cuda.reset_peak_memory_stats(device)
    preset = PRESETS[args.preset]
    torch.manual_seed(0)
    model = RGFlow(preset.config)
    _perturb_(model)
    model.to(device)
    set_fast(model, args.path == "fast")
    set_recompute(model, "all" if args.path == "reference" else args.recompute)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=1e-3,
        weight_decay=preset.weight_decay,
        **{"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {}}[args.optimizer],
    )
    if args.compile == "on":
        model.log_prob = torch.compile(model.log_prob)
    pixels = torch.randint(0, 256, (args.batch_size, 3, 32, 32), dtype=torch.uint8)
    noise = torch.Generator().manual_seed(1)
    rss_before = _peak_rss_mib()

    # 1. training steps
    model.train()
    warmup_seconds = []  # the first includes torch.compile's tracing and code generation
    for _ in range(args.warmup):
        start = time.perf_counter()
        _train_step(model, optimizer, pixels, noise, args.precision)
        warmup_seconds.append(time.perf_counter() - start)
    times, others = [], []
    for _ in range(args.steps):
        with OtherLoad() as load:
            loss = _train_step(model, optimizer, pixels, noise, args.precision)
        times.append(load.seconds)
        others.append(load.cores)
    if not math.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss}")
    clean = [t for t, o in zip(times, others) if o < CLEAN_CORES] or times
    step_seconds = sorted(clean)[len(clean) // 2]  # median of the uncontended steps
    peak_train = _peak_rss_mib()

    # 2. FLOPs and the bare matmul rate of the same shapes
    shapes = step_matmuls(preset.config, args.batch_size)
    useful = flops(shapes)
    mm_dtype = torch.bfloat16 if args.precision == "bfloat16" else torch.float32
    mm_seconds = sum(
        count * matmul_seconds(s, mm_dtype, device=device) for s, count in shapes.items()
    )
    reference_shape = (4096, 512, 512)
    ref_rate = flops(Counter({reference_shape: 1})) / matmul_seconds(
        reference_shape, mm_dtype, device=device
    )

    # 3. sampling (generation direction, no graph)
    model.eval()
    dtype = torch.bfloat16 if args.precision == "bfloat16" else None
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        g = torch.Generator(device=device).manual_seed(0)
        model.sample(args.batch_size, generator=g)
        start = time.perf_counter()
        for _ in range(args.sample_reps):
            model.sample(args.batch_size, generator=g)
        synchronize(device)
        sample_seconds = (time.perf_counter() - start) / args.sample_reps

    # 4. optionally, count the FLOPs of one more step as executed (last: nothing timed follows)
    counted = None
    if args.count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        model.train()
        with FlopCounterMode(display=False) as counter:
            _train_step(model, optimizer, pixels, noise, args.precision)
        counted = counter.get_total_flops()

    reference = REFERENCE_SECONDS.get(args.preset) if args.batch_size == REFERENCE_BATCH else None

    return {
        "preset": args.preset,
        "path": args.path,
        "precision": args.precision,
        "recompute": "all" if args.path == "reference" else args.recompute,
        "optimizer": args.optimizer,
        "compile": args.compile == "on",
        "batch": args.batch_size,
        "device": str(device),
        "tf32": args.tf32 if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "parameters": model.num_parameters(),
        "step_s": step_seconds,
        "step_s_all": [round(t, 4) for t in times],
        "step_s_min": min(times),
        "warmup_s": [round(t, 2) for t in warmup_seconds],
        "clean_steps": sum(o < CLEAN_CORES for o in others),
        "other_cores": sum(o * t for o, t in zip(others, times)) / sum(times),
        "images_per_s": args.batch_size / step_seconds,
        "vs_reference": reference / step_seconds if reference else None,
        "useful_gflop": useful / 1e9,
        "counted_gflop": counted / 1e9 if counted is not None else None,
        "gflop_per_s": useful / step_seconds / 1e9,
        "matmul_gflop_per_s": useful / mm_seconds / 1e9,
        "fraction_of_matmul": mm_seconds / step_seconds,
        "mm_4096x512x512_gflop_per_s": ref_rate / 1e9,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_train,
        "peak_device_mib": (
            torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        ),
        "sample_images_per_s": args.batch_size / sample_seconds,
    }


def run_bpd(args: argparse.Namespace) -> dict:
    """Train args.bpd_steps steps with rgflow.train (seed 0) and return the test bits/dim."""
    import tempfile

    from rgflow import coupling
    from rgflow.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    if args.path in ("plain", "reference"):  # every coupling built from here on: plain path
        init = coupling.RealNVPCoupling.__init__

        def plain_init(self, *a, **k) -> None:
            init(self, *a, **k)
            self.fast = False

        coupling.RealNVPCoupling.__init__ = plain_init
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            preset=args.preset,
            dataset=args.data,
            max_steps=args.bpd_steps,
            test_size=args.test_size,
            seed=0,
            out_dir=out,
            resume=False,
            precision=args.precision,
            compile=args.compile == "on",
            device=args.device,
            log_every=args.bpd_steps,
        )
        result = train(config, progress=False)

    return {
        "preset": args.preset,
        "path": args.path,
        "precision": args.precision,
        "compile": args.compile == "on",
        "data": args.data,
        "steps": result["steps"],
        "test_bpd": result["test_bpd"],
        "train_bpd": result["train_bpd"],
        "wall_seconds": result["wall_seconds"],
        "threads": torch.get_num_threads(),
    }


class OtherLoad:
    """CPU used by other processes while the block runs, in cores (0: the machine was ours).

    From /proc/stat (busy time of all CPUs) minus this process's own CPU time.
    """

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:8]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle

    @staticmethod
    def _own() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> OtherLoad:
        self._start = (time.perf_counter(), self._busy(), self._own())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = self._start
        self.seconds = time.perf_counter() - wall
        other = (self._busy() - busy) - (self._own() - own)
        self.cores = max(0.0, other / self.seconds)


def wait_until_idle(max_seconds: float, window: float = 3.0) -> float:
    """Wait (up to max_seconds) for a window in which other processes use < CLEAN_CORES."""
    start = time.perf_counter()
    while True:
        with OtherLoad() as load:
            time.sleep(window)
        if load.cores < CLEAN_CORES or time.perf_counter() - start > max_seconds:
            return load.cores


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ----------------------------------------------------------------------------------------
# Driver


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", nargs="+", default=["tiny", "small"], choices=sorted(PRESETS))
    p.add_argument(
        "--path",
        nargs="+",
        default=["plain", "fast"],
        choices=["reference", "plain", "fast"],
        help="reference: the plain path with the authors' recomputation (checkpointing)",
    )
    p.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=REFERENCE_BATCH)
    p.add_argument("--recompute", default="none", choices=["none", "swish", "all"])
    p.add_argument("--optimizer", default="fused", choices=["fused", "foreach", "for-loop"])
    p.add_argument(
        "--compile",
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="torch.compile(model.log_prob): off, on, or both (one configuration each)",
    )
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median is shown)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--sample-reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--tf32", action="store_true", help="on CUDA: TF32 for float32 matmuls")
    p.add_argument("--count-flops", action="store_true", help="also run FlopCounterMode")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each configuration, wait up to this many seconds for an idle machine",
    )
    p.add_argument(
        "--bpd-steps",
        type=int,
        default=None,
        help="instead of timing: train this many steps with rgflow.train, report test bpd",
    )
    p.add_argument("--data", default="msds1", help="dataset of --bpd-steps")
    p.add_argument("--test-size", type=int, default=1000, help="test images of --bpd-steps")
    p.add_argument("--json", type=Path, help="append one JSON line per configuration here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)

    return p


def _table(rows: list[dict]) -> str:
    """Markdown table; "this run" divides by the same preset's float32 reference-path row."""
    head = (
        "| preset | path | precision | batch | s/step | images/s | vs quoted reference "
        "| vs reference path, this run | GFLOP/step | GFLOP/s | matmul GFLOP/s | fraction "
        "| peak RSS MiB | sample images/s | others |"
    )
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    reference_path = {
        (r["preset"], r["batch"]): r["step_s"]
        for r in rows
        if r["path"] == "reference" and r["precision"] == "float32" and not r.get("compile")
    }
    for r in rows:
        ratio = f"{r['vs_reference']:.2f}x" if r["vs_reference"] else "-"
        same_run = reference_path.get((r["preset"], r["batch"]))
        same_run = f"{same_run / r['step_s']:.2f}x" if same_run else "-"
        lines.append(
            f"| {r['preset']} | {r['path']}{' + compile' * bool(r.get('compile'))} "
            f"| {r['precision']} | {r['batch']} "
            f"| {r['step_s']:.3f} | {r['images_per_s']:.1f} | {ratio} | {same_run} "
            f"| {r['useful_gflop']:.1f} | {r['gflop_per_s']:.0f} "
            f"| {r['matmul_gflop_per_s']:.0f} | {r['fraction_of_matmul']:.2f} "
            f"| {r['peak_rss_mib']:.0f} | {r['sample_images_per_s']:.1f} "
            f"| {r['other_cores']:.2f} |"
        )

    return "\n".join(lines)


def _bpd_table(rows: list[dict]) -> str:
    lines = ["| preset | data | path | precision | steps | test bpd | train bpd | wall s |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['data']} | {r['path']}{' + compile' * bool(r.get('compile'))} "
            f"| {r['precision']} | {r['steps']} "
            f"| {r['test_bpd']:.4f} | {r['train_bpd']:.4f} | {r['wall_seconds']:.0f} |"
        )

    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device; "
            "run on a GPU machine with a CUDA build of torch, or use --device cpu."
        )
    if args.child:  # one configuration: the lists hold one value each
        args.preset, args.path, args.precision = args.preset[0], args.path[0], args.precision[0]
        args.compile = args.compile[0]
        print(json.dumps(run_bpd(args) if args.bpd_steps else run_one(args)))
        return

    rows = []
    configurations = [
        (preset, path, precision, compiled)
        for preset in args.preset
        for path in args.path
        for precision in args.precision
        for compiled in args.compile
        if not (path == "reference" and compiled == "on")  # the authors' code is not compiled
    ]
    for preset, path, precision, compiled in configurations:
        argv_child = [
            sys.executable,
            __file__,
            "--child",
            "--preset",
            preset,
            "--path",
            path,
            "--precision",
            precision,
            "--batch-size",
            str(args.batch_size),
            "--recompute",
            args.recompute,
            "--optimizer",
            args.optimizer,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--sample-reps",
            str(args.sample_reps),
            "--threads",
            str(args.threads),
        ]
        argv_child += ["--compile", compiled] + ["--count-flops"] * args.count_flops
        argv_child += ["--device", args.device] + ["--tf32"] * args.tf32
        if args.bpd_steps:
            argv_child += ["--bpd-steps", str(args.bpd_steps), "--data", args.data]
            argv_child += ["--test-size", str(args.test_size)]
        if args.wait_idle:
            wait_until_idle(args.wait_idle)
        done = subprocess.run(argv_child, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{preset} {path} {precision}: failed\n{done.stderr}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(_bpd_table(rows) if args.bpd_steps else _table(rows))


if __name__ == "__main__":
    main()
