"""``recommender learning show|reset|freeze``: what a business's store has learned from
outcomes (docs/learning.md). SQLAlchemy is imported only when one of these commands runs."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .app import fail, out
from .memory_cmd import TenantOpt, UrlOpt, _guarded, _open

learning_app = typer.Typer(help="What outcomes taught: show, reset or freeze a business's learning.",
                           no_args_is_help=True)


@learning_app.command("show")
def show_cmd(
    tenant: str = TenantOpt,
    url: Optional[str] = UrlOpt,
    gesture: Optional[str] = typer.Option(None, "--gesture", "-g", help="Only this gesture."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Rows shown (most outcomes first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each gesture's learned acceptance per segment: outcomes, posterior, whether it counts yet."""
    store = _open(url)
    try:
        state = _guarded(lambda: store.learning_state(tenant, gesture=gesture, limit=limit), url)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(state))
        return
    c = state["config"]
    out.print(f"tenant {escape(tenant)}: learning {'FROZEN (outcomes no longer change it)' if state['frozen'] else 'on'}"
              f"; segments by {', '.join(c['segments']) or 'the business only'}; half-life {c['half_life_days']:g} days;"
              f" {c['min_evidence']} outcomes before a segment changes the order", markup=False)
    if not state["segments"]:
        out.print("nothing learned yet: the rules' order stands everywhere", markup=False)
        return
    table = Table(show_lines=False)
    for col in ("gesture", "segment", "outcomes", "accepted", "declined", "acceptance", "95% range", "delivery",
                "counts"):
        table.add_column(col, overflow="fold")
    for r in state["segments"]:
        table.add_row(escape(r["gesture_id"]), escape(r["segment"]), str(r["outcomes"]), f"{r['accepted']:.1f}",
                      f"{r['declined']:.1f}", f"{r['acceptance']:.0%}", _range(r["interval"]),
                      "-" if r["delivery"] is None else f"{r['delivery']:.0%}", "yes" if r["learned"] else "not yet")
    out.print(table)


def _range(interval: list[float] | tuple[float, float]) -> str:
    """The 95% credible interval as the console shows it ("61%-87%")."""
    low, high = interval
    return f"{low:.0%}-{high:.0%}"


@learning_app.command("reset")
def reset_cmd(
    tenant: str = TenantOpt,
    url: Optional[str] = UrlOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Forget what the business learned: the rules' own order stands again until evidence returns."""
    if not yes and not typer.confirm(f"forget everything tenant {tenant} learned from outcomes?"):
        fail("not reset", 1)
    store = _open(url)
    try:
        n = _guarded(lambda: store.reset_learning(tenant), url)
    finally:
        store.close()
    out.print(f"tenant {tenant}: learning reset ({n} segment row(s) forgotten)", markup=False)


@learning_app.command("freeze")
def freeze_cmd(
    tenant: str = TenantOpt,
    url: Optional[str] = UrlOpt,
    thaw: bool = typer.Option(False, "--thaw", help="Learn from outcomes again."),
) -> None:
    """Freeze the business's learning: what it learned is kept and used; outcomes no longer change it."""
    store = _open(url, existing=False)
    try:
        frozen = _guarded(lambda: store.freeze_learning(tenant, not thaw), url)
    finally:
        store.close()
    out.print(f"tenant {tenant}: learning {'frozen' if frozen else 'on'}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(learning_app, name="learning")
