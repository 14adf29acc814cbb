"""The decision log: every ``recommend()`` with a store is logged (the Memory seam's
``record_decision``) with its gestures, the rules that recommended them, what was held and
why, and the customer's visit; :meth:`DecisionLog.get_decision` reads one back for an audit.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from sqlalchemy import Connection, and_, bindparam, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .base import as_utc, check_decision_id, check_tenant
from .errors import InvalidStoreInput, TenantMismatch, UnknownDecision
from . import pg_log
from .groupcommit import GroupCommit
from .learning import LearningDecision
from .models import CustomerProfileRow, Decision, DecisionGesture, DecisionRule, Outcome, Visit, table_of
from .outcomes import outcome_record
from .percentiles import tenure_start
from .records import DecisionGestureRecord, DecisionRecord
from .screening import Screening, screening_key
from .values import check_occurred_at, checked_json

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
_LD = table_of(LearningDecision)


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
        screening = self._take_screening(screening_key(ctx))
        known: Mapping[str, tuple[str, str]] = screening[0] if screening else {}
        store_held: Mapping[str, str] = screening[1] if screening else {}

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
        # The context dumped once, in Python mode (JSON mode would turn a NaN in an open map
        # into null), checked, and encoded once: the row binds its text, date-times written
        # as the JSON mode writes them (the second dump happens only when the walk decides).
        logged_context = checked_json(ctx.model_dump(exclude_none=True), "",
                                      lambda: ctx.model_dump(mode="json", exclude_none=True))
        logged_recs = checked_json(recs, "recommendations")
        logged_held = checked_json(held, "withheld")
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
        trace = getattr(result, "learning", None)
        rows = _DecisionRows(
            decision=dict(
                id=decision_id, created_at=created, occurred_at=occurred, tenant=tenant, customer_id=customer_id,
                store_id=ctx.business.store_id, staff_id=ctx.staff.id, staff_level=ctx.staff.level,
                issue=ctx.interaction.issue, context_hash=result.receipt.context_hash,
                receipt_id=result.receipt.id, ruleset_version=result.ruleset_version,
                recommendations=logged_recs, held=logged_held, context=logged_context,
                profile_revision=profile_revision,
                extras_offered=offered,
                extras_listed=any(r.tier == "exceed" for r in result.recommendations) if offered else None,
                extras_steer=float(extras_steer) if extras_steer is not None else None),
            facts=dict(tenant=tenant, customer_id=customer_id, preferences={}, interests=[], notes=[],
                       created_at=created, updated_at=created, facts_at=occurred, **facts) if facts else None,
            gestures=gesture_rows, rules=rule_rows,
            learning=(dict(decision_id=decision_id, tenant=tenant,
                                trace=checked_json(trace.model_dump(mode="json"), "learning"))
                      if trace is not None else None),
            visit=dict(tenant=tenant, customer_id=customer_id, decision_id=decision_id, issue=ctx.interaction.issue,
                       store_id=ctx.business.store_id, occurred_at=occurred) if customer_id else None,
            retried_visit=ctx.interaction.occurred_at is not None)
        self._decision_log().submit(rows)
        return decision_id

    def _decision_log(self) -> GroupCommit["_DecisionRows"]:
        """The store's group commit of decision-log rows (made on first use)."""
        log = self.__dict__.get("_group_commit")
        if log is None:
            with self._screened_lock:
                log = self.__dict__.get("_group_commit")
                if log is None:
                    log = self.__dict__["_group_commit"] = GroupCommit(
                        lambda batch: self._write(lambda conn: _write_decisions(conn, batch)))
        return log

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


@functools.lru_cache(maxsize=8)
def _facts_upsert(dialect: str, keys: tuple[str, ...]) -> Any:
    """Keep the customer's latest stated lifetime value and tenure: the upsert, built once per
    database and set of facts (building it costs more than running it). A decision dated before
    the facts already kept never overwrites them, and facts stated again unchanged write nothing."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(_C)
    changed = or_(*(_C.c[k].is_distinct_from(stmt.excluded[k]) for k in keys))
    return stmt.on_conflict_do_update(
        index_elements=[_C.c.tenant, _C.c.customer_id],
        set_={"facts_at": stmt.excluded.facts_at, **{k: stmt.excluded[k] for k in keys}},
        where=and_(or_(_C.c.facts_at.is_(None), _C.c.facts_at <= stmt.excluded.facts_at), changed))


@dataclass(frozen=True)
class _DecisionRows:
    """One decision's rows in every table its logging writes."""

    decision: dict[str, Any]
    facts: dict[str, Any] | None
    gestures: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    learning: dict[str, Any] | None
    visit: dict[str, Any] | None
    retried_visit: bool  # the interaction's time is given: a retried call may have logged its visit


