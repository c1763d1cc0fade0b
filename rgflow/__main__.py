"""``python -m rgflow ...``: see :mod:`rgflow.cli`."""

from rgflow.cli import main

raise SystemExit(main())
