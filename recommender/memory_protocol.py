"""The seam between the recommender and a memory store (see ``recommender.memory``).

The core only knows this protocol, so ``recommend()`` without a store imports no SQL code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .context import Context
    from .results import RecommendationResult

__all__ = ["Offer", "Hold", "Memory"]


@dataclass(frozen=True)
class Offer:
    """A matched gesture as the store sees it before arbitration."""

    gesture_id: str
    category: str
    tier: str
    cost: float | None


@dataclass(frozen=True)
class Hold:
    """The store's reason to withhold an offer now.

    ``reason``: ``suppressed`` (contact policy), ``over_budget`` (tenant budget),
    ``goodwill_cap`` (proportion to lifetime value) or ``abuse_review`` (the gesture needs
    approval: it is listed under ``needs_approval``).
    """

    gesture_id: str
    reason: Literal["suppressed", "over_budget", "goodwill_cap", "abuse_review"]
    detail: str
    available_on: date | None = None


class Memory(Protocol):
    def enrich(self, ctx: "Context") -> dict[str, Any]:
        """Context updates from history, e.g. ``{"customer": {"last_visit_days": 12.0}}``.

        Only fields the caller left unset are filled: the caller's data wins.
        """

    def screen(self, ctx: "Context", offers: list[Offer]) -> list[Hold]:
        """Holds for offers that policy, budgets or proportion rule out now."""

    def record_decision(self, ctx: "Context", result: "RecommendationResult") -> str:
        """Persist the decision; return its id."""
