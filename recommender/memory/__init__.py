"""Memory for the recommender: decision log, outcomes, customer history, contact policy, budgets.

    from recommender import Recommender
    from recommender.memory import open_store

    store = open_store()                      # ~/.local/share/recommender/recommender.db
    result = Recommender().recommend(ctx, store=store)
    store.record_outcome(result.decision_id, "waive_fee", "delivered", idempotency_key="pos-1234")

Importing this package loads SQLAlchemy; ``recommend()`` without a store never does.
"""

from __future__ import annotations

from .db import default_url, mask_url
from .errors import (
    BudgetExceeded,
    DuplicateOutcome,
    GestureNotInDecision,
    IdempotencyConflict,
    InvalidStoreInput,
    SchemaOutOfDate,
    StoreError,
    StoreUnavailable,
    TenantMismatch,
    UnknownDecision,
)
from .keys import SCOPES, KeyInfo, KeyStore
from .policy import AbuseRule, Budget, ContactRule, GoodwillRule, Policy
from .records import BudgetLine, CustomerView, DecisionRecord, OutcomeRecord
from .reports import Report, ReportRow
from .store import Store, open_store

__all__ = [
    "open_store",
    "Store",
    "Policy",
    "ContactRule",
    "AbuseRule",
    "GoodwillRule",
    "Budget",
    "KeyStore",
    "KeyInfo",
    "SCOPES",
    "OutcomeRecord",
    "DecisionRecord",
    "CustomerView",
    "BudgetLine",
    "Report",
    "ReportRow",
    "default_url",
    "mask_url",
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
