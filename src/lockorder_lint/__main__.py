"""Allow ``python -m lockorder_lint``."""

from lockorder_lint.cli import entry

entry()
