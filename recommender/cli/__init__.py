"""The ``recommender`` command. Sub-command groups live in sibling modules."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from .app import app, err

__all__ = ["app", "main", "version_text"]


def version_text() -> str:
    """``recommender X.Y.Z (...)``: the version, and which build runs (the modules compiled to
    C extensions by a ``RECOMMENDER_COMPILE=1`` install, or pure Python)."""
    import platform

    from .. import __version__, compiled_modules

    compiled = [m.removeprefix("recommender.") for m in compiled_modules()]
    build = f"compiled build: {', '.join(compiled)}" if compiled else "pure Python build"
    return f"recommender {__version__} ({build}; Python {platform.python_version()})"


def _version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def _options(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and which build runs (pure Python or "
                                                "compiled), then exit."),
) -> None:
    """Recommend the service gestures worth making now, ranked and explained."""


#: The commands of ``commands`` (always registered): running one of them skips importing the
#: other command groups (``app.COMMAND_GROUPS``), so ``recommender recommend`` starts fast.
CORE_COMMANDS = frozenset(("recommend", "explain", "rules", "demo"))


def _command(args: list[str]) -> str | None:
    """The command asked for: the first argument that is not an option (the top level has
    only flags: ``--version``, ``--help``, the completion ones)."""
    return next((a for a in args if not a.startswith("-")), None)


def main() -> None:
    """Console entry point: no traceback ever reaches a user. An optional feature used without
    its extra (``serve`` without ``server``, a PostgreSQL URL without ``postgres``, ``--workers``
    without ``dask``) exits 2 with one line naming the extra."""
    from ..optional import MissingExtra, extra_for, hint
    from . import commands  # noqa: F401  (registers the core commands)
    from .app import load_command_groups

    try:
        if _command(sys.argv[1:]) not in CORE_COMMANDS:  # help, completion, another group's command
            load_command_groups()
        app(prog_name="recommender")
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
    except MissingExtra as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        if extra_for(exc.name) is None:
            raise
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
        err.print(f"error: {hint(f'recommender {command}'.strip(), exc.name or '?')}", markup=False)
        sys.exit(2)
