"""Outcomes of recommended gestures: the model passed to stores and plugins."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutcomeEvent", "OUTCOMES", "OutcomeKind"]

OutcomeKind = Literal["offered", "accepted", "declined", "delivered"]
OUTCOMES: tuple[str, ...] = ("offered", "accepted", "declined", "delivered")


class OutcomeEvent(BaseModel):
    """What happened to one recommended gesture of one decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: str
    gesture_id: str
    outcome: OutcomeKind
    tenant: str = "default"
    customer_id: str | None = None
    note: str | None = Field(default=None, max_length=2000)
    actual_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    at: datetime | None = None
