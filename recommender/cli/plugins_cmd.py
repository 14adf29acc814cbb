"""``recommender plugins``: list plugins and check them against each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import RecommenderError, RulePackError
from .app import fail, out


def find_conflicts(rec: Any) -> list[str]:
    """Conflicts between gestures of different plugins (declared, or a shared exclusive group)."""
    book = rec.rulebook
    owner = {gid: name for info in rec.plugin_info() for gid in info["gestures"] for name in [info["name"]]}
    found: list[str] = []
    for g in book.gestures.values():
        for other in g.conflicts_with:
            a, b = owner.get(g.id), owner.get(other)
            if a and b and a != b:
                found.append(f"{g.id} ({a}) conflicts with {other} ({b}): they are never offered together")
    groups: dict[str, dict[str, list[str]]] = {}
    for g in book.gestures.values():
        if g.exclusive_group and g.id in owner:
            groups.setdefault(g.exclusive_group, {}).setdefault(owner[g.id], []).append(g.id)
    for group, by_plugin in sorted(groups.items()):
        if len(by_plugin) > 1:
            parts = "; ".join(f"{p}: {', '.join(sorted(ids))}" for p, ids in sorted(by_plugin.items()))
            found.append(f"exclusive group {group!r} is shared by plugins ({parts}): only one is offered")
    return found


def register(app: typer.Typer) -> None:
    @app.command("plugins")
    def plugins(
        plugins_dir: Optional[Path] = typer.Option(None, "--plugins-dir", help="Folder of drop-in plugin modules."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        check: bool = typer.Option(False, "--check", help="Report load failures and conflicts between plugins; exit 1 if any."),
    ) -> None:
        """List the plugins found: name, version, source, hooks, gestures and rules."""
        from ..core import Recommender

        try:
            rec = Recommender(plugins_dir=plugins_dir)
        except RulePackError as exc:
            if check:
                out.print(f"error: {exc}", markup=False)
                raise typer.Exit(1)
            fail(str(exc), 1)
        except RecommenderError as exc:
            fail(str(exc), 1)
        infos = rec.plugin_info()
        problems = [f"{w.plugin}: {w.message}" for w in rec.host.load_warnings]
        problems += [f"{w.plugin} ({w.hook}): {w.message}" for w in rec._tenant(rec_business()).warnings
                     if f"{w.plugin}: {w.message}" not in problems and w.hook != "load" and w.hook != "register"]
        conflicts = find_conflicts(rec) if check else []
        if as_json:
            print(json.dumps({"plugins": infos, "problems": problems, "conflicts": conflicts}, indent=2, default=str))
        else:
            table = Table(title="Plugins")
            for col in ("name", "version", "source", "hooks", "gestures", "rules"):
                table.add_column(col, overflow="fold")
            for i in infos:
                table.add_row(i["name"], i["version"] or "-", i["source"],
                              "\n".join(h.removeprefix("recommender_") for h in i["hooks"]),
                              str(len(i["gestures"])), str(len(i["rules"])))
            out.print(table)
            for p in problems:
                out.print(f"problem: {p}", markup=False)
            for c in conflicts:
                out.print(f"conflict: {c}", markup=False)
        if check:
            if not problems and not conflicts:
                out.print("ok: no load failures and no conflicts between plugins", markup=False)
            raise typer.Exit(1 if problems or conflicts else 0)


def rec_business() -> Any:
    from ..context import Business

    return Business()
