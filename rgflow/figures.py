"""Run the figure notebooks with papermill: ``python -m rgflow figures [names] [options]``.

Each notebook in ``notebooks/`` regenerates one figure of the paper into ``figures/`` under a
stable name. The runner executes them in place (so the committed notebooks carry the
outputs of their last run), prints one JSON line per notebook with its wall time, and exits
non-zero if any notebook fails, naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NOTEBOOK_DIR", "list_notebooks", "run_notebook", "main"]

NOTEBOOK_DIR = Path("notebooks")


def list_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The figure notebooks, in their numbered order."""
    return sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("_"))


def run_notebook(
    path: Path, parameters: dict | None = None, output: Path | None = None, kernel: str = "python3"
) -> float:
    """Execute one notebook with papermill; return the wall time in seconds."""
    import papermill

    started = time.perf_counter()
    papermill.execute_notebook(
        str(path),
        str(output or path),
        parameters=parameters or {},
        kernel_name=kernel,
        cwd=str(path.parent),
        progress_bar=False,
        request_save_on_cell_execute=False,
    )

    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rgflow figures", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names or stems (default: all)")
    parser.add_argument("--dir", default=str(NOTEBOOK_DIR), help="notebook folder")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="notebook parameter, e.g. -p profile=paper -p device=cuda",
    )
    parser.add_argument(
        "--output-dir", default=None, help="write executed notebooks here instead of in place"
    )
    args = parser.parse_args(argv)

    import ast

    parameters = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            parameters[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parameters[name] = value

    notebooks = list_notebooks(Path(args.dir))
    if args.names:
        wanted = set(args.names)
        notebooks = [
            p
            for p in notebooks
            if p.name in wanted or p.stem in wanted or p.stem.split("_", 1)[0] in wanted
        ]
        if not notebooks:
            print(f"no notebook matches {sorted(wanted)} in {args.dir}", file=sys.stderr)
            return 2

    failed = []
    total = 0.0
    for path in notebooks:
        output = Path(args.output_dir) / path.name if args.output_dir else None
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
        try:
            seconds = run_notebook(path, parameters, output)
            total += seconds
            print(
                json.dumps({"notebook": path.name, "seconds": round(seconds, 1), "ok": True}),
                flush=True,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with the cell
            failed.append(path.name)
            print(
                json.dumps(
                    {
                        "notebook": path.name,
                        "ok": False,
                        "error": str(err).strip().splitlines()[-1][:300],
                    }
                ),
                flush=True,
            )
    print(json.dumps({"notebooks": len(notebooks), "failed": failed, "seconds": round(total, 1)}))

    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
