"""Learning from outcomes, in the store: the evidence behind each gesture's acceptance per
segment, updated inside the outcome's transaction, shared by every server on the database.

Tables (migration ``0004_learning``):

* ``learning_stats``: per tenant, gesture and segment, the recency-weighted counts of
  acceptances, declines and deliveries, the raw number of outcomes and when they were last
  updated (the model is :mod:`recommender.learning`);
* ``learning_decisions``: per logged decision, what the pipeline logged for learning (the
  extras draw's chance and result, the Thompson choice probabilities, the evidence every
  candidate was ranked with): the logged propensities of off-policy evaluation, and what a
  replay ranks with;
* ``learning_tenants``: a business whose learning is frozen (evidence kept and used, no
  longer updated).

An outcome is learned from once: only when its row is first written (a replayed
idempotency key changes nothing), and an acceptance counts once per decision gesture
(``accepted`` then ``delivered`` is one acceptance and one delivery).
"""

from __future__ import annotations

import time as _time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import (Boolean, Connection, Float, ForeignKey, Integer, String, bindparam, delete, insert,
                        select)
from sqlalchemy import update as update_
from sqlalchemy.orm import Mapped, mapped_column

from ..learning import (
    LearningConfig,
    Posterior,
    Stats,
    counts_of,
    credible_interval,
    evidence_text,
    posterior,
    segment_key,
    update,
)
from .base import _CACHE_MAX, StoreBase, check_tenant
from .models import GESTURE, TENANT, Base, Json, Outcome, UTCDateTime, table_of

if TYPE_CHECKING:
    from ..context import Context
    from ..results import RecommendationResult

__all__ = ["Learning", "LearningStat", "LearningDecision", "LearningTenant", "learn_from_outcome",
           "config_of"]

_DEFAULT = LearningConfig()


def config_of(store: Any) -> LearningConfig:
    """The store's learning configuration (:attr:`Learning.learning_config`)."""
    config = getattr(store, "learning_config", None)
    return config if isinstance(config, LearningConfig) else _DEFAULT


