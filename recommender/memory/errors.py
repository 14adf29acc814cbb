"""Errors raised by the memory store.

Each has a ``code`` an HTTP layer can map without string matching: ``unavailable`` (503),
``not_found`` (404), ``forbidden`` (403), ``conflict`` (409), ``invalid`` (422),
``over_budget`` (409 or 422), ``schema`` (503: run ``recommender db upgrade``).
"""

from __future__ import annotations

from ..errors import RecommenderError

__all__ = [
    "StoreError",
    "StoreUnavailable",
    "SchemaOutOfDate",
    "InvalidStoreInput",
    "UnknownDecision",
    "GestureNotInDecision",
    "TenantMismatch",
    "IdempotencyConflict",
    "DuplicateOutcome",
    "BudgetExceeded",
]


class StoreError(RecommenderError):
    """Root of every error the memory store raises on purpose."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be reached (or refused the statement). Names the URL, password masked."""

    code = "unavailable"

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"database {url} is unavailable: {reason}")


class SchemaOutOfDate(StoreError):
    """The database has no schema yet, or an older one: migrations must run first."""

    code = "schema"

    def __init__(self, url: str, current: str | None, head: str):
        self.url, self.current, self.head = url, current, head
        have = "no schema" if current is None else f"schema revision {current}"
        super().__init__(f"database {url} has {have}, this version needs {head}: "
                         f"run `recommender db upgrade --url {url}`")


class InvalidStoreInput(StoreError, ValueError):
    """An argument is malformed (an id, a scope, a preference key, a date, a NUL in a note).

    ``field`` names the offending argument or context path when there is one
    (``customer_id``, ``note``, ``interaction.occurred_at``)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(message)


class UnknownDecision(StoreError, LookupError):
    code = "not_found"

    def __init__(self, decision_id: str):
        self.decision_id = decision_id
        super().__init__(f"unknown decision {decision_id!r}")


class GestureNotInDecision(StoreError, LookupError):
    code = "not_found"

    def __init__(self, decision_id: str, gesture_id: str, recommended: list[str]):
        self.decision_id, self.gesture_id, self.recommended = decision_id, gesture_id, recommended
        listed = ", ".join(recommended) or "none"
        super().__init__(f"gesture {gesture_id!r} was not recommended in decision {decision_id} "
                         f"(recommended: {listed})")


class TenantMismatch(StoreError, PermissionError):
    code = "forbidden"

    def __init__(self, what: str, tenant: str):
        self.tenant = tenant
        super().__init__(f"{what} does not belong to tenant {tenant!r}")


class IdempotencyConflict(StoreError):
    """The idempotency key was already used for a different outcome."""

    code = "conflict"

    def __init__(self, key: str, differences: list[str]):
        self.key, self.differences = key, differences
        super().__init__(f"idempotency key {key!r} was already used for a different outcome "
                         f"({'; '.join(differences)})")


class DuplicateOutcome(StoreError):
    """The same outcome of the same gesture of a decision was already recorded under another key."""

    code = "conflict"

    def __init__(self, decision_id: str, gesture_id: str, outcome: str, key: str):
        self.decision_id, self.gesture_id, self.outcome, self.key = decision_id, gesture_id, outcome, key
        super().__init__(f"gesture {gesture_id!r} of decision {decision_id} is already recorded as "
                         f"{outcome} (idempotency key {key!r})")


class BudgetExceeded(StoreError):
    """A delivery would overspend a budget; nothing was recorded."""

    code = "over_budget"

    def __init__(self, scope: str, limit: float, spent: float, cost: float, day: str):
        self.scope, self.limit, self.spent, self.cost, self.day = scope, limit, spent, cost, day
        super().__init__(f"delivering this gesture would overspend the {scope} budget for {day}: "
                         f"{spent:g} of {limit:g} spent, this costs {cost:g}")
