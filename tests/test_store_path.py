"""The store's hot path (issue 17): a dropped connection is retried once on a fresh one (no
pre-ping), and the decision log's group commit writes concurrent requests together while each
request still waits for, and answers for, its own rows."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any, Callable

import psycopg
import pytest
from memory_fixtures import ctx, db_url, make_store, pg_url, rec, clock  # noqa: F401  (fixtures)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from recommender import Recommender
from recommender.memory import open_store
from recommender.memory.decisions import _write_decisions
from recommender.memory.groupcommit import GroupCommit
from recommender.memory.models import Decision, table_of

_D = table_of(Decision)


def _terminate(base_url: str, application_name: str) -> int:
    """Kill, from another connection, every backend of the store under test (by its
    application_name, so nothing else on the server is touched)."""
    libpq = base_url.replace("postgresql+psycopg://", "postgresql://", 1).split("?")[0]
    with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = %s AND pid <> pg_backend_pid()", (application_name,)).fetchone()
    assert row is not None
    return int(row[0])


def _decisions(store: Any) -> int:
    return int(store._read(lambda conn: conn.execute(select(func.count()).select_from(_D)).scalar_one()))


@pytest.mark.postgres
def test_a_dropped_connection_is_retried_once_on_a_fresh_one(pg_url: str, rec: Recommender,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    name = f"store-path-{uuid.uuid4().hex[:8]}"
    store = open_store(f"{pg_url}&application_name={name}", upgrade=True)
    try:
        first = rec.recommend(ctx(), store=store)
        assert _terminate(pg_url, name) >= 1  # the pooled connection is dead now
        with caplog.at_level(logging.WARNING, logger="recommender.memory"):
            second = rec.recommend(ctx(), store=store)  # a read, then the decision log's write
        assert "dropped" in caplog.text
        assert first.decision_id and second.decision_id and first.decision_id != second.decision_id
        assert store.get_decision(second.decision_id).customer_id == "c-1"
        # a write that is the first to meet the dead connection
        assert _terminate(pg_url, name) >= 1
        assert store.freeze_learning("acme") is True
        assert store.learning_state("acme")["frozen"] is True
        assert _decisions(store) == 2  # the retried write stored once
    finally:
        store.close()


def _gated(write: Callable[[list[Any]], None]) -> tuple[GroupCommit[Any], threading.Event, threading.Event]:
    """A group commit whose first batch holds until ``release`` is set (``entered`` says it
    started), so the requests submitted meanwhile form the next batch, deterministically."""
    entered, release = threading.Event(), threading.Event()
    first = [True]

    def gated(batch: list[Any]) -> None:
        if first[0]:
            first[0] = False
            entered.set()
            assert release.wait(30)
        write(batch)

    return GroupCommit(gated), entered, release


def _submit_all(gc: GroupCommit[Any], first: Any, rest: list[Any], entered: threading.Event,
                release: threading.Event, run: Callable[[Any], Any]) -> dict[Any, Any]:
    """Run ``first``, wait until its batch is being written, run ``rest`` concurrently, let the
    first batch finish once all of them queued; return each item's result or exception."""
    out: dict[Any, Any] = {}

    def one(item: Any) -> None:
        try:
            out[item] = run(item)
        except Exception as exc:  # noqa: BLE001 - compared by the test
            out[item] = exc

    threads = [threading.Thread(target=one, args=(first,))]
    threads[0].start()
    assert entered.wait(30)
    threads += [threading.Thread(target=one, args=(item,)) for item in rest]
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 30
    while len(gc._queue) < len(rest) and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(30)
    return out


def test_requests_waiting_on_a_commit_are_written_together() -> None:
    batches: list[list[str]] = []
    gc, entered, release = _gated(lambda batch: batches.append(list(batch)))
    out = _submit_all(gc, "a", ["b", "c", "d", "e"], entered, release, gc.submit)
    assert out == {"a": None, "b": None, "c": None, "d": None, "e": None}
    assert batches[0] == ["a"] and sorted(batches[1]) == ["b", "c", "d", "e"] and len(batches) == 2
    assert gc.transactions == 2


