"""``recommender issues``: the issue vocabulary in force for a business (core codes plus
its plugins'), by family, so a rule writer or an integrator can see which code to send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .app import out


def register(app: typer.Typer) -> None:
    from .commands import PluginsDirOpt, RulesOpt, build_recommender

    @app.command("issues")
    def issues(
        vertical: Optional[str] = typer.Option(None, "--vertical", help="The business's vertical (selects plugins)."),
        business: str = typer.Option("default", "--business", help="The business id."),
        rules: Optional[List[Path]] = RulesOpt,
        plugins_dir: Optional[Path] = PluginsDirOpt,
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List the issue codes, their aliases and families for a business (docs/advice.md)."""
        from ..context import Business
        from ..issues import FAMILIES

        rec = build_recommender(rules, plugins_dir)
        vocab = rec._tenant(Business(id=business, vertical=vertical)).vocabulary
        rows = vocab.as_table()
        if as_json:
            families = [{"family": f.name, "negative": f.negative, "kind": f.kind, "base_severity": f.base,
                         "meaning": f.meaning} for f in FAMILIES.values()]
            out.print_json(json.dumps({"families": families, "codes": rows}))
            return
        table = Table(title=f"Issue codes for {business}" + (f" ({vertical})" if vertical else ""))
        for col in ("family", "base", "code", "aliases", "from"):
            table.add_column(col, overflow="fold")
        for row in rows:
            fam = FAMILIES[row["family"]]
            table.add_row(row["family"], str(fam.base), row["code"], ", ".join(row["aliases"]), row["source"])
        out.print(table)
