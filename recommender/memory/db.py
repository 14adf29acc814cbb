"""URLs, engines, migrations and error translation: everything dialect-specific lives here."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import StaticPool

from .errors import InvalidStoreInput, SchemaOutOfDate, StoreUnavailable
from .values import dumps

__all__ = ["default_url", "normalize_url", "mask_url", "make_engine", "upgrade", "current_revision",
           "head_revision", "translate_errors", "retry_dropped", "mark_commit_failure", "ENV_URL"]

T = TypeVar("T")

log = logging.getLogger("recommender.memory")

#: Environment variable that names the database when no URL is given.
ENV_URL = "RECOMMENDER_DB_URL"
MIGRATIONS = Path(__file__).parent / "migrations"


def default_url() -> str:
    """``$RECOMMENDER_DB_URL``, else a SQLite file in the user's data directory."""
    env = os.environ.get(ENV_URL)
    if env:
        return env
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('recommender', appauthor=False)) / 'recommender.db'}"


def normalize_url(url: str | None) -> URL:
    """Parse a store URL: ``sqlite:///path``, ``postgresql://...`` (psycopg 3), or a bare file path."""
    raw = default_url() if url is None else url.strip()
    if not raw:
        raise InvalidStoreInput("empty database URL")
    if "://" not in raw:  # a bare path means a SQLite file
        raw = f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise InvalidStoreInput(f"invalid database URL {mask_text(raw)!r}: expected sqlite:///PATH or "
                                "postgresql://USER@HOST/DB") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend == "sqlite":
        return parsed.set(drivername=f"sqlite+{driver or 'pysqlite'}")
    raise InvalidStoreInput(f"unsupported database URL {mask_url(parsed)!r}: use sqlite:///PATH or "
                            "postgresql://USER@HOST/DB")


def mask_url(url: URL | str) -> str:
    """The URL for messages: the password replaced by ``***``, the driver name dropped."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return mask_text(str(url))
    shown = url.set(drivername=url.drivername.split("+")[0])
    return shown.render_as_string(hide_password=True)


def mask_text(text: str) -> str:
    """Mask a ``user:password@`` in free text."""
    import re

    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def make_engine(url: URL, **kwargs: Any) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 5
    try:
        # No pre-ping: a round trip on every checkout cost more than the rest of a read. A
        # connection the server dropped fails its first statement instead, and the store runs
        # that unit of work again once on a fresh connection (:func:`retry_dropped`).
        engine = create_engine(url, pool_pre_ping=False, pool_size=10, max_overflow=20,
                               connect_args=connect_args, json_serializer=dumps, **kwargs)
        # Many rows in one INSERT ... VALUES (...), (...) (as with psycopg2), not one statement
        # per row: a group commit's rows cost one statement per table.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "psycopg":
            raise
        from ..optional import MissingExtra

        raise MissingExtra(f"a PostgreSQL store ({mask_url(url)})", "psycopg") from None
    except (NoSuchModuleError, ImportError) as exc:
        raise InvalidStoreInput(f"cannot use {mask_url(url)}: the database driver is not installed ({exc}); "
                                "pip install 'service-recommender[postgres]'") from None


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(mask_url(url), f"cannot create {path.parent}: {exc.strerror or exc}") from None
        url = url.set(database=str(path))
    extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=dumps,
                           **extra, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        if not memory:
            # WAL: readers never block the writer; synchronous=FULL: a commit that returned
            # is on disk, so an acknowledged write survives SIGKILL and power loss.
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a read-then-write transaction can then never fail
        # with SQLITE_BUSY half-way, and budget checks are serialised.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def retry_dropped(run: Callable[[], T]) -> T:
    """``run()``, once more on a fresh connection if its connection turned out to be dropped
    (the server restarted, a failover, an idle connection killed by a firewall or by
    ``pg_terminate_backend``).

    SQLAlchemy marks such an error ``connection_invalidated`` and discards every pooled
    connection opened before it, so the second try checks out a new one. Safe because a unit
    of work that fails before its commit leaves nothing behind; a connection lost *during* a
    commit (the outcome unknown) is flagged by :func:`mark_commit_failure` and never retried.
    """
    try:
        return run()
    except DBAPIError as exc:
        if not exc.connection_invalidated or getattr(exc, "_recommender_at_commit", False):
            raise
        log.warning("the database connection was dropped (%s); trying once more on a fresh one",
                    " ".join(str(exc.orig).split())[:200])
    return run()


def mark_commit_failure(exc: BaseException) -> None:
    """Flag an error raised by COMMIT: whether the transaction was stored is unknown, so
    :func:`retry_dropped` must not run it again."""
    try:
        setattr(exc, "_recommender_at_commit", True)
    except AttributeError:  # pragma: no cover - exceptions take attributes
        pass


#: SQLSTATE classes and codes that mean "the database cannot serve us now", not "a bug in
#: the statement": connection (08), authorization (28), unknown database (3D) or schema
#: (3F), a missing table or column (42P01, 42703: the schema is missing or older), no
#: privilege (42501), a read-only standby (25006), a serialization failure or deadlock
#: (40), out of resources (53), operator intervention or a statement timeout (57), system
#: errors (58).
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "3F", "40", "53", "57", "58")
_UNAVAILABLE_CODES = ("42501", "42P01", "42703", "25006")


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else ""


@contextlib.contextmanager
def translate_errors(url: URL) -> Iterator[None]:
    """Turn driver-level failures into the store's errors, the same on every database.

    * the database unreachable, refusing us (authentication, privileges), down, read-only or
      out of resources -> :class:`StoreUnavailable` naming the URL (password masked);
    * a value it cannot store (too long, out of range, a NUL, invalid Unicode) ->
      :class:`InvalidStoreInput`;
    * anything else (a bug) propagates.
    """
    try:
        yield
    except StatementError as exc:
        orig = exc.orig
        if isinstance(orig, InvalidStoreInput):  # from the JSON serializer
            raise orig from None
        if isinstance(exc, DBAPIError):
            state = _sqlstate(exc)
            if (isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated
                    or state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_CODES):
                raise StoreUnavailable(mask_url(url), _reason(exc, url)) from None
            if isinstance(exc, DataError):
                log.warning("database %s refused a value: %s", mask_url(url), _reason(exc, url))
                raise InvalidStoreInput("a value is too long, out of range or not storable text for the database "
                                        "(details in the server log)") from None
        elif isinstance(orig, (UnicodeError, ValueError, OverflowError)):
            raise InvalidStoreInput(f"a value cannot be stored: {type(orig).__name__}") from None
        raise
    except UnicodeEncodeError:
        raise InvalidStoreInput("a value is not valid Unicode text (a lone surrogate)") from None


def _reason(exc: SQLAlchemyError, url: URL) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return mask_text(text)[:300]


# -- migrations -------------------------------------------------------------------


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


_HEAD: str | None = None


def head_revision() -> str:
    global _HEAD
    if _HEAD is None:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        assert head is not None
        _HEAD = head
    return _HEAD


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply migrations up to ``revision``; return the revision the database is at."""
    from alembic import command

    cfg = _alembic_config()
    with translate_errors(engine.url):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        current = current_revision(engine)
    return current or ""


def check_schema(engine: Engine) -> None:
    with translate_errors(engine.url):
        current = current_revision(engine)
    if current != head_revision():
        raise SchemaOutOfDate(mask_url(engine.url), current, head_revision())
