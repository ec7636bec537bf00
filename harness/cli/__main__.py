"""``python -m harness.cli``: the same as the ``rtbench`` command."""

from harness.cli import main

raise SystemExit(main())