def test_a_failed_batch_is_written_row_by_row_and_the_error_reaches_its_own_request() -> None:
    written: list[list[str]] = []

    def write(batch: list[str]) -> None:
        if "bad" in batch:
            raise ValueError("bad row")
        written.append(list(batch))

    gc, entered, release = _gated(write)
    out = _submit_all(gc, "a", ["b", "bad", "c"], entered, release, gc.submit)
    assert out["a"] is None and out["b"] is None and out["c"] is None
    assert isinstance(out["bad"], ValueError)
    assert written[0] == ["a"] and sorted(b[0] for b in written[1:]) == ["b", "c"]  # alone, after the rollback
    assert gc.transactions == 1 + 1 + 3


def test_a_failed_commit_is_not_written_again() -> None:
    calls: list[list[str]] = []

    def write(batch: list[str]) -> None:
        calls.append(list(batch))
        if len(calls) > 1:
            exc = RuntimeError("connection lost during COMMIT")
            exc._recommender_at_commit = True  # type: ignore[attr-defined]  # as db.mark_commit_failure flags it
            raise exc

    gc, entered, release = _gated(write)
    out = _submit_all(gc, "a", ["b", "c"], entered, release, gc.submit)
    assert out["a"] is None
    assert isinstance(out["b"], RuntimeError) and out["b"] is out["c"]  # the outcome is unknown for both
    assert len(calls) == 2  # never retried row by row


def test_group_commit_on_the_database_keeps_every_acknowledged_decision_and_loses_nothing(
        make_store: Callable[..., Any], rec: Recommender) -> None:
    store = make_store()
    kept = rec.recommend(ctx("c-0"), store=store).decision_id  # stored before the batch
    assert kept is not None

    def write(batch: list[Any]) -> None:
        for rows in batch:  # a real refusal by the database: a decision id that already exists
            if rows.decision["customer_id"] == "c-bad":
                rows.decision["id"] = kept
        store._write(lambda conn: _write_decisions(conn, batch))

    gc, entered, release = _gated(write)
    store.__dict__["_group_commit"] = gc
    customers = ["c-1", "c-2", "c-bad", "c-3"]
    out = _submit_all(gc, customers[0], customers[1:], entered, release,
                      lambda customer: rec.recommend(ctx(customer), store=store).decision_id)
    assert isinstance(out["c-bad"], IntegrityError)
    for customer in ("c-1", "c-2", "c-3"):
        assert store.get_decision(out[customer]).customer_id == customer  # acknowledged, so stored
    assert store.get_decision(kept).customer_id == "c-0"  # untouched
    assert _decisions(store) == 4
    assert gc.transactions >= 3  # the first alone, the failed batch, then one per request


def test_facts_stated_in_one_batch_end_as_one_at_a_time_would_leave_them(make_store: Callable[..., Any],
                                                                         rec: Recommender) -> None:
    from recommender.memory.models import CustomerProfileRow

    store = make_store()
    batches: list[list[Any]] = []

    def write(batch: list[Any]) -> None:
        batches.append(batch)
        store._write(lambda conn: _write_decisions(conn, batch))

    gc, entered, release = _gated(write)
    store.__dict__["_group_commit"] = gc
    day = "2025-05-{:02d}T10:00:00Z".format
    contexts = {  # the latest statement wins, whatever order the batch holds them in
        "first": ctx("c-0"),
        "late": ctx({"id": "c-1", "lifetime_value": 200}, interaction={"occurred_at": day(20)}),
        "early": ctx({"id": "c-1", "lifetime_value": 300}, interaction={"occurred_at": day(10)}),
        "mid": ctx({"id": "c-1", "lifetime_value": 100}, interaction={"occurred_at": day(15)}),
        # one customer stating different facts in one batch: each row upserted in turn
        "value": ctx({"id": "c-2", "lifetime_value": 50}, interaction={"occurred_at": day(12)}),
        "tenure": ctx({"id": "c-2", "tenure_years": 2}, interaction={"occurred_at": day(11)}),
    }
    out = _submit_all(gc, "first", [k for k in contexts if k != "first"], entered, release,
                      lambda key: rec.recommend(contexts[key], store=store).decision_id)
    assert all(isinstance(v, str) for v in out.values()), out
    assert gc.transactions == 2
    _C = table_of(CustomerProfileRow)
    facts = {r.customer_id: r for r in store._read(lambda conn: conn.execute(
        select(_C.c.customer_id, _C.c.lifetime_value, _C.c.tenure_since)).all())}
    assert facts["c-1"].lifetime_value == 200
    # c-2: the value (the 12th) always stands; the tenure (the 11th) only if it came first
    order = [("tenure_since" in rows.facts) for rows in batches[1] if rows.decision["customer_id"] == "c-2"]
    assert facts["c-2"].lifetime_value == 50
    assert (facts["c-2"].tenure_since is not None) == (order == [True, False])


