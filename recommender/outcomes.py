"""Outcomes of recommended gestures: the model passed to stores and plugins."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutcomeEvent", "OUTCOMES", "OutcomeKind", "outcome_key"]

OutcomeKind = Literal["offered", "accepted", "declined", "delivered"]
OUTCOMES: tuple[str, ...] = ("offered", "accepted", "declined", "delivered")


def outcome_key(decision_id: str, gesture_id: str, outcome: str) -> str:
    """The idempotency key of an outcome recorded without one (the CLI without ``--key``, HTTP
    without an ``Idempotency-Key`` header, the client without ``idempotency_key``): what it
    records. The store keeps one outcome of each kind per decision gesture, so a retry of the
    same outcome replays it (with the same note and cost) rather than failing as a duplicate,
    and nothing counts twice either way."""
    return f"auto:{decision_id}:{gesture_id}:{outcome}"


class OutcomeEvent(BaseModel):
    """What happened to one recommended gesture of one decision."""

    # defer_build: built on first use (a recommendation without a store records no outcome)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    decision_id: str
    gesture_id: str
    outcome: OutcomeKind
    tenant: str = "default"
    customer_id: str | None = None
    note: str | None = Field(default=None, max_length=2000)
    actual_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    at: datetime | None = None
