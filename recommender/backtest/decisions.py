"""Reading the memory store's decision log for a replay (``backtest --decisions``).

:func:`iter_decisions` streams logged decisions (oldest first, in pages) with the context
each was made for, the gestures it recommended and their cost. It reads the store's
``decisions`` table through the store's own SQLAlchemy engine; the table is reflected, so
the function works with any schema revision that has a ``context`` JSON column (the
context as passed to ``Store.record_decision``: after enrichment from the store, before
screening). A log without that column cannot be replayed: :class:`DecisionLogError`.

Use ``store.iter_decisions(...)`` instead when the store provides it (see
:func:`decisions_of`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from ..errors import RecommenderError

__all__ = ["StoredDecision", "DecisionLogError", "iter_decisions", "decisions_of", "POLICY_REASONS"]

#: Withheld reasons only the store's screening produces (contact policy, goodwill proportion).
POLICY_REASONS = frozenset({"suppressed", "goodwill_cap"})


class DecisionLogError(RecommenderError):
    """The decision log cannot be replayed (e.g. it does not keep the contexts)."""


@dataclass
class StoredDecision:
    id: str
    customer_id: str | None
    context: dict[str, Any] | None
    gestures: list[str]
    cost_total: float
    tenant: str = "default"
    created_at: datetime | None = None
    ruleset_version: str = ""
    costs: dict[str, float | None] = field(default_factory=dict)
    held: list[dict[str, Any]] = field(default_factory=list)


def _json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def iter_decisions(store: Any, tenant: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, *, page: int = 500) -> Iterator[StoredDecision]:
    """Logged decisions of ``tenant`` (all tenants when None), ``since <= created_at < until``."""
    from sqlalchemy import MetaData, Table, and_, or_, select
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    engine = store.engine
    try:
        table = Table("decisions", MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise DecisionLogError(f"database {getattr(store, 'url', '')} has no decision log "
                               "(run `recommender db upgrade`)") from None
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"cannot read the decision log: {' '.join(str(exc).split())[:300]}") from None
    if "context" not in table.c:
        raise DecisionLogError(
            f"the decision log in {getattr(store, 'url', 'the store')} does not keep the contexts of its decisions "
            "(no 'context' column in table 'decisions'), so it cannot be replayed; upgrade the store "
            "(`recommender db upgrade`) and replay decisions logged after that")
    c = table.c
    base = []
    if tenant is not None:
        base.append(c.tenant == tenant)
    if since is not None:
        base.append(c.created_at >= _naive_utc(since))
    if until is not None:
        base.append(c.created_at < _naive_utc(until))
    cols = [c.id, c.created_at, c.tenant, c.customer_id, c.ruleset_version, c.recommendations, c.held, c.context]
    last: tuple[Any, str] | None = None
    while True:
        where = list(base)
        if last is not None:
            where.append(or_(c.created_at > last[0], and_(c.created_at == last[0], c.id > last[1])))
        stmt = select(*cols).where(*where).order_by(c.created_at, c.id).limit(page)
        try:
            with engine.connect() as conn:
                rows = conn.execute(stmt).fetchall()
        except SQLAlchemyError as exc:
            raise DecisionLogError(f"cannot read the decision log: {' '.join(str(exc).split())[:300]}") from None
        if not rows:
            return
        for row in rows:
            yield _decision(row)
        last = (rows[-1].created_at, rows[-1].id)


def _naive_utc(when: datetime) -> datetime:
    from datetime import timezone

    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _decision(row: Any) -> StoredDecision:
    recs = _json(row.recommendations) or []
    costs: dict[str, float | None] = {}
    for r in recs:
        if isinstance(r, dict) and "gesture_id" in r:
            costs[r["gesture_id"]] = r.get("cost")
    ctx = _json(row.context)
    return StoredDecision(
        id=row.id, customer_id=row.customer_id, context=ctx if isinstance(ctx, dict) else None,
        gestures=list(costs), cost_total=sum(v for v in costs.values() if v is not None),
        tenant=row.tenant, created_at=row.created_at, ruleset_version=row.ruleset_version or "",
        costs=costs, held=[h for h in (_json(row.held) or []) if isinstance(h, dict)])


def decisions_of(store: Any, tenant: str | None = None, since: datetime | None = None,
                 until: datetime | None = None) -> Iterator[Any]:
    """``store.iter_decisions(...)`` when the store has it, else :func:`iter_decisions`."""
    method = getattr(store, "iter_decisions", None)
    if callable(method):
        return iter(method(tenant=tenant, since=since, until=until))
    return iter_decisions(store, tenant=tenant, since=since, until=until)
