"""Refresh the generated tables of README.md: shipped models and the claims table.

    python tools/readme_tables.py

The shipped-models rows come from rgflow/weights/registry.json; the claims table is
figures/claims.md as notebooks/13_claims.ipynb last wrote it. Each table sits between
``<!-- name:start -->`` and ``<!-- name:end -->`` markers; nothing else is touched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path("README.md")


def shipped_rows() -> str:
    models = json.loads(Path("rgflow/weights/registry.json").read_text())["models"]
    rows = [
        "| name | data | prior | parameters | steps | wall time | test bits/dim (5,000 images) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in sorted(models.items()):
        minutes = m["wall_seconds"] / 60
        rows.append(
            f"| `{name}` | {m['dataset']} | {m['prior']} | {m['parameters']:,} | "
            f"{m['steps']} | {minutes:.0f} min | {m['test_bpd']:.3f} |"
        )

    return "\n".join(rows)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block")

    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def main() -> None:
    text = README.read_text()
    text = replace_block(text, "shipped", shipped_rows())
    text = replace_block(text, "claims", Path("figures/claims.md").read_text())
    README.write_text(text)
    print("README.md tables refreshed")


if __name__ == "__main__":
    main()
