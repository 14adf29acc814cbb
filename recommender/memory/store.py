"""The memory store: decision log, outcomes, customer history, contact policy and budgets.

One :class:`Store` talks to SQLite or PostgreSQL through SQLAlchemy Core; it implements the
core's :class:`~recommender.memory_protocol.Memory` seam (``enrich``, ``screen``,
``record_decision``) and adds outcomes, customer profiles and reports. Its parts live in
modules of their own, one concern each:

* :mod:`.base`: opening the database, transactions, time, the ids it checks;
* :mod:`.history`: a customer's history and the context's enrichment (``enrich``);
* :mod:`.percentiles`: where a customer stands among the tenant's customers (value, tenure);
* :mod:`.screening`: contact policy, goodwill cap, budgets, authority limits, abuse review (``screen``);
* :mod:`.decisions`: the decision log (``record_decision``, ``get_decision``);
* :mod:`.outcomes`: outcomes and the budgets a delivery spends;
* :mod:`.customers`: customer profiles, the customer view, forgetting a customer;
* :mod:`.reports`: budget usage and reports;
* :mod:`.maintenance`: retention (``prune``);
* :mod:`.profiles`: a tenant's own business profile (the last profile layer);
* :mod:`.steering`: the realised extras rate and the steer of the extras draw;
* :mod:`.approvals`: approval requests for gestures above the serving person's authority;
* :mod:`.learning`: what outcomes taught (acceptance per gesture and segment).
"""

from __future__ import annotations

from pathlib import Path

from .approvals import ApprovalRequests
from .base import Clock, as_utc, check_tenant
from .customers import Customers
from .decisions import DecisionLog
from .learning import Learning
from .maintenance import Maintenance
from .outcomes import Outcomes
from .policy import Policy
from .profiles import TenantProfiles
from .reports import Reports
from .steering import ExtrasSteering

__all__ = ["Store", "open_store", "Clock", "as_utc", "check_tenant"]


class Store(DecisionLog, Outcomes, Customers, Reports, Maintenance, ApprovalRequests, Learning,
            TenantProfiles, ExtrasSteering):
    """A memory store at ``url`` (see :func:`open_store`). Thread-safe; keep one per process.

    ``policy``: a :class:`Policy`, a path to a YAML/JSON policy file, or None for
    ``$RECOMMENDER_POLICY`` (a file) or the defaults. ``clock``: returns the current time
    (aware datetime); tests inject a fixed one. ``upgrade``: apply migrations on open
    (default: yes for SQLite, so a new file works with zero set-up; no for PostgreSQL,
    whose schema is changed on purpose with ``recommender db upgrade``).
    """


def open_store(url: str | None = None, *, policy: Policy | str | Path | None = None, clock: Clock | None = None,
               upgrade: bool | None = None) -> Store:
    """Open the memory store at ``url``.

    ``sqlite:///path/to/file.db`` or a bare path: a local file (created and migrated on
    first use). ``postgresql://user:pw@host/db``: PostgreSQL through psycopg 3 (run
    ``recommender db upgrade --url ...`` once first). None: ``$RECOMMENDER_DB_URL``, else
    ``recommender.db`` in the user's data directory (``~/.local/share/recommender/`` on Linux).
    Raises :class:`StoreUnavailable` (naming the URL, password masked) when the database
    cannot be reached and :class:`SchemaOutOfDate` when migrations are due.
    """
    return Store(url, policy=policy, clock=clock, upgrade=upgrade)

