"""Memory commands: ``db upgrade|status|prune``, ``outcome``, ``decision show``,
``customer show|set``, ``report``, ``keys``.

SQLAlchemy is imported only when one of these commands runs.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, NoReturn, Optional, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from .app import fail, out, parse_when

if TYPE_CHECKING:
    from ..memory import Store

T = TypeVar("T")

UrlOpt = typer.Option(None, "--url", envvar="RECOMMENDER_DB_URL", show_envvar=True,
                      help="Database URL: sqlite:///PATH or postgresql://USER@HOST/DB "
                           "(default: recommender.db in the user's data directory).")
TenantOpt = typer.Option("default", "--tenant", "-t", help="Tenant (business.id).")
PolicyOpt = typer.Option(None, "--policy", envvar="RECOMMENDER_POLICY", show_envvar=True,
                         help="Policy file (YAML or JSON): contact rules, budgets, limits.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


class OutcomeChoice(str, Enum):
    offered = "offered"
    accepted = "accepted"
    declined = "declined"
    delivered = "delivered"


class ScopeChoice(str, Enum):
    recommend = "recommend"
    outcome = "outcome"
    approve = "approve"
    admin = "admin"


# -- shared helpers -------------------------------------------------------------------


def _store_fail(exc: Exception) -> NoReturn:
    """Exit with one line: 2 for input errors (unknown ids, conflicts), 1 for the rest."""
    code = getattr(exc, "code", "")
    fail(str(exc), 2 if code in ("invalid", "not_found", "forbidden", "conflict") else 1)


def _guarded(fn: Callable[[], T], url: Optional[str] = None) -> T:
    """Run a store call; every store or database error becomes a one-line exit."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..errors import RecommenderError
    from ..memory.db import mask_text

    try:
        return fn()
    except RecommenderError as exc:
        _store_fail(exc)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        where = f"database {mask_text(url)}" if url else "database"
        fail(f"{where}: {' '.join(str(orig).split())[:300]}", 1)


def missing_sqlite_file(url: Optional[str]) -> Optional[str]:
    """The URL (password masked) when it names a SQLite file that does not exist, else None."""
    from ..errors import RecommenderError
    from ..memory.db import default_url, mask_text, normalize_url

    try:
        parsed = normalize_url(url)
    except RecommenderError as exc:
        _store_fail(exc)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return None if Path(database).expanduser().exists() else mask_text(url if url is not None else default_url())


def _open(url: Optional[str], policy: Optional[Path] = None, upgrade: Optional[bool] = None,
          existing: bool = True) -> "Store":
    """The store at ``url``. Commands that read (``existing``) never create a SQLite file: a
    mistyped path is an error (exit 2), not an empty report; writes and ``db upgrade`` create it."""
    from ..memory import open_store

    if existing:
        missing = missing_sqlite_file(url)
        if missing:
            fail(f"no database at {missing}: the file does not exist (a mistyped path?); `recommender db upgrade "
                 "--url ...` creates one, as does a first write (recommend --url, customer set, keys create)")
    return _guarded(lambda: open_store(url, policy=policy, upgrade=upgrade), url)


def _run_and_print(fetch: Callable[["Store"], Any], print_table: Callable[[Any], None], as_json: bool,
                   url: Optional[str], policy: Optional[Path] = None, existing: bool = True) -> None:
    """One store call that returns a record; print the record as JSON or for people."""
    store = _open(url, policy, existing=existing)
    try:
        record = _guarded(lambda: fetch(store), url)
    finally:
        store.close()
    if as_json:
        out.print_json(record.model_dump_json())
    else:
        print_table(record)


def _money(value: Optional[float]) -> str:
    return "?" if value is None else f"{value:.2f}"


def _pref_value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, (bool, int, float, str)) else raw


# -- db ------------------------------------------------------------------------------