def test_screening_judges_by_its_interactions_enrichment_read_only_while_fresh(
        make_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from recommender.context import Context
    from recommender.memory import history
    from recommender.memory_protocol import Offer

    store = make_store()
    c = Context.model_validate(ctx())
    offers = [Offer("tire_check", "freebie", "exceed", 5.0)]
    reads: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _conn, _cur, statement, *_: reads.append(statement) if "outcomes" in statement else None)
    store.enrich(c)
    assert len(reads) == 1  # the one statement holds the events screening needs
    store.screen(c, offers)
    assert len(reads) == 1  # taken from the enrichment: no second read
    store.screen(c, offers)
    assert len(reads) == 2  # taken once: the next screening reads for itself
    monkeypatch.setattr(history, "_SNAPSHOT_SECONDS", 0.0)
    store.enrich(c)
    store.screen(c, offers)
    assert len(reads) == 4  # too old to stand for now: read again


@pytest.mark.parametrize("when,note", [
    (None, "plain"),
    ("2026-03-01T10:00:00Z", "plain"),
    ("2026-03-01T10:00:00.000120+05:30", "accents é"),
    ("2026-03-01T10:00:00.999999-03:00", "emoji 🛞"),
    (None, "NaN:Infinity, in a string (looks like a bare NaN: the walk decides)"),
])
def test_a_logged_context_is_encoded_once_and_stored_as_its_json_mode_dump(
        make_store: Callable[..., Any], rec: Recommender, when: str | None, note: str) -> None:
    from recommender.context import parse_context
    from recommender.memory.values import CheckedJson, checked_json, dumps

    body = ctx(interaction={"attributes": {"note": note}, **({"occurred_at": when} if when else {})})
    parsed = parse_context(body)
    json_mode = parsed.model_dump(mode="json", exclude_none=True)
    bound = checked_json(parsed.model_dump(exclude_none=True), "", lambda: json_mode)
    # the JSON the engine wrote from the JSON-mode dump (the text may differ: non-ASCII as written)
    assert json.loads(dumps(bound)) == json.loads(dumps(json_mode))
    assert isinstance(bound, CheckedJson) is ("NaN" not in note)
    store = make_store()
    result = rec.recommend(body)
    stored = store.get_decision(store.record_decision(parsed, result))
    assert stored.context == json_mode
    assert stored.recommendations == [{"gesture_id": r.gesture_id, "title": r.title, "category": r.category,
                                       "tier": r.tier, "cost": r.cost, "score": r.score,
                                       "rules": [m.rule_id for m in r.rules]} for r in result.recommendations]


def test_the_driver_level_read_gives_the_rows_the_statement_gives(make_store: Callable[..., Any],
                                                                  rec: Recommender) -> None:
    from datetime import datetime, timedelta, timezone

    from recommender.memory.history import _READ, _read_history

    store = make_store()
    store.update_customer("acme", "c-1", preferences={"channel": "sms", "n": 2}, interests=["bikes", "é🛞"])
    start = datetime(2026, 3, 1, 10, 0, 0, 250, tzinfo=timezone.utc)
    for i, issue in enumerate(["flat_tire", "flat_tire", "late_delivery"]):
        when = (start + timedelta(days=i, microseconds=i)).isoformat()
        result = rec.recommend(ctx({"lifetime_value": 1200.5, "tenure_years": 3}, issue=issue,
                                   interaction={"occurred_at": when}), store=store)
        for g in result.gesture_ids():
            store.record_outcome(result.decision_id, g, "accepted", idempotency_key=f"{result.decision_id}:{g}",
                                 actual_cost=12.5)
    now = start + timedelta(days=5)
    for who in ("c-1", "c-unknown"):
        params = {"tenant": "acme", "customer_id": who, "now": now, "since": now - timedelta(days=400)}
        statement = store._read(lambda conn: [tuple(r) for r in conn.execute(_READ[False], params).all()])
        driver = store._read(lambda conn: [tuple(r) for r in _read_history(conn, params)])
        assert sorted(driver, key=repr) == sorted(statement, key=repr)
        assert (len(statement) > 3) is (who == "c-1")  # the profile, visits per issue, the events
        assert all(r[7] is None or r[7].tzinfo is timezone.utc for r in driver)


