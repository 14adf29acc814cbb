"""Approvals: a gesture above the serving person's authority, asked for and decided.

A recommendation lists what the serving person may not give on their own under
``needs_approval``, each with the script that would be said and the agent reason. An agent
*requests* approval for one of them (:meth:`ApprovalRequests.request_approval`); someone
holding the ``approve`` scope lists what is pending and approves or declines it with a note
(:meth:`ApprovalRequests.decide_approval`). :class:`~recommender.memory.store.Store` has
these methods (this module is one of its parts). The decision is written three times, in one transaction:

* the ``approvals`` row (who asked, who decided, when, their notes);
* the logged decision: the gesture's entry in ``held`` gains ``approval`` (status, by, at,
  note), so the decision log says who approved;
* outcomes recorded for the gesture afterwards carry ``approved_by`` (:func:`approver`, read
  by :meth:`~recommender.memory.outcomes.Outcomes.record_outcome`).

The table is created by migration ``0003_approvals``. One request per (decision, gesture):
asking again returns the request already made.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    CheckConstraint,
    Connection,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import StoreBase, check_tenant
from .errors import InvalidStoreInput, StoreError, UnknownDecision
from .models import CUSTOMER, GESTURE, TENANT, Base, Decision, DecisionGesture, UTCDateTime, table_of
from .values import check_text

__all__ = ["Approval", "ApprovalRecord", "ApprovalRequests", "UnknownApproval", "ApprovalConflict", "approver",
           "APPROVAL_STATUSES"]

APPROVAL_STATUSES = ("pending", "approved", "declined")
#: who asked or decided: a key's name or id, or a help-desk agent named in a panel token
WHO = 200


class Approval(Base):
    """A request to approve a gesture a decision listed under ``needs_approval``."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("decision_id", "gesture_id"),
        CheckConstraint("status IN ('pending', 'approved', 'declined')", name="status"),
        Index(None, "tenant", "status", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    decision_id: Mapped[str] = mapped_column(String(36), ForeignKey("decisions.id", ondelete="CASCADE"),
                                             nullable=False)
    gesture_id: Mapped[str] = mapped_column(String(GESTURE), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    cost: Mapped[float | None] = mapped_column(Float)
    script: Mapped[str] = mapped_column(Text, nullable=False)
    agent_reason: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    customer_id: Mapped[str | None] = mapped_column(String(CUSTOMER))
    issue: Mapped[str] = mapped_column(String(128), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(WHO), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    request_note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(WHO))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)


_A = table_of(Approval)
_D = table_of(Decision)
_DG = table_of(DecisionGesture)


class UnknownApproval(StoreError, LookupError):
    code = "not_found"

    def __init__(self, approval_id: str):
        self.approval_id = approval_id
        super().__init__(f"no approval request {approval_id[:80]!r}")


class ApprovalConflict(StoreError):
    """The request was already decided (by someone else, or with another answer)."""

    code = "conflict"


class ApprovalRecord(BaseModel):
    """An approval request as the agent and the approver see it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant: str
    decision_id: str
    gesture_id: str
    status: Literal["pending", "approved", "declined"]
    title: str
    tier: str
    cost: float | None = None
    script: str = Field(description="What would be said to the customer")
    agent_reason: str = Field(description="Why the rules recommend it")
    detail: str = Field(description="Why it needs approval (authority, money limit)")
    customer_id: str | None = None
    issue: str
    requested_by: str
    requested_at: datetime
    request_note: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None


def _record(row: Any) -> ApprovalRecord:
    return ApprovalRecord(**{c: getattr(row, c) for c in _A.c.keys()})


def _check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 36:
        raise InvalidStoreInput(f"{field}: an id of 1 to 36 characters", field=field)
    return check_text(value, field, max_length=36)


def _note(note: str | None, field: str) -> str | None:
    if note is None or not note.strip():
        return None
    return check_text(note, field, max_length=2000)


def approver(conn: Connection, decision_id: str, gesture_id: str) -> str | None:
    """Who approved ``gesture_id`` in ``decision_id`` (None: not approved, or never asked)."""
    return conn.execute(select(_A.c.decided_by).where(
        _A.c.decision_id == decision_id, _A.c.gesture_id == gesture_id, _A.c.status == "approved")).scalar()


class ApprovalRequests(StoreBase):
    """Approval requests: asked for, listed, decided."""

    def request_approval(self, tenant: str, decision_id: str, gesture_id: str, *, requested_by: str,
                script: str, agent_reason: str, detail: str, title: str | None = None,
                cost: float | None = None, note: str | None = None,
                now: datetime | None = None) -> tuple[ApprovalRecord, bool]:
        """Ask for approval of a gesture the decision listed under ``needs_approval``.

        Returns the request and whether it is new (asking again returns the first request).
        ``script``/``agent_reason``/``detail`` are what the approver reads: what the customer
        would hear and why. Raises :class:`UnknownDecision` (also for another tenant's
        decision) and :class:`InvalidStoreInput` (field ``gesture_id``) for a gesture that
        the decision did not list as needing approval.
        """
        check_tenant(tenant)
        _check_id(decision_id, "decision_id")
        check_text(gesture_id, "gesture_id", max_length=GESTURE)
        who = check_text(requested_by, "requested_by", max_length=WHO)
        texts = {name: check_text(value, name, max_length=2000, empty=True)
                 for name, value in (("script", script), ("agent_reason", agent_reason), ("detail", detail))}
        request_note = _note(note, "note")
        when = self._now(now)

        def write(conn: Connection) -> tuple[ApprovalRecord, bool]:
            dec = conn.execute(select(_D.c.tenant, _D.c.customer_id, _D.c.issue, _D.c.held)
                               .where(_D.c.id == decision_id)).first()
            if dec is None or dec.tenant != tenant:
                raise UnknownDecision(decision_id)
            existing = conn.execute(select(_A).where(_A.c.decision_id == decision_id,
                                                     _A.c.gesture_id == gesture_id)).first()
            if existing is not None:
                return _record(existing), False
            dg = conn.execute(select(_DG.c.status, _DG.c.tier, _DG.c.cost).where(
                _DG.c.decision_id == decision_id, _DG.c.gesture_id == gesture_id)).first()
            if dg is None or dg.status != "needs_approval":
                raise InvalidStoreInput(f"gesture_id: {gesture_id[:80]!r} is not a gesture this decision listed as "
                                        "needing approval", field="gesture_id")
            held: dict[str, Any] = next((h for h in (dec.held or []) if h.get("gesture_id") == gesture_id), {})
            values = dict(id=str(uuid.uuid4()), tenant=tenant, decision_id=decision_id, gesture_id=gesture_id,
                          status="pending", title=(title or held.get("title") or gesture_id)[:200], tier=dg.tier,
                          cost=dg.cost if cost is None else cost, customer_id=dec.customer_id, issue=dec.issue,
                          requested_by=who, requested_at=when, request_note=request_note, **texts)
            conn.execute(_A.insert().values(**values))
            return ApprovalRecord(**values), True

        return self._write(write)

    def get_approval(self, tenant: str, approval_id: str) -> ApprovalRecord:
        """One request of ``tenant`` (:class:`UnknownApproval` for an unknown id or another tenant's)."""
        check_tenant(tenant)
        _check_id(approval_id, "approval_id")
        row = self._read(lambda conn: conn.execute(select(_A).where(_A.c.id == approval_id)).first())
        if row is None or row.tenant != tenant:
            raise UnknownApproval(approval_id)
        return _record(row)

    def list_approvals(self, tenant: str, status: str | None = "pending", limit: int = 50) -> list[ApprovalRecord]:
        """The tenant's requests of ``status`` (None: all): pending oldest first, others newest first."""
        check_tenant(tenant)
        if status is not None and status not in APPROVAL_STATUSES:
            raise InvalidStoreInput(f"status: one of {', '.join(APPROVAL_STATUSES)}", field="status")
        query = select(_A).where(_A.c.tenant == tenant)
        if status is not None:
            query = query.where(_A.c.status == status)
        order = _A.c.requested_at.asc() if status == "pending" else _A.c.requested_at.desc()
        query = query.order_by(order, _A.c.id).limit(max(1, min(limit, 500)))
        return self._read(lambda conn: [_record(r) for r in conn.execute(query)])

    def decide_approval(self, tenant: str, approval_id: str, status: str, *, decided_by: str, note: str | None = None,
               now: datetime | None = None) -> tuple[ApprovalRecord, bool]:
        """Approve or decline a pending request; stamp the decision log's entry with who decided.

        Returns the request and whether this call decided it: the same answer again is a
        replay (False); another answer to a decided request is :class:`ApprovalConflict`.
        """
        check_tenant(tenant)
        _check_id(approval_id, "approval_id")
        if status not in ("approved", "declined"):
            raise InvalidStoreInput("decision: 'approved' or 'declined'", field="decision")
        who = check_text(decided_by, "decided_by", max_length=WHO)
        decision_note = _note(note, "note")
        when = self._now(now)

        def write(conn: Connection) -> tuple[ApprovalRecord, bool]:
            query = select(_A).where(_A.c.id == approval_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None or row.tenant != tenant:
                raise UnknownApproval(approval_id)
            if row.status != "pending":
                if row.status == status and row.decided_by == who:
                    return _record(row), False
                raise ApprovalConflict(f"approval {approval_id} was already {row.status} by {row.decided_by} "
                                       f"on {row.decided_at:%Y-%m-%d %H:%M} UTC")
            conn.execute(update(_A).where(_A.c.id == approval_id).values(
                status=status, decided_by=who, decided_at=when, decision_note=decision_note))
            _stamp_decision(conn, row.decision_id, row.gesture_id, {
                "id": approval_id, "status": status, "by": who, "at": when.isoformat(), "note": decision_note,
                "requested_by": row.requested_by})
            fresh = conn.execute(select(_A).where(_A.c.id == approval_id)).first()
            return _record(fresh), True

        return self._write(write)


def _stamp_decision(conn: Connection, decision_id: str, gesture_id: str, approval: dict[str, Any]) -> None:
    """The decision log's entry for the gesture gains ``approval`` (who decided, when, the note)."""
    query = select(_D.c.held).where(_D.c.id == decision_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    held = conn.execute(query).scalar()
    if held is None:
        raise UnknownDecision(decision_id)
    entries = [dict(h) for h in held]
    for entry in entries:
        if entry.get("gesture_id") == gesture_id:
            entry["approval"] = approval
    conn.execute(update(_D).where(_D.c.id == decision_id).values(held=entries))