db_app = typer.Typer(help="Create or migrate the memory database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(url: Optional[str] = UrlOpt) -> None:
    """Apply schema migrations (creates every table on an empty database)."""
    from ..memory.db import head_revision

    store = _open(url, upgrade=True, existing=False)
    try:
        revision = _guarded(store.schema_revision, url)
        out.print(f"database {store.url} is at schema revision {revision} "
                  f"({'head' if revision == head_revision() else 'not head'})", markup=False)
    finally:
        store.close()


@db_app.command("status")
def db_status(url: Optional[str] = UrlOpt) -> None:
    """Show the schema revision; exit 1 when migrations are due."""
    from ..memory.db import head_revision

    store = _open(url, upgrade=False)
    store.close()
    out.print(f"database {store.url} is at schema revision {head_revision()} (head)", markup=False)


# -- outcome -------------------------------------------------------------------------


def outcome_cmd(
    decision_id: str = typer.Argument(..., help="The decision id a recommendation returned."),
    gesture_id: str = typer.Argument(..., help="A gesture recommended in that decision."),
    outcome: OutcomeChoice = typer.Argument(..., help="What happened."),
    key: Optional[str] = typer.Option(None, "--key", "-k", help="Idempotency key (a till's transaction id): a retry "
                                      "with it counts once. Default: the decision, gesture and outcome, so a "
                                      "retry counts once too (docs/memory.md, Outcomes)."),
    note: Optional[str] = typer.Option(None, "--note", help="Free text for the log."),
    cost: Optional[float] = typer.Option(None, "--cost", min=0, help="Actual cost (default: the recommended cost)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="Check the decision belongs to this tenant."),
    url: Optional[str] = UrlOpt,
    policy: Optional[Path] = PolicyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record what happened to a recommended gesture (delivered consumes the budget)."""
    from ..outcomes import outcome_key

    key = key or outcome_key(decision_id, gesture_id, outcome.value)
    store = _open(url, policy)
    try:
        rec = _guarded(lambda: store.record_outcome(decision_id, gesture_id, outcome.value, key, note=note,
                                                    actual_cost=cost, tenant=tenant), url)
    finally:
        store.close()
    if as_json:
        out.print_json(rec.model_dump_json())
        return
    again = " (already recorded: nothing changed)" if rec.replayed else ""
    out.print(f"recorded {rec.outcome} of {rec.gesture_id} for decision {rec.decision_id}, "
              f"cost {_money(rec.cost)}{again}", markup=False)


@db_app.command("prune")
def db_prune(
    before: str = typer.Option(..., "--before", help="Delete what was logged before this: an ISO date, a "
                                                     "date-time or a span back from now like 400d."),
    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="Only this tenant (default: every tenant)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
    url: Optional[str] = UrlOpt,
    policy: Optional[Path] = PolicyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete decisions (with their outcomes), visits and budget usage older than --before.

    Refused inside the policy's look-back (its contact rules, abuse check and goodwill cap
    read that history). Customer profiles stay; reports over pruned days lose their rows.
    """
    cutoff = parse_when(before, "--before")
    assert cutoff is not None  # --before is required, and parse_when returns None only for None

    def say(counts: Any) -> None:
        verb = "would delete" if counts.dry_run else "deleted"
        scope = f" of tenant {counts.tenant}" if counts.tenant else ""
        out.print(f"{verb} {counts.decisions} decision(s), {counts.outcomes} outcome(s), {counts.visits} visit(s) "
                  f"and {counts.budget_days} budget day(s){scope} logged before {counts.before:%Y-%m-%d %H:%M} UTC",
                  markup=False)

    _run_and_print(lambda store: store.prune(cutoff, tenant=tenant, dry_run=dry_run), say, as_json, url, policy)


# -- decision ------------------------------------------------------------------------

decision_app = typer.Typer(help="Look up logged decisions.", no_args_is_help=True)


def _print_decision(d: Any) -> None:
    out.print(f"[bold]decision {escape(d.id)}[/bold] (tenant {escape(d.tenant)})")
    out.print(f"occurred {d.occurred_at:%Y-%m-%d %H:%M} · logged {d.created_at:%Y-%m-%d %H:%M} · "
              f"issue {escape(d.issue)} · customer {escape(d.customer_id or '-')} · "
              f"staff {escape(d.staff_id or '-')} ({escape(d.staff_level or '-')})")
    out.print(f"receipt {escape(d.receipt_id)} · context {escape(d.context_hash)} · "
              f"ruleset {escape(d.ruleset_version)}")
    table = Table(title="Gestures")
    for col in ("gesture", "tier", "status", "cost", "score", "rules"):
        table.add_column(col, overflow="fold")
    for g in d.gestures:
        table.add_row(g.gesture_id, g.tier, g.status, _money(g.cost), f"{g.score:.2f}", ", ".join(g.rules))
    out.print(table)
    if d.held:
        out.print("withheld: " + escape(", ".join(f"{w.get('gesture_id')} ({w.get('reason')})" for w in d.held)))
    if d.outcomes:
        table = Table(title="Outcomes")
        for col in ("when", "gesture", "outcome", "cost", "note"):
            table.add_column(col, overflow="fold")
        for o in d.outcomes:
            table.add_row(f"{o.recorded_at:%Y-%m-%d %H:%M}", o.gesture_id, o.outcome, _money(o.cost),
                          escape(o.note or ""))
        out.print(table)


@decision_app.command("show")
def decision_show(
    decision_id: str = typer.Argument(..., metavar="ID", help="The decision id a recommendation returned."),
    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="Only if it belongs to this tenant."),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A logged decision: its context's receipt, gestures, what was withheld and the outcomes."""
    _run_and_print(lambda store: store.get_decision(decision_id, tenant), _print_decision, as_json, url)


# -- customer ------------------------------------------------------------------------

customer_app = typer.Typer(help="Show or update customer profiles.", no_args_is_help=True)


def _print_customer(view: Any) -> None:
    out.print(f"[bold]{escape(view.id)}[/bold] (tenant {escape(view.tenant)})"
              + ("" if view.known else " [dim]- not known to the store[/dim]"))
    if view.preferences:
        out.print("preferences: " + escape(", ".join(f"{k}={v}" for k, v in view.preferences.items())))
    if view.interests:
        out.print("interests: " + escape(", ".join(view.interests)))
    out.print(f"goodwill given (goodwill period): {view.goodwill_given:.2f}"
              + (" · [yellow]flagged for review[/yellow]" if view.flagged_for_review else ""))
    for n in view.notes:
        out.print(f"[dim]{n.at:%Y-%m-%d %H:%M}[/dim] {escape(n.text)}")
    if view.visits:
        table = Table(title="Recent visits")
        for col in ("when", "issue", "store", "decision"):
            table.add_column(col, overflow="fold")
        for v in view.visits:
            table.add_row(f"{v.occurred_at:%Y-%m-%d %H:%M}", v.issue, v.store_id or "", v.decision_id or "")
        out.print(table)
    if view.gestures:
        table = Table(title="Recent gestures")
        for col in ("when", "gesture", "category", "outcome", "cost", "note"):
            table.add_column(col, overflow="fold")
        for g in view.gestures:
            table.add_row(f"{g.recorded_at:%Y-%m-%d %H:%M}", g.gesture_id, g.category, g.outcome,
                          _money(g.cost), escape(g.note or ""))
        out.print(table)


@customer_app.command("show")
def customer_show(
    customer_id: str = typer.Argument(..., metavar="ID", help="Customer id (customer.id)."),
    tenant: str = TenantOpt,
    url: Optional[str] = UrlOpt,
    policy: Optional[Path] = PolicyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A customer's profile, recent visits and gestures."""
    _run_and_print(lambda store: store.customer(tenant, customer_id), _print_customer, as_json, url, policy)


@customer_app.command("set")
def customer_set(
    customer_id: str = typer.Argument(..., metavar="ID", help="Customer id (customer.id)."),
    pref: Optional[List[str]] = typer.Option(None, "--pref", help="Preference KEY=VALUE (repeatable; VALUE may be "
                                                                  "true/false or a number)."),
    unset: Optional[List[str]] = typer.Option(None, "--unset", help="Remove a preference (repeatable)."),
    interest: Optional[List[str]] = typer.Option(None, "--interest", help="Add an interest (repeatable)."),
    remove_interest: Optional[List[str]] = typer.Option(None, "--remove-interest", help="Remove an interest."),
    note: Optional[str] = typer.Option(None, "--note", help="Append a note."),
    tenant: str = TenantOpt,
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create or update a customer profile."""
    prefs: dict[str, Any] = {}
    for item in pref or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            fail(f"--pref {item!r}: expected KEY=VALUE")
        prefs[k.strip()] = _pref_value(v)
    for k in unset or []:
        prefs[k] = None
    if not (prefs or interest or remove_interest or note):
        fail("nothing to change: give --pref, --unset, --interest, --remove-interest or --note")
    _run_and_print(lambda store: store.update_customer(tenant, customer_id, preferences=prefs, interests=interest or [],
                                                       remove_interests=remove_interest or [], note=note),
                   _print_customer, as_json, url, existing=False)


# -- report --------------------------------------------------------------------------


def _report_table(title: str, rows: list[Any]) -> Table:
    table = Table(title=title)
    for col in ("", "recommended", "offered", "accepted", "declined", "delivered", "cost"):
        table.add_column(col, justify="left" if not col else "right", overflow="fold")
    for r in rows:
        table.add_row(r.key, str(r.recommended), str(r.offered), str(r.accepted), str(r.declined), str(r.delivered),
                      f"{r.total_cost:.2f}")
    return table


def report_cmd(
    tenant: str = TenantOpt,
    since: Optional[str] = typer.Option(None, "--since", help="Start: ISO date/datetime, 'today' or e.g. 30d "
                                                              "(default: 30 days before --until)."),
    until: Optional[str] = typer.Option(None, "--until", help="End (exclusive; default: now)."),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recommended, offered, accepted, declined and delivered counts per gesture and per rule."""
    now = datetime.now(timezone.utc)
    start, end = parse_when(since, "--since", now), parse_when(until, "--until", now)
    store = _open(url)
    try:
        report = _guarded(lambda: store.report(tenant, start, end), url)
    finally:
        store.close()
    if as_json:
        out.print_json(report.model_dump_json())
        return
    out.print(f"tenant {escape(report.tenant)}: {report.decisions} decision(s) from "
              f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC; "
              f"delivered cost {report.total_cost:.2f}")
    if report.gestures:
        out.print(_report_table("Per gesture", report.gestures))
        out.print(_report_table("Per rule", report.rules))


# -- keys ----------------------------------------------------------------------------

keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant the key acts for."),
    scope: List[ScopeChoice] = typer.Option(..., "--scope", "-s", help="recommend, outcome or admin (repeatable)."),
    name: str = typer.Option("", "--name", help="A label, e.g. the integration using it."),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a key; its secret is printed once and never stored."""
    from ..memory import KeyStore

    store = _open(url, existing=False)
    try:
        info, plaintext = _guarded(lambda: KeyStore(store).create(tenant, [s.value for s in scope], name), url)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps({**info.model_dump(mode="json"), "key": plaintext}))
        return
    out.print(f"created key {info.id} for tenant {info.tenant} ({', '.join(info.scopes)})", markup=False)
    out.print(plaintext, markup=False)
    out.print("[yellow]store it now: the key cannot be shown again[/yellow]")


@keys_app.command("list")
def keys_list(
    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="Only this tenant's keys."),
    url: Optional[str] = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List keys (never their secrets)."""
    from ..memory import KeyStore

    store = _open(url)
    try:
        keys = _guarded(lambda: KeyStore(store).list(tenant), url)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps([k.model_dump(mode="json") for k in keys]))
        return
    if not keys:
        out.print("no keys")
        return
    table = Table(title="API keys")
    for col in ("id", "tenant", "scopes", "name", "created", "revoked"):
        table.add_column(col, overflow="fold")
    for k in keys:
        table.add_row(k.id, k.tenant, ", ".join(k.scopes), escape(k.name), f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., metavar="ID", help="The key id (the part after rk_)."),
                url: Optional[str] = UrlOpt) -> None:
    """Revoke a key: it stops working at once."""
    from ..memory import KeyStore

    store = _open(url)
    try:
        done = _guarded(lambda: KeyStore(store).revoke(key_id), url)
    finally:
        store.close()
    if not done:
        fail(f"no active key with id {key_id!r}")
    out.print(f"revoked key {key_id}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("outcome")(outcome_cmd)
    app.add_typer(customer_app, name="customer")
    app.add_typer(decision_app, name="decision")
    app.command("report")(report_cmd)
    app.add_typer(keys_app, name="keys")
