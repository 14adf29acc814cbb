"""Daily gesture budgets: a delivery consumes them atomically, never overspending.

Spending is a guarded atomic update inside the outcome's transaction::

    UPDATE budget_usage SET spent = spent + :cost
     WHERE tenant = :t AND scope = :s AND scope_id = :id AND day = :day
       AND spent + :cost <= :limit

On PostgreSQL a concurrent update of the same row waits for the first to commit and then
re-checks the condition against the new value (READ COMMITTED re-evaluation), so two
deliveries can never both squeeze under the limit. On SQLite every write transaction
starts with ``BEGIN IMMEDIATE``, which serialises them. Rows are locked in a fixed order
(tenant, store, staff) so concurrent deliveries cannot deadlock.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .errors import BudgetExceeded
from .models import BudgetUsage, table_of
from .policy import Budget

__all__ = ["consume", "spent_today", "scopes_for", "EPSILON"]

#: Float slack so 10 x 0.1 fits a budget of 1.0.
EPSILON = 1e-6

_T = table_of(BudgetUsage)


def scopes_for(budget: Budget | None, store_id: str | None,
               staff_id: str | None) -> list[tuple[str, str, float | None]]:
    """Every scope a delivery is counted in, with its limit (None: tracked, not capped)."""
    limits = {(s, i): lim for s, i, lim in (budget.limits(store_id, staff_id) if budget else [])}
    scopes: list[tuple[str, str, float | None]] = [("tenant", "", limits.get(("tenant", "")))]
    if store_id:
        scopes.append(("store", store_id, limits.get(("store", store_id))))
    if staff_id:
        scopes.append(("staff", staff_id, limits.get(("staff", staff_id))))
    return scopes


def _ensure_row(conn: Connection, tenant: str, scope: str, scope_id: str, day: date) -> None:
    values = dict(tenant=tenant, scope=scope, scope_id=scope_id, day=day, spent=0.0)
    ins: Any = pg_insert(_T) if conn.dialect.name == "postgresql" else sqlite_insert(_T)
    conn.execute(ins.values(**values).on_conflict_do_nothing())


def _where(tenant: str, scope: str, scope_id: str, day: date) -> list[Any]:
    return [_T.c.tenant == tenant, _T.c.scope == scope, _T.c.scope_id == scope_id, _T.c.day == day]


def consume(conn: Connection, tenant: str, scopes: list[tuple[str, str, float | None]], cost: float,
            day: date) -> None:
    """Add ``cost`` to every scope's spending of ``day``; raise :class:`BudgetExceeded` if any
    capped scope would go over (the caller's transaction then rolls back)."""
    for scope, scope_id, limit in scopes:
        _ensure_row(conn, tenant, scope, scope_id, day)
        where = _where(tenant, scope, scope_id, day)
        if limit is not None:
            where.append(_T.c.spent + cost <= limit + EPSILON)
        res = conn.execute(update(_T).where(*where).values(spent=_T.c.spent + cost))
        if res.rowcount != 1:
            spent = conn.execute(select(_T.c.spent).where(*_where(tenant, scope, scope_id, day))).scalar() or 0.0
            label = "tenant" if scope == "tenant" else f"{scope} {scope_id!r}"
            raise BudgetExceeded(f"{label} daily", float(limit or 0.0), float(spent), cost, day.isoformat())


def spent_today(conn: Connection, tenant: str, scopes: list[tuple[str, str, float | None]],
                day: date) -> dict[tuple[str, str], float]:
    """What each scope has spent on ``day`` (absent rows: 0)."""
    if not scopes:
        return {}
    rows = conn.execute(
        select(_T.c.scope, _T.c.scope_id, _T.c.spent)
        .where(_T.c.tenant == tenant, _T.c.day == day,
               _T.c.scope.in_([s for s, _, _ in scopes]),
               _T.c.scope_id.in_([i for _, i, _ in scopes]))
    ).all()
    return {(r.scope, r.scope_id): float(r.spent) for r in rows}
