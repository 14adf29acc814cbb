"""The ``recommender`` command. Sub-command groups live in sibling modules."""

from __future__ import annotations

import sys

from .app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: no traceback ever reaches a user."""
    from . import commands  # noqa: F401  (registers the core commands)
    from .app import load_command_groups

    load_command_groups()
    try:
        app(prog_name="recommender")
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
