"""Outcomes: what happened to a recommended gesture, recorded once per idempotency key;
``delivered`` spends the budgets in the same transaction.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from . import budgets
from .approvals import approver
from ..context import MAX_NUMBER, MAX_TEXT_CHARS
from .base import check_decision_id, check_tenant
from .errors import (
    DuplicateOutcome,
    GestureNotInDecision,
    IdempotencyConflict,
    InvalidStoreInput,
    TenantMismatch,
    UnknownDecision,
)
from .learning import Learning, config_of, learn_from_outcome
from .models import OUTCOME_KINDS, Decision, DecisionGesture, Outcome, table_of
from .records import OutcomeRecord
from .values import check_text

__all__ = ["Outcomes", "outcome_record"]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_O = table_of(Outcome)


class Outcomes(Learning):
    """Recording outcomes and reading the latest."""

    # -- outcomes -----------------------------------------------------------------

    def record_outcome(self, decision_id: str, gesture_id: str, outcome: str, idempotency_key: str,
                       note: str | None = None, actual_cost: float | None = None, tenant: str | None = None,
                       *, now: datetime | None = None) -> OutcomeRecord:
        """Record what happened to a recommended gesture.

        Idempotent: the same ``idempotency_key`` with the same payload returns the stored
        outcome (``replayed=True``) and counts nothing twice; with a different payload it
        raises :class:`IdempotencyConflict`. ``delivered`` consumes the tenant's budgets
        (``actual_cost``, else the recommended cost) in the same transaction, or raises
        :class:`BudgetExceeded` and records nothing. ``tenant``, when given, must own the
        decision (:class:`TenantMismatch`).
        """
        if outcome not in OUTCOME_KINDS:
            raise InvalidStoreInput(f"outcome: invalid outcome {str(outcome)[:40]!r}: one of "
                                    f"{', '.join(OUTCOME_KINDS)}", field="outcome")
        if not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > 200:
            raise InvalidStoreInput("idempotency_key: an idempotency key (1 to 200 characters) is required",
                                    field="idempotency_key")
        check_text(idempotency_key, "idempotency_key", max_length=200)
        check_text(gesture_id, "gesture_id", max_length=200)
        if note is not None:
            check_text(note, "note", max_length=MAX_TEXT_CHARS, empty=True)
        if actual_cost is not None:
            if isinstance(actual_cost, bool) or not isinstance(actual_cost, (int, float)) \
                    or not math.isfinite(actual_cost) or not 0 <= actual_cost <= MAX_NUMBER:
                raise InvalidStoreInput(f"actual_cost: invalid actual cost {actual_cost!r}: a finite number "
                                        f"from 0 to {MAX_NUMBER:g}", field="actual_cost")
            actual_cost = float(actual_cost)
        if tenant is not None:
            check_tenant(tenant)
        check_decision_id(decision_id)
        recorded_at = self._now(now)
        policy = self.policy

        def write(conn: Connection) -> OutcomeRecord:
            dec = conn.execute(select(_D.c.tenant, _D.c.customer_id, _D.c.store_id, _D.c.staff_id)
                               .where(_D.c.id == decision_id)).first()
            if dec is None:
                raise UnknownDecision(decision_id)
            if tenant is not None and dec.tenant != tenant:
                raise TenantMismatch(f"decision {decision_id}", tenant)
            def replay(existing: Any) -> OutcomeRecord:
                diffs = [f"{name}: stored {old!r}, now {new!r}" for name, old, new in (
                    ("decision", existing.decision_id, decision_id), ("gesture", existing.gesture_id, gesture_id),
                    ("outcome", existing.outcome, outcome), ("note", existing.note, note),
                    ("actual_cost", existing.actual_cost, actual_cost)) if old != new]
                if diffs:
                    raise IdempotencyConflict(idempotency_key, diffs)
                return outcome_record(existing, replayed=True)

            existing = conn.execute(select(_O).where(_O.c.tenant == dec.tenant,
                                                     _O.c.idempotency_key == idempotency_key)).first()
            if existing is not None:
                return replay(existing)
            dg = conn.execute(select(_DG.c.category, _DG.c.tier, _DG.c.cost)
                              .where(_DG.c.decision_id == decision_id, _DG.c.gesture_id == gesture_id)).first()
            if dg is None:
                listed = conn.execute(select(_DG.c.gesture_id).where(_DG.c.decision_id == decision_id)
                                      .order_by(_DG.c.position)).scalars().all()
                raise GestureNotInDecision(decision_id, gesture_id, list(listed))
            dup = conn.execute(select(_O).where(
                _O.c.decision_id == decision_id, _O.c.gesture_id == gesture_id, _O.c.outcome == outcome)).first()
            if dup is not None:
                if dup.idempotency_key == idempotency_key:  # a concurrent retry committed in between
                    return replay(dup)
                raise DuplicateOutcome(decision_id, gesture_id, outcome, dup.idempotency_key)
            cost = actual_cost if actual_cost is not None else (None if dg.cost is None else float(dg.cost))
            values = dict(tenant=dec.tenant, idempotency_key=idempotency_key, decision_id=decision_id,
                          gesture_id=gesture_id, outcome=outcome, customer_id=dec.customer_id,
                          category=dg.category, tier=dg.tier, note=note, actual_cost=actual_cost, cost=cost,
                          recorded_at=recorded_at, approved_by=approver(conn, decision_id, gesture_id))
            key = conn.execute(insert(_O).values(**values)).inserted_primary_key
            assert key is not None
            new_id = key[0]
            learn_from_outcome(conn, config_of(self), dec.tenant, decision_id, gesture_id, outcome, new_id,
                               recorded_at)
            if outcome == "delivered" and cost:
                scopes = budgets.scopes_for(policy.budget_for(dec.tenant), dec.store_id, dec.staff_id)
                budgets.consume(conn, dec.tenant, scopes, cost, policy.budget_day(recorded_at))
            return OutcomeRecord(id=new_id, **values)

        record: OutcomeRecord = self._write(write)
        self._forget_evidence(record.tenant)  # the next decision here ranks with what this taught
        return record

    def recent_outcomes(self, tenant: str, limit: int = 20) -> list[OutcomeRecord]:
        """The tenant's latest outcomes, newest first (the agent console's feed)."""
        check_tenant(tenant)

        def load(conn: Connection) -> list[OutcomeRecord]:
            rows = conn.execute(select(_O).where(_O.c.tenant == tenant)
                                .order_by(_O.c.recorded_at.desc(), _O.c.id.desc()).limit(max(1, min(limit, 500))))
            return [outcome_record(r) for r in rows]

        return self._read(load)


def outcome_record(row: Any, replayed: bool = False) -> OutcomeRecord:
    return OutcomeRecord(id=row.id, decision_id=row.decision_id, gesture_id=row.gesture_id, outcome=row.outcome,
                         tenant=row.tenant, customer_id=row.customer_id, category=row.category, tier=row.tier,
                         idempotency_key=row.idempotency_key,
                         note=row.note, actual_cost=row.actual_cost, cost=row.cost, recorded_at=row.recorded_at,
                         replayed=replayed, approved_by=row.approved_by)