_INSERT_DECISION = insert(_D)
_INSERT_GESTURES = insert(_DG)
_INSERT_RULES = insert(_DR)
_INSERT_LEARNING = insert(_LD)
_INSERT_VISIT = insert(_V)
_SAME_VISIT = select(_V.c.id).where(_V.c.tenant == bindparam("tenant"), _V.c.customer_id == bindparam("customer_id"),
                                    _V.c.issue == bindparam("issue"), _V.c.occurred_at == bindparam("occurred_at"))


def _write_decisions(conn: Connection, batch: list[_DecisionRows]) -> None:
    """Every table's rows of ``batch``: on PostgreSQL in one statement (:mod:`.pg_log`), else
    in one statement per table (the facts upserts in order: a decision dated before the facts
    kept never overwrites them)."""
    facts = _latest_facts([b.facts for b in batch if b.facts is not None])
    visits = _batch_visits(batch)
    if conn.dialect.name == "postgresql" and pg_log.write_batch(conn, batch, facts, visits):
        return
    conn.execute(_INSERT_DECISION, [b.decision for b in batch])
    _write_facts(conn, facts, [b.facts for b in batch if b.facts is not None])
    gestures = [g for b in batch for g in b.gestures]
    if gestures:
        conn.execute(_INSERT_GESTURES, gestures)
    rules = [r for b in batch for r in b.rules]
    if rules:
        conn.execute(_INSERT_RULES, rules)
    learning = [b.learning for b in batch if b.learning is not None]
    if learning:
        conn.execute(_INSERT_LEARNING, learning)
    new = [v for v, retried in visits if not retried or conn.execute(_SAME_VISIT, {
        k: v[k] for k in ("tenant", "customer_id", "issue", "occurred_at")}).first() is None]
    if new:
        conn.execute(_INSERT_VISIT, new)


def _batch_visits(batch: list[_DecisionRows]) -> list[tuple[dict[str, Any], bool]]:
    """The batch's visits, each with whether its interaction may have been logged before (a
    retried call: its time is given); a retried interaction's only once in the batch. The
    writer skips a retried one already stored."""
    out: list[tuple[dict[str, Any], bool]] = []
    seen: set[tuple[Any, ...]] = set()
    for b in batch:
        v = b.visit
        if v is None:
            continue
        if b.retried_visit:
            key = (v["tenant"], v["customer_id"], v["issue"], v["occurred_at"])
            if key in seen:
                continue
            seen.add(key)
        out.append((v, b.retried_visit))
    return out


_FACT_KEYS = ("lifetime_value", "tenure_since")


def _latest_facts(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The customers' stated facts of a batch as sequential upserts would leave them, one row
    per customer (the latest ``facts_at``; of equals, the last), since one statement may not
    update a row twice; None when a customer states two different sets of facts in the batch
    (then only upserting each row in turn gives that answer)."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    sets: dict[tuple[str, str], tuple[str, ...]] = {}
    for row in rows:
        keys = tuple(k for k in _FACT_KEYS if k in row)
        who = (row["tenant"], row["customer_id"])
        if sets.setdefault(who, keys) != keys:
            return None
        if who not in kept or row["facts_at"] >= kept[who]["facts_at"]:
            kept[who] = row
    return list(kept.values())


def _write_facts(conn: Connection, latest: list[dict[str, Any]] | None, rows: list[dict[str, Any]]) -> None:
    """The customers' stated facts (``latest`` from :func:`_latest_facts`): one upsert per set
    of facts stated, or, when ``latest`` is None, one upsert per row of ``rows`` in order."""
    if latest is None:
        for row in rows:
            conn.execute(_facts_upsert(conn.dialect.name, tuple(k for k in _FACT_KEYS if k in row)), row)
        return
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in latest:
        groups.setdefault(tuple(k for k in _FACT_KEYS if k in row), []).append(row)
    for keys, group in groups.items():
        conn.execute(_facts_upsert(conn.dialect.name, keys), group)
