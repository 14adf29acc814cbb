"""``recommender plugin new NAME``: scaffold a pip-installable plugin package."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import fail, out

plugin_app = typer.Typer(help="Start a plugin of your own.", no_args_is_help=True)


@plugin_app.command("new")
def plugin_new(
    name: str = typer.Argument(..., help="The trade, e.g. car_wash: its vertical, entry point and id prefix."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="Where to write the package (default: ./NAME)."),
) -> None:
    """Write a pip-installable plugin package that passes its tests as generated: pyproject.toml
    with the entry point, a pack with one gesture and rule, the hook module (vertical, issue
    codes, profile), a scenario file and a pytest test."""
    from ..scaffold import ScaffoldError, new_plugin

    target = folder if folder is not None else Path(name)
    try:
        written = new_plugin(name, target)
    except ScaffoldError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    for path in written:
        out.print(f"wrote {path}", markup=False)
    out.print(f"next: pip install -e {target} && (cd {target} && pytest) && recommender plugins --check",
              markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(plugin_app, name="plugin")
