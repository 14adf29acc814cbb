"""``recommender reference``: the reference page (docs/reference.md), generated from the code."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("reference")
    def reference() -> None:
        """Print the reference page (docs/reference.md) generated from the code.

        Markdown: context fields with types and meaning, the issue vocabulary by family,
        gesture categories and tiers, the core packs' exclusive groups, staff levels,
        operators, and the business profile's keys with their defaults."""
        from ..reference import render_reference

        print(render_reference(), end="")
