"""What the store returns: plain pydantic models, JSON in and JSON out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutcomeRecord", "DecisionRecord", "DecisionGestureRecord", "VisitRecord", "GestureEvent", "Note",
           "CustomerView", "BudgetLine", "PruneCounts", "TenantProfileRecord"]

OutcomeKind = Literal["offered", "accepted", "declined", "delivered"]


class _R(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutcomeRecord(_R):
    """A stored outcome. ``replayed``: this call repeated an earlier one (same key, same payload)."""

    id: int
    decision_id: str
    gesture_id: str
    outcome: OutcomeKind
    tenant: str
    customer_id: str | None = None
    category: str
    tier: str
    idempotency_key: str
    note: str | None = None
    actual_cost: float | None = None
    cost: float | None = Field(default=None, description="actual_cost, else the recommended cost")
    recorded_at: datetime
    replayed: bool = False
    approved_by: str | None = Field(default=None, description="Who approved the gesture, when it needed approval")


class DecisionGestureRecord(_R):
    gesture_id: str
    status: Literal["recommended", "needs_approval"]
    category: str
    tier: str
    cost: float | None = None
    score: float
    rules: list[str] = Field(default_factory=list)


class DecisionRecord(_R):
    """One logged decision, as an auditor reads it."""

    id: str
    created_at: datetime
    occurred_at: datetime
    tenant: str
    customer_id: str | None = None
    store_id: str | None = None
    staff_id: str | None = None
    staff_level: str | None = None
    issue: str
    context_hash: str
    receipt_id: str
    ruleset_version: str
    recommendations: list[dict[str, Any]]
    held: list[dict[str, Any]]
    context: dict[str, Any] = {}
    profile_revision: int | None = Field(default=None, description=(
        "The revision of the tenant's stored profile the decision was made under (None: none)"))
    extras_offered: bool | None = Field(default=None, description="An extra was on offer: the extras draw was made")
    extras_listed: bool | None = Field(default=None, description="An extra was listed")
    extras_steer: float | None = Field(default=None, description="The steer the extras draw used")
    gestures: list[DecisionGestureRecord] = Field(default_factory=list)
    outcomes: list[OutcomeRecord] = Field(default_factory=list)


class VisitRecord(_R):
    occurred_at: datetime
    issue: str
    store_id: str | None = None
    decision_id: str | None = None


class GestureEvent(_R):
    decision_id: str
    gesture_id: str
    category: str
    outcome: OutcomeKind
    cost: float | None = None
    note: str | None = None
    recorded_at: datetime


class Note(_R):
    at: datetime
    text: str


class CustomerView(_R):
    """A customer's profile with their recent visits and gestures."""

    tenant: str
    id: str
    known: bool = Field(description="False when the store has no profile, visit or gesture for this customer")
    preferences: dict[str, bool | int | float | str] = Field(default_factory=dict)
    interests: list[str] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    visits: list[VisitRecord] = Field(default_factory=list)
    gestures: list[GestureEvent] = Field(default_factory=list)
    goodwill_given: float = Field(default=0.0, description="Cost delivered within the goodwill period")
    flagged_for_review: bool = Field(default=False, description="The abuse rule's threshold is reached")


class BudgetLine(_R):
    scope: Literal["tenant", "store", "staff"]
    scope_id: str
    day: date
    spent: float
    limit: float | None = None


class PruneCounts(_R):
    """What :meth:`Store.prune` deleted (or, with ``dry_run``, would delete)."""

    before: datetime
    tenant: str | None = None
    dry_run: bool = False
    decisions: int = 0
    outcomes: int = 0
    visits: int = 0
    budget_days: int = 0


class TenantProfileRecord(_R):
    """A tenant's own business profile as stored: the last profile layer (partial), its revision,
    who set it and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    revision: int = Field(description="Increases with every change (a logged decision names the one in force)")
    profile: dict[str, Any] = Field(description="The partial profile: only the keys the tenant set")
    updated_by: str
    updated_at: datetime
