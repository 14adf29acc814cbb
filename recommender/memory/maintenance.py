"""Retention: deleting what was logged before a cutoff, never inside the policy's look-back."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from .base import StoreBase, as_utc, check_tenant, count_rows, days_text
from .errors import InvalidStoreInput
from .models import BudgetUsage, Decision, DecisionGesture, DecisionRule, Outcome, Visit, table_of
from .records import PruneCounts
from .values import shift

__all__ = ["Maintenance"]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_DR = table_of(DecisionRule)
_O = table_of(Outcome)
_V = table_of(Visit)
_B = table_of(BudgetUsage)


class Maintenance(StoreBase):
    """Pruning old history."""

    # -- retention --------------------------------------------------------------------

    def prune(self, before: datetime | date, *, tenant: str | None = None, dry_run: bool = False) -> PruneCounts:
        """Delete what was logged before ``before``: decisions with their gestures, rules and
        outcomes, visits, and budget usage of earlier days; one tenant's or everyone's.

        Refused (``InvalidStoreInput``) inside the policy's look-back
        (:meth:`Policy.lookback_days`): contact rules, the abuse check and the goodwill cap
        read that history, so pruning it would change what is recommended. Customer profiles
        stay (``forget_customer`` removes one).
        """
        cutoff = as_utc(before)
        if tenant is not None:
            check_tenant(tenant)
        days = self.policy.lookback_days()
        latest = shift(self._now(), -days)
        if cutoff > latest:
            raise InvalidStoreInput(
                f"before {cutoff:%Y-%m-%d %H:%M} UTC is inside the policy's {days_text(days)} look-back; "
                f"the latest allowed is {latest:%Y-%m-%d %H:%M} UTC")
        day = self.policy.budget_day(cutoff)

        def scoped(table: Any, *conds: Any) -> Any:
            return and_(*conds, table.c.tenant == tenant) if tenant is not None else and_(*conds)

        def work(conn: Connection) -> PruneCounts:
            old = select(_D.c.id).where(scoped(_D, _D.c.created_at < cutoff))
            counts = PruneCounts(
                before=cutoff, tenant=tenant, dry_run=dry_run,
                decisions=count_rows(conn, scoped(_D, _D.c.created_at < cutoff), _D),
                outcomes=count_rows(conn, _O.c.decision_id.in_(old), _O),
                visits=count_rows(conn, scoped(_V, _V.c.occurred_at < cutoff), _V),
                budget_days=count_rows(conn, scoped(_B, _B.c.day < day), _B))
            if not dry_run:  # children first: no reliance on the database's cascades
                conn.execute(delete(_O).where(_O.c.decision_id.in_(old)))
                conn.execute(delete(_DR).where(_DR.c.decision_id.in_(old)))
                conn.execute(delete(_DG).where(_DG.c.decision_id.in_(old)))
                conn.execute(update(_V).where(_V.c.decision_id.in_(old)).values(decision_id=None))
                conn.execute(delete(_D).where(scoped(_D, _D.c.created_at < cutoff)))
                conn.execute(delete(_V).where(scoped(_V, _V.c.occurred_at < cutoff)))
                conn.execute(delete(_B).where(scoped(_B, _B.c.day < day)))
            return counts

        return self._write(work) if not dry_run else self._read(work)

