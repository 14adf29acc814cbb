"""``recommender plugins``: list plugins and check them against each other.

``--check`` examines every rulebook a plugin takes part in: the default business's and
that of each vertical a plugin declares (``recommender_declare_verticals``) or the plugin
configuration names, since a plugin that declares its verticals contributes nothing to the
default business. A clash is reported with the vertical it happens in.

Declared sharing: an ``exclusive_group`` used by two sources (the core packs, plugins) is a
clash unless every gesture that joins it, all but the one source that uses it without
declaring, says ``shares_group: true`` ("I join this group on purpose"). The declaration is
on the gesture, next to the group it names, so it is read where the group is written and a
renamed group takes its declaration along; a plugin-level list would have to repeat group
names kept elsewhere and could go stale without a clash showing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import RecommenderError, RulePackError
from .app import fail, out


def book_conflicts(book: Any, contributions: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    """Undeclared clashes between the sources of one rulebook: a ``conflicts_with`` naming
    another plugin's gesture, and an exclusive group used by two sources without a
    ``shares_group: true`` on the gestures that join it."""
    owner = {gid: name for name, (gestures, _) in contributions.items() for gid in gestures}
    found: list[str] = []
    for g in book.gestures.values():
        for other in g.conflicts_with:
            a, b = owner.get(g.id), owner.get(other)
            if a and b and a != b:
                found.append(f"{g.id} ({a}) conflicts with {other} ({b}): they are never offered together")
    groups: dict[str, dict[str, list[Any]]] = {}
    for g in book.gestures.values():
        if g.exclusive_group and g.id in owner:
            groups.setdefault(g.exclusive_group, {}).setdefault(owner[g.id], []).append(g)
    for group, by_source in sorted(groups.items()):
        undeclared = {src: sorted(g.id for g in gs if not g.shares_group) for src, gs in by_source.items()}
        undeclared = {src: ids for src, ids in undeclared.items() if ids}
        if len(by_source) > 1 and len(undeclared) > 1:
            parts = "; ".join(f"{src}: {', '.join(ids)}" for src, ids in sorted(undeclared.items()))
            found.append(f"exclusive group {group!r} is used by {len(by_source)} sources without a declaration "
                         f"({parts}): only one of them is offered; if a gesture joins the group on purpose, "
                         "give it 'shares_group: true'")
    return found


def check_plugins(rec: Any) -> tuple[list[str], list[str]]:
    """``(problems, conflicts)`` over every business of :meth:`Recommender.plugin_businesses`:
    load failures and plugin failures while building each rulebook, and undeclared clashes,
    each once, the vertical named where it is not the default business's."""
    problems = [f"{w.plugin}: {w.message}" for w in rec.host.load_warnings]
    conflicts: list[str] = []
    for business in rec.plugin_businesses():
        where = f"vertical {business.vertical}: " if business.vertical else ""
        try:
            tenant = rec._tenant(business)
        except RecommenderError as exc:
            problems.append(f"{where}{exc}")
            continue
        for w in tenant.warnings:
            line = f"{w.plugin} ({w.hook}): {w.message}"
            if w.hook not in ("load", "register") and f"{w.plugin}: {w.message}" not in problems \
                    and line not in problems:
                problems.append(line)
        for c in book_conflicts(tenant.book, tenant.contributions):
            if not any(existing.endswith(c) for existing in conflicts):
                conflicts.append(f"{where}{c}")
    return problems, conflicts


def register(app: typer.Typer) -> None:
    @app.command("plugins")
    def plugins(
        plugins_dir: Optional[Path] = typer.Option(None, "--plugins-dir", help="Folder of drop-in plugin modules."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        check: bool = typer.Option(False, "--check", help="Report load failures and undeclared conflicts between "
                                                          "plugins, in every declared vertical; exit 1 if any."),
    ) -> None:
        """List the plugins found: name, version, source, verticals, hooks, gestures and rules."""
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
        problems, conflicts = check_plugins(rec)
        infos = rec.plugin_info()
        if not check:
            conflicts = []
        if as_json:
            print(json.dumps({"plugins": infos, "problems": problems, "conflicts": conflicts}, indent=2, default=str))
        else:
            table = Table(title="Plugins")
            for col in ("name", "version", "source", "verticals", "hooks", "gestures", "rules"):
                table.add_column(col, overflow="fold")
            for i in infos:
                table.add_row(i["name"], i["version"] or "-", i["source"],
                              ", ".join(i["verticals"]) if i["verticals"] is not None else "all",
                              "\n".join(h.removeprefix("recommender_") for h in i["hooks"]),
                              str(len(i["gestures"])), str(len(i["rules"])))
            out.print(table)
            for p in problems:
                out.print(f"problem: {p}", markup=False)
            for c in conflicts:
                out.print(f"conflict: {c}", markup=False)
        if check:
            if not problems and not conflicts and not as_json:
                out.print("ok: no load failures and no undeclared conflicts between plugins", markup=False)
            raise typer.Exit(1 if problems or conflicts else 0)


def find_conflicts(rec: Any) -> list[str]:
    """Undeclared conflicts between plugins in every business :func:`check_plugins` examines."""
    return check_plugins(rec)[1]