class LearningStat(Base):
    """The evidence of one gesture in one segment of a business."""

    __tablename__ = "learning_stats"

    tenant: Mapped[str] = mapped_column(String(TENANT), primary_key=True)
    gesture_id: Mapped[str] = mapped_column(String(GESTURE), primary_key=True)
    segment: Mapped[str] = mapped_column(String(400), primary_key=True)
    accepted: Mapped[float] = mapped_column(Float, nullable=False)
    declined: Mapped[float] = mapped_column(Float, nullable=False)
    delivered: Mapped[float] = mapped_column(Float, nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LearningDecision(Base):
    """What a logged decision's ranking learned with, and its stochastic parts."""

    __tablename__ = "learning_decisions"

    decision_id: Mapped[str] = mapped_column(String(36), ForeignKey("decisions.id", ondelete="CASCADE"),
                                             primary_key=True)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    trace: Mapped[Any] = mapped_column(Json, nullable=False)


class LearningTenant(Base):
    """A business's learning switches."""

    __tablename__ = "learning_tenants"

    tenant: Mapped[str] = mapped_column(String(TENANT), primary_key=True)
    frozen: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


_S = table_of(LearningStat)
_EVIDENCE = select(_S.c.gesture_id, _S.c.segment, _S.c.accepted, _S.c.declined, _S.c.delivered, _S.c.n).where(
    _S.c.tenant == bindparam("tenant"), _S.c.segment.in_(bindparam("segments", expanding=True)))
_LD = table_of(LearningDecision)
_LT = table_of(LearningTenant)
_O = table_of(Outcome)


def _frozen(conn: Connection, tenant: str) -> bool:
    return bool(conn.execute(select(_LT.c.frozen).where(_LT.c.tenant == tenant)).scalar())


def learn_from_outcome(conn: Connection, config: LearningConfig, tenant: str, decision_id: str, gesture_id: str,
                       outcome: str, outcome_id: int, at: datetime) -> None:
    """Inside the outcome's transaction, once the new outcome row is written: update the
    gesture's evidence in the segment its decision logged (nothing for a decision logged
    without a trace, an ``offered`` outcome, or a frozen business)."""
    if outcome == "offered" or _frozen(conn, tenant):
        return
    trace = conn.execute(select(_LD.c.trace).where(_LD.c.decision_id == decision_id)).scalar()
    logged = ((trace or {}).get("evidence") or {}).get(gesture_id) if isinstance(trace, dict) else None
    if not isinstance(logged, dict) or not logged.get("segment"):
        return
    segment = str(logged["segment"])
    before = set(conn.execute(select(_O.c.outcome).where(
        _O.c.decision_id == decision_id, _O.c.gesture_id == gesture_id, _O.c.id != outcome_id)).scalars())
    acc, dec, dlv = counts_of(outcome, before)
    if not (acc or dec or dlv):
        return
    key = (_S.c.tenant == tenant, _S.c.gesture_id == gesture_id, _S.c.segment == segment)
    row = conn.execute(select(_S).where(*key).with_for_update()).first()
    old = Stats() if row is None else Stats(row.accepted, row.declined, row.delivered, row.n)
    new, stamp = update(old, None if row is None else row.updated_at, at, acc, dec, dlv, config.half_life_days)
    values = dict(accepted=new.accepted, declined=new.declined, delivered=new.delivered, n=new.n, updated_at=stamp)
    if row is None:  # a concurrent first insert loses on the primary key: the transaction is retried
        conn.execute(insert(_S).values(tenant=tenant, gesture_id=gesture_id, segment=segment, **values))
    else:
        conn.execute(update_(_S).where(*key).values(**values))


class Learning(StoreBase):
    """What the store has learned from outcomes (see :mod:`recommender.learning`).

    ``learning_config`` (a :class:`~recommender.learning.LearningConfig`): the segment
    dimensions, half-life, minimum evidence and prior strength; set it on the store (the
    same on every server sharing the database).
    """

    learning_config: LearningConfig = LearningConfig()

    def propensities(self, ctx: "Context", offers: Iterable[tuple[str, str, int]]) -> dict[str, Posterior]:
        """Each offer's posterior in its segment, ``offers`` as ``(gesture_id, tier, priority)``."""
        config, tenant = self.learning_config, ctx.business.id
        offers = list(offers)
        segments = {tier: segment_key(ctx, tier, config.segments) for tier in {t for _, t, _ in offers}}
        try:
            check_tenant(tenant, "business.id")
        except Exception:  # noqa: BLE001 - the decision log refuses it with the field named
            return {}

        evidence = self._evidence(tenant, set(segments.values()))
        return {g: posterior(evidence[segments[tier]].get(g), priority, segments[tier], config)
                for g, tier, priority in offers}

    def _evidence(self, tenant: str, segments: set[str]) -> dict[str, dict[str, Stats]]:
        """Each segment's evidence per gesture, kept per tenant and segment for the policy's
        ``learning_cache_seconds`` (the segments not kept are read in one statement)."""
        seconds = self.policy.learning_cache_seconds
        now = _time.monotonic()
        out: dict[str, dict[str, Stats]] = {}
        for seg in segments:
            hit = self._cache.get(("learning", f"{tenant}\x00{seg}"))
            if hit is not None and hit[0] > now:
                out[seg] = hit[1]
        missing = sorted(segments - set(out))
        if not missing:
            return out
        generation = self._generations.get(("learning", tenant), 0)

        def load(conn: Connection) -> dict[str, dict[str, Stats]]:
            found: dict[str, dict[str, Stats]] = {seg: {} for seg in missing}
            for r in conn.execute(_EVIDENCE, {"tenant": tenant, "segments": missing}):
                found[r.segment][r.gesture_id] = Stats(r.accepted, r.declined, r.delivered, r.n)
            return found

        found = self._read(load)
        if seconds > 0 and self._generations.get(("learning", tenant), 0) == generation:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            for seg, stats in found.items():
                self._cache[("learning", f"{tenant}\x00{seg}")] = (now + seconds, stats)
        return {**out, **found}

    def _forget_evidence(self, tenant: str) -> None:
        """After a write of the tenant's evidence: no decision of this process uses the old one."""
        self._generations[("learning", tenant)] = self._generations.get(("learning", tenant), 0) + 1
        for key in [k for k in self._cache if k[0] == "learning" and k[1].startswith(tenant + "\x00")]:
            self._cache.pop(key, None)

    def learning_state(self, tenant: str, *, gesture: str | None = None, limit: int = 500) -> dict[str, Any]:
        """A business's learned state: whether it is frozen, and each gesture's evidence per
        segment (most outcomes first), as the console and ``recommender learning show`` read it."""
        check_tenant(tenant)
        config = self.learning_config

        def load(conn: Connection) -> dict[str, Any]:
            frozen = _frozen(conn, tenant)
            q = select(_S).where(_S.c.tenant == tenant)
            if gesture:
                q = q.where(_S.c.gesture_id == gesture)
            rows = conn.execute(q.order_by(_S.c.n.desc(), _S.c.gesture_id, _S.c.segment)
                                .limit(max(1, min(limit, 10_000)))).fetchall()
            out = []
            for r in rows:  # the posterior shown with a neutral prior (priority 50)
                post = posterior(Stats(r.accepted, r.declined, r.delivered, r.n), 50, r.segment, config)
                data = post.as_dict()
                data.pop("prior")
                out.append({"gesture_id": r.gesture_id, **data, "interval": credible_interval(post.alpha, post.beta),
                            "accepted": round(r.accepted, 4),
                            "declined": round(r.declined, 4), "delivered": round(r.delivered, 4),
                            "text": evidence_text(post), "updated_at": r.updated_at.isoformat()})
            return {"tenant": tenant, "frozen": frozen, "enabled": True,
                    "config": {"segments": list(config.segments), "half_life_days": config.half_life_days,
                               "min_evidence": config.min_evidence, "prior_strength": config.prior_strength},
                    "segments": out}

        return self._read(load)

    def reset_learning(self, tenant: str) -> int:
        """Forget what a business has learned (its rules' order stands again); rows deleted."""
        check_tenant(tenant)

        def write(conn: Connection) -> int:
            return int(conn.execute(delete(_S).where(_S.c.tenant == tenant)).rowcount or 0)

        try:
            return int(self._write(write))
        finally:
            self._forget_evidence(tenant)

    def freeze_learning(self, tenant: str, frozen: bool = True) -> bool:
        """Freeze (or thaw) a business's learning: frozen evidence is kept and used, and no
        outcome changes it. Returns the new state."""
        check_tenant(tenant)
        now = self._now()

        def write(conn: Connection) -> bool:
            if conn.execute(select(_LT.c.tenant).where(_LT.c.tenant == tenant)).first() is None:
                conn.execute(insert(_LT).values(tenant=tenant, frozen=frozen, updated_at=now))
            else:
                conn.execute(update_(_LT).where(_LT.c.tenant == tenant).values(frozen=frozen, updated_at=now))
            return frozen

        return self._write(write)