_TABLES = ("decisions", "decision_gestures", "decision_rules", "learning_decisions", "visits", "customers")


def _snapshot(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the decision log writes, without the visits' serial ids."""
    from sqlalchemy import text

    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        for table in _TABLES:
            result = conn.execute(text(f"SELECT * FROM {table}"))
            keep = [i for i, c in enumerate(result.keys()) if not (table == "visits" and c == "id")]
            out[table] = sorted((tuple(row[i] for i in keep) for row in result), key=repr)
        return out

    return store._read(read)


@pytest.mark.postgres
def test_the_one_statement_batch_stores_what_the_statement_per_table_stores(
        pg_url: str, rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a batch is one statement (pg_log); the same batch written the portable way
    (a statement per table) leaves every table exactly alike, from the same stored state."""
    from sqlalchemy import text

    from recommender.memory import pg_log
    from recommender.memory.decisions import DecisionLog

    store = open_store(pg_url, upgrade=True)
    try:
        batch: list[Any] = []
        store.__dict__["_group_commit"] = GroupCommit(batch.extend)  # captures, writes nothing
        day = "2026-03-{:02d}T10:00:00Z".format
        before = [rec.recommend(ctx({"id": "c-2", "lifetime_value": 900}, interaction={"occurred_at": day(20)}),
                                store=store),
                  rec.recommend(ctx("c-1", interaction={"occurred_at": day(5)}), store=store),
                  rec.recommend(ctx({"id": "c-7", "lifetime_value": 500}, interaction={"occurred_at": day(1)}),
                                store=store)]
        stored_first, batch[:] = list(batch), []
        contexts = [
            ctx({"lifetime_value": 120.5, "tenure_years": 4}, staff={"id": "s-é", "level": "synthetic"}),
            ctx({"id": "c-2", "lifetime_value": 50}, interaction={"occurred_at": day(10)}),  # older than kept
            ctx({"id": "c-3", "tenure_years": 2}, issue="late_delivery", cost=None),
            ctx("c-1", interaction={"occurred_at": day(5)}),  # a retried interaction: stored before
            ctx("c-4", interaction={"occurred_at": day(6)}),
            ctx("c-4", interaction={"occurred_at": day(6)}),  # retried within the batch
            ctx({"id": "c-5", "lifetime_value": 10}, interaction={"occurred_at": day(7)}),
            ctx({"id": "c-5", "lifetime_value": 30}, interaction={"occurred_at": day(9)}),  # the later wins
            ctx(None, issue="late_delivery"),  # no customer: no visit, no facts
            ctx("c-6", staff={"level": "synthetic"}, cost=400),
            ctx({"id": "c-7", "tenure_years": 3}, interaction={"occurred_at": day(8)}),  # keeps its value
        ]
        results = [rec.recommend(c, store=store) for c in contexts]
        assert all(r.decision_id for r in [*before, *results])
        assert any(r.needs_approval or r.withheld for r in results)
        assert sum(1 for rows in batch if rows.facts) >= 5 and any(rows.retried_visit for rows in batch)

        used: list[bool] = []
        fast = pg_log.write_batch
        monkeypatch.setattr(pg_log, "write_batch", lambda *a: used.append(fast(*a)) or used[-1])

        def state(one_statement: bool) -> dict[str, list[tuple[Any, ...]]]:
            store._write(lambda conn: [conn.execute(text(f"DELETE FROM {t}")) for t in reversed(_TABLES)])
            used.clear()
            store._write(lambda conn: decisions._write_decisions(conn, stored_first))
            if not one_statement:
                monkeypatch.setattr(pg_log, "write_batch", lambda *a: False)
            store._write(lambda conn: decisions._write_decisions(conn, batch))
            monkeypatch.setattr(pg_log, "write_batch", lambda *a: used.append(fast(*a)) or used[-1])
            return _snapshot(store)

        from recommender.memory import decisions

        one = state(True)
        assert used == [True, True]  # both written by the one statement
        portable = state(False)
        assert one == portable
        assert len(one["decisions"]) == 14 and len(one["visits"]) == 11  # c-1 and c-4 retried: one visit each
        assert len(one["learning_decisions"]) == sum(1 for rows in [*stored_first, *batch] if rows.learning)
        facts = {row[1]: row for row in one["customers"]}
        assert facts["c-2"][-3] == 900 and facts["c-5"][-3] == 30  # lifetime_value: kept / the later
        assert facts["c-7"][-3] == 500 and facts["c-7"][-2] is not None  # the value kept, the tenure added
        assert isinstance(store, DecisionLog)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_batch_the_one_statement_cannot_carry_is_written_the_portable_way(pg_url: str, rec: Recommender) -> None:
    """A customer stating two different sets of facts in one batch (sequential upserts decide)
    and text JSON escapes (an emoji) take the statement-per-table path."""
    from recommender.memory import pg_log
    from recommender.memory.decisions import _latest_facts

    store = open_store(pg_url, upgrade=True)
    try:
        batch: list[Any] = []
        store.__dict__["_group_commit"] = GroupCommit(batch.extend)
        rec.recommend(ctx({"id": "c-2", "lifetime_value": 50}), store=store)
        rec.recommend(ctx({"id": "c-2", "tenure_years": 2}), store=store)
        facts = [b.facts for b in batch]
        assert _latest_facts(facts) is None
        assert pg_log.write_batch(None, batch, _latest_facts(facts), []) is False  # type: ignore[arg-type]
        batch.clear()
        rec.recommend(ctx("c-3", staff={"id": "s-🛞"}), store=store)
        assert pg_log.write_batch(None, batch, _latest_facts([b.facts for b in batch if b.facts]), []) is False  # type: ignore[arg-type]
    finally:
        store.close()


def test_screenings_waiting_to_be_logged_are_kept_by_interaction_and_bounded(
        make_store: Callable[..., Any], rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explanation screens and never logs: its screening waits until the bound pushes it out,
    oldest first, and a decision takes its own interaction's by key (it was a scan of every
    waiting screening, 0.8 ms per decision with 4,096 waiting)."""
    from recommender.context import parse_context
    from recommender.memory import screening
    from recommender.memory.history import screening_key

    monkeypatch.setattr(screening, "SCREENED_MAX", 3)
    store = make_store()
    contexts = [parse_context(ctx(f"c-{i}")) for i in range(5)]
    for c in contexts:
        rec.explain(c, store=store)
    assert store._screened_count == 3 == sum(len(v) for v in store._screened.values())
    assert [k[2] for k in store._screened] == ["c-2", "c-3", "c-4"]  # c-0 and c-1 pushed out
    assert store._take_screening(screening_key(contexts[0])) is None
    result = rec.recommend(contexts[3], store=store)  # screens again (c-2 pushed out), logs one of c-3's
    assert result.decision_id is not None
    assert store._screened_count == 2 and [k[2] for k in store._screened] == ["c-3", "c-4"]
    first, second = ({"g": ("freebie", "meet")}, {}), ({"g": ("freebie", "exceed")}, {"g": "suppressed"})
    key = screening_key(contexts[0])
    store._keep_screening(key, *first)
    store._keep_screening(key, *second)  # the third waiting: c-3's goes
    assert [k[2] for k in store._screened] == ["c-4", "c-0"] and store._screened_count == 3
    assert store._take_screening(key) == first and store._take_screening(key) == second  # oldest first
    assert key not in store._screened and store._screened_count == 1
