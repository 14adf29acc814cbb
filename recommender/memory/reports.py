"""Reports: what was recommended and what became of it, per gesture and per rule; what each
budget scope spent on a day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from . import budgets
from .base import StoreBase, as_utc, check_tenant
from .errors import InvalidStoreInput
from .models import BudgetUsage, Decision, DecisionGesture, DecisionRule, Outcome, table_of
from .records import BudgetLine
from .values import shift

__all__ = ["Report", "ReportRow", "build_report", "Reports"]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_DR = table_of(DecisionRule)
_O = table_of(Outcome)
_B = table_of(BudgetUsage)


class ReportRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="The gesture id or rule id")
    recommended: int = 0
    offered: int = 0
    accepted: int = 0
    declined: int = 0
    delivered: int = 0
    total_cost: float = Field(default=0.0, description="Cost of the delivered gestures")

    @property
    def acceptance_rate(self) -> float | None:
        answered = self.accepted + self.declined
        return None if not answered else self.accepted / answered


class Report(BaseModel):
    """Counts for the decisions a tenant made in ``[since, until)``.

    ``recommended`` counts gestures in the recommendation list (not those needing
    approval); outcome counts and ``total_cost`` (delivered) include approved ones. A rule
    row counts every gesture that rule recommended, so a gesture recommended by two rules
    counts under both.
    """

    model_config = ConfigDict(extra="forbid")

    tenant: str
    since: datetime
    until: datetime
    decisions: int
    gestures: list[ReportRow]
    rules: list[ReportRow]

    @property
    def total_cost(self) -> float:
        return round(sum(r.total_cost for r in self.gestures), 2)


def _rows(recommended: list[Any], outcomes: list[Any]) -> list[ReportRow]:
    table: dict[str, ReportRow] = {}
    for key, n in recommended:
        table.setdefault(key, ReportRow(key=key)).recommended += n
    for key, outcome, n, cost in outcomes:
        row = table.setdefault(key, ReportRow(key=key))
        setattr(row, outcome, getattr(row, outcome) + n)
        if outcome == "delivered":
            row.total_cost = round(row.total_cost + float(cost or 0.0), 2)
    return sorted(table.values(), key=lambda r: (-r.recommended, r.key))


def build_report(conn: Connection, tenant: str, since: datetime, until: datetime) -> Report:
    in_period = (_D.c.tenant == tenant, _D.c.created_at >= since, _D.c.created_at < until)
    decisions = conn.execute(select(func.count()).select_from(_D).where(*in_period)).scalar_one()

    g_rec = conn.execute(
        select(_DG.c.gesture_id, func.count())
        .join_from(_DG, _D, _D.c.id == _DG.c.decision_id)
        .where(*in_period, _DG.c.status == "recommended")
        .group_by(_DG.c.gesture_id)
    ).all()
    g_out = conn.execute(
        select(_O.c.gesture_id, _O.c.outcome, func.count(), func.sum(_O.c.cost))
        .join_from(_O, _D, _D.c.id == _O.c.decision_id)
        .where(*in_period)
        .group_by(_O.c.gesture_id, _O.c.outcome)
    ).all()
    r_rec = conn.execute(
        select(_DR.c.rule_id, func.count())
        .join_from(_DR, _DG, (_DG.c.decision_id == _DR.c.decision_id) & (_DG.c.gesture_id == _DR.c.gesture_id))
        .join(_D, _D.c.id == _DR.c.decision_id)
        .where(*in_period, _DG.c.status == "recommended")
        .group_by(_DR.c.rule_id)
    ).all()
    r_out = conn.execute(
        select(_DR.c.rule_id, _O.c.outcome, func.count(), func.sum(_O.c.cost))
        .join_from(_O, _DR, (_DR.c.decision_id == _O.c.decision_id) & (_DR.c.gesture_id == _O.c.gesture_id))
        .join(_D, _D.c.id == _O.c.decision_id)
        .where(*in_period)
        .group_by(_DR.c.rule_id, _O.c.outcome)
    ).all()
    return Report(tenant=tenant, since=since, until=until, decisions=decisions,
                  gestures=_rows([tuple(r) for r in g_rec], [tuple(r) for r in g_out]),
                  rules=_rows([tuple(r) for r in r_rec], [tuple(r) for r in r_out]))


class Reports(StoreBase):
    """Budget usage and reports."""

    def budget_usage(self, tenant: str, day: date | None = None) -> list[BudgetLine]:
        """What each budget scope of ``tenant`` has spent on ``day`` (default: today)."""
        check_tenant(tenant)
        day = day or self.policy.budget_day(self._now())
        budget = self.policy.budget_for(tenant)

        def load(conn: Connection) -> list[BudgetLine]:
            rows = conn.execute(select(_B).where(_B.c.tenant == tenant, _B.c.day == day)
                                .order_by(_B.c.scope, _B.c.scope_id)).all()
            out = []
            for r in rows:
                limits = {(s, i): lim for s, i, lim in budgets.scopes_for(
                    budget, r.scope_id if r.scope == "store" else None, r.scope_id if r.scope == "staff" else None)}
                out.append(BudgetLine(scope=r.scope, scope_id=r.scope_id, day=r.day, spent=float(r.spent),
                                      limit=limits.get((r.scope, r.scope_id))))
            return out

        return self._read(load)

    def report(self, tenant: str, since: datetime | date | None = None,
               until: datetime | date | None = None) -> Report:
        """Per gesture and per rule: recommended, offered, accepted, declined, delivered and
        delivered cost, for decisions made in ``[since, until)`` (default: the last 30 days)."""
        check_tenant(tenant)
        end = as_utc(until) if until is not None else self._now()
        start = as_utc(since) if since is not None else shift(end, -30)
        if start > end:
            raise InvalidStoreInput(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
        return self._read(lambda conn: build_report(conn, tenant, start, end))
