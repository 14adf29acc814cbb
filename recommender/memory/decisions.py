"""The decision log: every ``recommend()`` with a store is logged (the Memory seam's
``record_decision``) with its gestures, the rules that recommended them, what was held and
why, and the customer's visit; :meth:`DecisionLog.get_decision` reads one back for an audit.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from sqlalchemy import Connection, and_, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .base import as_utc, check_decision_id, check_tenant
from .errors import InvalidStoreInput, TenantMismatch, UnknownDecision
from .models import CustomerProfileRow, Decision, DecisionGesture, DecisionRule, Outcome, Visit, table_of
from .learning import log_decision
from .outcomes import outcome_record
from .percentiles import tenure_start
from .records import DecisionGestureRecord, DecisionRecord
from .screening import Screening, screening_key
from .values import check_json, check_occurred_at

if TYPE_CHECKING:
    from ..context import Context
    from ..results import RecommendationResult

__all__ = ["DecisionLog"]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_DR = table_of(DecisionRule)
_O = table_of(Outcome)
_V = table_of(Visit)
_C = table_of(CustomerProfileRow)


class DecisionLog(Screening):
    """Logging decisions and reading them back."""

    # -- the Memory seam: record_decision ---------------------------------------------

    def record_decision(self, ctx: "Context", result: "RecommendationResult", *,
                        now: datetime | None = None, extras_steer: float | None = None,
                        profile_revision: int | None = None) -> str:
        """Log a decision (and the customer's visit, and the lifetime value and tenure its context
        states); return the decision id (a UUID).

        The recommender passes what it took from this store for the decision: the steer of its
        extras draw (``extras_steer``: given only when the draw was made, i.e. an extra was on
        offer) and the revision of the tenant's stored profile in force (``profile_revision``).
        Both are logged, so a replay uses them again instead of recomputing them."""
        decision_id = str(uuid.uuid4())
        created = self._now(now)
        self._check_ids(ctx)
        occurred = (check_occurred_at(as_utc(ctx.interaction.occurred_at)) if ctx.interaction.occurred_at
                    else created)
        tenant = ctx.business.id
        customer_id = ctx.customer.id
        key = screening_key(ctx)
        with self._screened_lock:
            screening = next((s for s in self._screened if s[0] == key), None)
            if screening is not None:
                self._screened.remove(screening)
        known: Mapping[str, tuple[str, str]] = screening[1] if screening else {}
        store_held: Mapping[str, str] = screening[2] if screening else {}

        recs = [{"gesture_id": r.gesture_id, "title": r.title, "category": r.category, "tier": r.tier,
                 "cost": r.cost, "score": r.score, "rules": [m.rule_id for m in r.rules]}
                for r in result.recommendations]
        # ``source: store``: held by this store's screening (contact policy, goodwill cap,
        # budgets, authority limits, abuse review), which a replay of the log applies again.
        held = [{"gesture_id": w.gesture_id, "title": w.title, "tier": w.tier, "cost": w.cost, "score": w.score,
                 "reason": w.reason, "detail": w.detail, "rules": list(w.rules),
                 "available_on": w.available_on.isoformat() if w.available_on else None,
                 "source": "store" if w.gesture_id in store_held else "recommender"}
                for w in [*result.needs_approval, *result.withheld]]
        check_json(ctx.model_dump(exclude_none=True), "")  # JSON mode would turn NaN into null
        logged_context = ctx.model_dump(mode="json", exclude_none=True)
        check_json(recs, "recommendations")
        check_json(held, "withheld")
        gesture_rows: list[dict[str, Any]] = []
        rule_rows: list[dict[str, Any]] = []
        for pos, r in enumerate(result.recommendations):
            gesture_rows.append(dict(decision_id=decision_id, gesture_id=r.gesture_id, position=pos,
                                     status="recommended", category=r.category, tier=r.tier, cost=r.cost,
                                     score=r.score))
            for rule_id in dict.fromkeys(m.rule_id for m in r.rules):
                rule_rows.append(dict(decision_id=decision_id, gesture_id=r.gesture_id, rule_id=rule_id))
        seen = {r.gesture_id for r in result.recommendations}
        for pos, w in enumerate(result.needs_approval, start=len(gesture_rows)):
            if w.gesture_id in seen:
                continue
            seen.add(w.gesture_id)
            category, tier = known.get(w.gesture_id, ("unknown", w.tier))
            gesture_rows.append(dict(decision_id=decision_id, gesture_id=w.gesture_id, position=pos,
                                     status="needs_approval", category=category, tier=tier, cost=w.cost,
                                     score=w.score))
            for rule_id in dict.fromkeys(w.rules):
                rule_rows.append(dict(decision_id=decision_id, gesture_id=w.gesture_id, rule_id=rule_id))

        offered = extras_steer is not None
        if offered and (not isinstance(extras_steer, (int, float)) or not math.isfinite(extras_steer)):
            raise InvalidStoreInput(f"extras_steer: a finite number, got {extras_steer!r}", field="extras_steer")
        facts = _customer_facts(ctx, occurred) if customer_id else {}

        def write(conn: Connection) -> None:
            conn.execute(insert(_D).values(
                id=decision_id, created_at=created, occurred_at=occurred, tenant=tenant, customer_id=customer_id,
                store_id=ctx.business.store_id, staff_id=ctx.staff.id, staff_level=ctx.staff.level,
                issue=ctx.interaction.issue, context_hash=result.receipt.context_hash,
                receipt_id=result.receipt.id, ruleset_version=result.ruleset_version,
                recommendations=recs, held=held, context=logged_context, profile_revision=profile_revision,
                extras_offered=offered,
                extras_listed=any(r.tier == "exceed" for r in result.recommendations) if offered else None,
                extras_steer=float(extras_steer) if extras_steer is not None else None))
            if facts and customer_id:
                _remember_facts(conn, tenant, customer_id, occurred, created, facts)
            if gesture_rows:
                conn.execute(insert(_DG), gesture_rows)
            if rule_rows:
                conn.execute(insert(_DR), rule_rows)
            log_decision(conn, decision_id, tenant, result)
            if customer_id:
                same_visit = None
                if ctx.interaction.occurred_at is not None:  # a retried call for the same interaction
                    same_visit = conn.execute(
                        select(_V.c.id).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id,
                                              _V.c.issue == ctx.interaction.issue, _V.c.occurred_at == occurred)
                    ).first()
                if same_visit is None:
                    conn.execute(insert(_V).values(tenant=tenant, customer_id=customer_id, decision_id=decision_id,
                                                   issue=ctx.interaction.issue, store_id=ctx.business.store_id,
                                                   occurred_at=occurred))

        self._write(write)
        return decision_id

    def get_decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord:
        """A logged decision with its gestures and outcomes."""

        check_decision_id(decision_id)
        if tenant is not None:
            check_tenant(tenant)

        def load(conn: Connection) -> DecisionRecord:
            row = conn.execute(select(_D).where(_D.c.id == decision_id)).first()
            if row is None:
                raise UnknownDecision(decision_id)
            if tenant is not None and row.tenant != tenant:
                raise TenantMismatch(f"decision {decision_id}", tenant)
            rules: dict[str, list[str]] = defaultdict(list)
            for r in conn.execute(select(_DR.c.gesture_id, _DR.c.rule_id).where(_DR.c.decision_id == decision_id)):
                rules[r.gesture_id].append(r.rule_id)
            gestures = [DecisionGestureRecord(gesture_id=g.gesture_id, status=g.status, category=g.category,
                                              tier=g.tier, cost=g.cost, score=g.score, rules=rules[g.gesture_id])
                        for g in conn.execute(select(_DG).where(_DG.c.decision_id == decision_id)
                                              .order_by(_DG.c.position))]
            outcomes = [outcome_record(o) for o in conn.execute(
                select(_O).where(_O.c.decision_id == decision_id).order_by(_O.c.id))]
            data = {c: getattr(row, c) for c in _D.c.keys()}
            return DecisionRecord(**data, gestures=gestures, outcomes=outcomes)

        return self._read(load)


def _customer_facts(ctx: "Context", occurred: datetime) -> dict[str, Any]:
    """The lifetime value and tenure start the context states (what the percentiles read)."""
    c = ctx.customer
    facts: dict[str, Any] = {}
    if c.lifetime_value is not None:
        facts["lifetime_value"] = float(c.lifetime_value)
    if c.tenure_years is not None:
        facts["tenure_since"] = tenure_start(occurred, c.tenure_years)
    return facts


def _remember_facts(conn: Connection, tenant: str, customer_id: str, occurred: datetime, created: datetime,
                    facts: dict[str, Any]) -> None:
    """Keep the customer's latest stated lifetime value and tenure (one upsert; a decision dated
    before the facts already kept never overwrites them, and facts stated again unchanged write
    nothing)."""
    stmt = _facts_upsert(conn.dialect.name, tuple(sorted(facts)))
    conn.execute(stmt, dict(tenant=tenant, customer_id=customer_id, preferences={}, interests=[], notes=[],
                            created_at=created, updated_at=created, facts_at=occurred, **facts))


@functools.lru_cache(maxsize=8)
def _facts_upsert(dialect: str, keys: tuple[str, ...]) -> Any:
    """The upsert, built once per database and set of facts (building it costs more than running it)."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(_C)
    changed = or_(*(_C.c[k].is_distinct_from(stmt.excluded[k]) for k in keys))
    return stmt.on_conflict_do_update(
        index_elements=[_C.c.tenant, _C.c.customer_id],
        set_={"facts_at": stmt.excluded.facts_at, **{k: stmt.excluded[k] for k in keys}},
        where=and_(or_(_C.c.facts_at.is_(None), _C.c.facts_at <= stmt.excluded.facts_at), changed))
