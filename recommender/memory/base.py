"""The store's plumbing: opening the database, transactions, time, and the ids it checks.

:class:`StoreBase` holds what every part of :class:`~recommender.memory.store.Store` shares
(the engine, the policy, the clock, one-transaction writes with retries, reads); the parts
themselves (history, screening, the decision log, outcomes, customers, reports,
maintenance) are mixins in their own modules.
"""

from __future__ import annotations

import re
import threading
import time as _time
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Self, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from . import db
from .db import log
from .errors import InvalidStoreInput, UnknownDecision
from .policy import Policy
from .values import check_occurred_at, check_text, local_date

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["StoreBase", "Clock", "as_utc", "check_tenant", "check_customer", "check_decision_id", "days_text",
           "load_policy", "count_rows"]

Clock = Callable[[], datetime]
T = TypeVar("T")

_TENANT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_RETRIES = 3
#: Per-tenant cache entries kept (stored profiles, percentile samples, realised extras rates).
_CACHE_MAX = 20_000


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | date) -> datetime:
    """A datetime in UTC (naive values are taken as UTC; a date means its midnight UTC)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check_tenant(tenant: str, field: str = "tenant") -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise InvalidStoreInput(f"{field}: invalid tenant id {str(tenant)[:140]!r}: letters, digits and _.:- "
                                "(at most 128)", field=field)
    return tenant


def check_customer(customer_id: str, field: str = "customer_id") -> str:
    return check_text(customer_id, field, max_length=2000)


def check_decision_id(decision_id: str) -> str:
    if not isinstance(decision_id, str) or len(decision_id) > 36:
        raise UnknownDecision(str(decision_id)[:80])
    return check_text(decision_id, "decision_id", max_length=36)


def days_text(n: float) -> str:
    return f"{n:g} day" + ("" if n == 1 else "s")


class StoreBase:
    """The database, policy and clock of a store (see :class:`~recommender.memory.store.Store`).

    ``policy``: a :class:`Policy`, a path to a YAML/JSON policy file, or None for
    ``$RECOMMENDER_POLICY`` (a file) or the defaults. ``clock``: returns the current time
    (aware datetime); tests inject a fixed one. ``upgrade``: apply migrations on open
    (default: yes for SQLite, so a new file works with zero set-up; no for PostgreSQL,
    whose schema is changed on purpose with ``recommender db upgrade``).
    """

    def __init__(self, url: str | None = None, *, policy: Policy | str | Path | None = None,
                 clock: Clock | None = None, upgrade: bool | None = None) -> None:
        self._url = db.normalize_url(url)
        self.url = db.mask_url(self._url)
        self.policy = load_policy(policy)
        self.clock: Clock = clock or _utc_now
        self.engine = db.make_engine(self._url)
        #: Screenings until :meth:`record_decision` logs them, by interaction
        #: (:func:`screening_key`), oldest first: what each offer was (category, tier) and which
        #: ones the store held (gesture -> reason). Matched by the interaction, not by the
        #: context object or the thread: with plugins, the pipeline screens on a worker thread
        #: and logs a new copy of the context. See :meth:`Screening._keep_screening`.
        self._screened: dict[tuple[Any, ...], list[tuple[dict[str, tuple[str, str]], dict[str, str]]]] = {}
        self._screened_count = 0
        self._screened_lock = threading.Lock()
        #: (kind, tenant) -> (expires at, on the monotonic clock; value): see :meth:`_cached`
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        #: (kind, tenant) -> how often it was invalidated (a load that raced a write is not kept)
        self._generations: dict[tuple[str, str], int] = {}
        #: keys being refreshed on a background thread (see :meth:`_cached`'s ``background``)
        self._refreshing: set[tuple[str, str]] = set()
        try:
            auto = self.dialect == "sqlite" if upgrade is None else upgrade
            if auto:
                with db.translate_errors(self._url):
                    current = db.current_revision(self.engine)
                if current != db.head_revision():
                    db.upgrade(self.engine)
            else:
                db.check_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    # -- plumbing ---------------------------------------------------------------

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def upgrade(self, revision: str = "head") -> str:
        """Apply migrations; return the schema revision now in force."""
        return db.upgrade(self.engine, revision)

    def schema_revision(self) -> str | None:
        with db.translate_errors(self._url):
            return db.current_revision(self.engine)

    def _now(self, now: datetime | None = None) -> datetime:
        return as_utc(now if now is not None else self.clock())

    def _ctx_now(self, ctx: "Context") -> datetime:
        """The decision's reference time: ``interaction.occurred_at`` (years 1900-2200), else now."""
        occurred = ctx.interaction.occurred_at
        return check_occurred_at(as_utc(occurred)) if occurred is not None else self._now()

    def _check_ids(self, ctx: "Context") -> None:
        """The context's ids the store looks up by, refused alike on every database."""
        check_tenant(ctx.business.id, "business.id")
        if ctx.customer.id is not None:
            check_customer(ctx.customer.id, "customer.id")
        if ctx.staff.id is not None:
            check_text(ctx.staff.id, "staff.id", max_length=2000)

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn`` in one transaction, retrying a lost race on a unique key (and once on a
        fresh connection if the pooled one was dropped before the commit)."""
        for attempt in range(_RETRIES):
            try:
                with db.translate_errors(self._url):
                    return db.retry_dropped(lambda: self._transaction(fn))
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one transaction, committed; a failed COMMIT is flagged as such (its
        outcome is unknown, so it is never run again)."""
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                result = fn(conn)
            except BaseException:
                tx.rollback()
                raise
            try:
                tx.commit()
            except BaseException as exc:
                db.mark_commit_failure(exc)
                raise
            return result

    @property
    def _reader(self) -> Engine:
        """What :meth:`_read` connects through (made for the engine in use). On PostgreSQL,
        reads run outside a transaction (autocommit): a statement then sees what was committed
        before it began, as in a READ COMMITTED transaction (the default), without the BEGIN
        and ROLLBACK round trips around it (two of a decision's three). SQLite keeps its own
        transactions (``BEGIN IMMEDIATE``)."""
        engine = self.engine
        made = self.__dict__.get("_reader_of")
        if made is None or made[0] is not engine:
            reader = (engine.execution_options(isolation_level="AUTOCOMMIT")
                      if engine.dialect.name == "postgresql" else engine)
            made = self.__dict__["_reader_of"] = (engine, reader)
        return made[1]

    def _read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` on a pooled connection (once more on a fresh one if that was dropped)."""
        def run() -> T:
            with self._reader.connect() as conn:
                return fn(conn)

        with db.translate_errors(self._url):
            return db.retry_dropped(run)

    def _date(self, when: datetime) -> date:
        return local_date(when, self.policy.tz)

    # -- per-tenant caches ------------------------------------------------------------

    def _cached(self, kind: str, tenant: str, seconds: float, load: Callable[[], T], *,
                background: bool = False) -> T:
        """``load()``, kept for ``seconds`` (0: not kept) per tenant in this process.

        Expiry runs on the monotonic clock (not the store's injectable clock). A value loaded
        while :meth:`_invalidate` ran for the same key is returned but not kept, so a write on
        this process is seen by the next call. With ``background``, an expired value is
        returned once more while one background thread loads the next (no request waits for
        a slow refresh, e.g. the scan of a large tenant's customers)."""
        key = (kind, tenant)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > _time.monotonic():
            cached: T = hit[1]
            return cached
        if background and hit is not None and seconds > 0:
            if key not in self._refreshing:
                self._refreshing.add(key)
                threading.Thread(target=self._refresh, args=(key, seconds, load), daemon=True,
                                 name=f"recommender-store-{kind}").start()
            stale: T = hit[1]
            return stale
        return self._load_and_keep(key, seconds, load)

    def _load_and_keep(self, key: tuple[str, str], seconds: float, load: Callable[[], T]) -> T:
        generation = self._generations.get(key, 0)
        value = load()
        if seconds > 0 and self._generations.get(key, 0) == generation:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (_time.monotonic() + seconds, value)
        return value

    def _refresh(self, key: tuple[str, str], seconds: float, load: Callable[[], Any]) -> None:
        try:
            self._load_and_keep(key, seconds, load)
        except Exception as exc:  # noqa: BLE001 - the stale value stays; the next call tries again
            log.warning("background refresh of %s for tenant %r failed: %s", key[0], key[1], exc)
            hit = self._cache.get(key)
            if hit is not None:
                self._cache[key] = (_time.monotonic(), hit[1])  # expired: the next call refreshes
        finally:
            self._refreshing.discard(key)

    def _invalidate(self, kind: str, tenant: str) -> None:
        key = (kind, tenant)
        self._generations[key] = self._generations.get(key, 0) + 1
        self._cache.pop(key, None)


def load_policy(policy: Policy | str | Path | None) -> Policy:
    import os

    if isinstance(policy, Policy):
        return policy
    if policy is None:
        env = os.environ.get("RECOMMENDER_POLICY")
        return Policy.load(env) if env else Policy()
    return Policy.load(policy)


def count_rows(conn: Connection, where: Any, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
