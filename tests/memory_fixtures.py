"""Fixtures shared by the memory tests (``from memory_fixtures import ...``).

Every test runs against real databases: a SQLite file in a temporary folder and, when the
server is reachable, PostgreSQL (``RECOMMENDER_TEST_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``) in a schema of its own, dropped afterwards.
Without PostgreSQL the PG cases skip, unless ``CI=true`` or ``RECOMMENDER_REQUIRE_PG=1``:
then they fail.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

from helpers import OPEN_PROFILE
from recommender import Recommender

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)

PACK: dict[str, Any] = {
    "pack": "memtest",
    "version": "1",
    "gestures": [
        {"id": "tire_check", "title": "Free tire check", "category": "freebie", "tier": "exceed", "cost": 5,
         "script": "We'll check your tires for free."},
        {"id": "apology", "title": "Apologise", "category": "personal_touch", "tier": "meet", "cost": 0,
         "script": "Sorry for the trouble."},
        {"id": "waive_fee", "title": "Waive the repair fee", "category": "fee_waiver", "tier": "recover",
         "cost": "interaction.cost", "script": "This one's on us."},
        {"id": "comeback_credit", "title": "Credit for coming back", "category": "loyalty_reward",
         "tier": "recover", "cost": 10, "script": "Sorry you had to come back: here's a credit."},
        {"id": "oil_tip", "title": "Oil tip", "category": "information", "tier": "meet", "cost": 0,
         "script": "A tip about your oil."},
    ],
    "rules": [
        {"id": "flat-check", "when": {"all": ["interaction.issue eq flat_tire"]}, "then": ["tire_check", "apology"],
         "because": "A flat is a chance to check the rest."},
        {"id": "flat-waive", "when": {"all": ["interaction.issue eq flat_tire", "interaction.cost le 60"]},
         "then": "waive_fee", "because": "Small repairs are on us."},
        {"id": "came-back", "when": {"all": ["interaction.repeat_issue eq true"]}, "then": "comeback_credit",
         "because": "Coming back for the same thing costs the customer."},
        {"id": "oil", "when": {"all": ["interaction.issue eq oil_change"]}, "then": "oil_tip",
         "because": "Teach something."},
    ],
}


def ctx(customer: str | dict[str, Any] | None = "c-1", issue: str = "flat_tire", cost: float | None = 25,
        tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    """A context dict: customer (an id, None, or fields for customer ``c-1``), issue, cost, tenant,
    plus section overrides (``interaction={...}``, ``business={...}``, ``staff={...}``)."""
    if isinstance(customer, dict):
        customer = {"id": "c-1", **customer}
    out: dict[str, Any] = {
        "customer": customer if isinstance(customer, dict) else ({"id": customer} if customer else {}),
        "interaction": {"issue": issue, **({"cost": cost} if cost is not None else {}),
                        **extra.pop("interaction", {})},
        "business": {"id": tenant, **extra.pop("business", {})},
    }
    if "staff" in extra:
        out["staff"] = extra.pop("staff")
    assert not extra, extra
    return out


class FakeClock:
    """An injectable clock: ``clock()`` is the current time; ``advance(days=3)`` moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


# -- PostgreSQL availability -----------------------------------------------------------

_PG_STATE: dict[str, Any] = {}


def pg_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("RECOMMENDER_REQUIRE_PG") == "1"


def pg_base_url() -> str:
    return os.environ.get("RECOMMENDER_TEST_PG_URL", PG_DEFAULT)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_unavailable_reason() -> str | None:
    if "reason" not in _PG_STATE:
        try:
            import psycopg

            with psycopg.connect(_libpq(pg_base_url()), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _PG_STATE["reason"] = None
        except Exception as exc:  # noqa: BLE001
            first = " ".join(str(exc).split())[:200]
            _PG_STATE["reason"] = f"PostgreSQL not reachable at {pg_base_url()} ({type(exc).__name__}: {first})"
    return _PG_STATE["reason"]


def require_pg() -> str:
    """The base PG URL, or skip (fail under CI=true / RECOMMENDER_REQUIRE_PG=1) naming why."""
    reason = pg_unavailable_reason()
    if reason is not None:
        if pg_required():
            pytest.fail(f"{reason}; required because CI=true or RECOMMENDER_REQUIRE_PG=1", pytrace=False)
        pytest.skip(reason)
    return pg_base_url()


def with_search_path(base: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(pg_base_url()), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    base = require_pg()
    schema = f"memtest_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(base, schema)
    finally:
        _pg_exec(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'memory.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: Any, tmp_path: Any) -> Iterator[str]:
    """An empty database: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'memory.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_store(db_url: str, clock: FakeClock) -> Iterator[Callable[..., Any]]:
    """``make_store(policy=...)``: a migrated store on ``db_url`` with the fake clock; closed afterwards."""
    from recommender.memory import open_store

    stores: list[Any] = []

    def make(**kw: Any) -> Any:
        kw.setdefault("clock", clock)
        kw.setdefault("upgrade", True)
        store = open_store(db_url, **kw)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    return make_store()


@pytest.fixture(scope="session")
def rec() -> Recommender:
    return Recommender([], packs=[PACK], autoload=False, profiles={"default": OPEN_PROFILE})
