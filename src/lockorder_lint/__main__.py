"""Allow ``python -m lockorder_lint``."""

from lockorder_lint.cli import main

raise SystemExit(main())
