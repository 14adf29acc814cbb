"""Budgets: a delivery consumes them atomically; concurrent deliveries never overspend."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import pytest
from memory_fixtures import clock, ctx, db_url, make_store, pg_url, rec  # noqa: F401  (fixtures)
from sqlalchemy import func, select

from recommender import Recommender
from recommender.memory import Budget, BudgetExceeded, Policy, Store, open_store
from recommender.memory.models import Outcome


def _decisions(store: Store, rec: Recommender, n: int, **c: Any) -> list[str]:
    return [rec.recommend(ctx(customer=None, **c), store=store).decision_id for _ in range(n)]


def _delivered(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Outcome.__table__)
                            .where(Outcome.__table__.c.outcome == "delivered")).scalar_one()


def test_delivery_consumes_the_budget_and_an_overspend_is_rejected(make_store, clock, rec: Recommender) -> None:
    store = make_store(policy=Policy(budgets={"acme": Budget(daily=60)}))
    d1, d2, d3 = _decisions(store, rec, 3)
    store.record_outcome(d1, "waive_fee", "delivered", "k1")
    store.record_outcome(d2, "waive_fee", "delivered", "k2", actual_cost=30)
    with pytest.raises(BudgetExceeded, match="would overspend the tenant daily budget for 2025-06-01: "
                                             "55 of 60 spent, this costs 25"):
        store.record_outcome(d3, "waive_fee", "delivered", "k3")
    assert _delivered(store) == 2  # the rejected delivery left nothing behind
    store.record_outcome(d3, "waive_fee", "accepted", "k3a")  # only deliveries spend
    store.record_outcome(d3, "apology", "delivered", "k3b")  # costs nothing: always fits
    assert [(b.scope, b.spent, b.limit) for b in store.budget_usage("acme")] == [("tenant", 55.0, 60.0)]
    clock.advance(days=1)  # a new day, a new budget; the same key may now go through
    store.record_outcome(d3, "waive_fee", "delivered", "k3")
    assert store.budget_usage("acme", date(2025, 6, 2))[0].spent == 25


def test_store_and_staff_budgets(make_store, rec: Recommender) -> None:
    policy = Policy(budgets={"*": Budget(per_store_daily=50, per_staff_daily=30, staff={"boss": 1000})})
    store = make_store(policy=policy)

    # decide everything first (screening would withhold a gesture once a budget is spent)
    plan = [("s-1", "amy", "a1"), ("s-2", "amy", "a2"), ("s-1", "boss", "b1"), ("s-1", "boss", "b2")]
    decided = {key: rec.recommend(ctx(customer=None, business={"store_id": s}, staff={"level": "super", "id": p}),
                                  store=store).decision_id for s, p, key in plan}

    def deliver(store_id: str, staff: str, key: str) -> None:
        store.record_outcome(decided[key], "waive_fee", "delivered", key)

    deliver("s-1", "amy", "a1")
    with pytest.raises(BudgetExceeded, match="staff 'amy' daily budget"):
        deliver("s-2", "amy", "a2")
    deliver("s-1", "boss", "b1")
    with pytest.raises(BudgetExceeded, match="store 's-1' daily budget"):
        deliver("s-1", "boss", "b2")
    usage = {(b.scope, b.scope_id): (b.spent, b.limit) for b in store.budget_usage("acme")}
    assert usage == {("tenant", ""): (50.0, None), ("store", "s-1"): (50.0, 50.0),
                     ("staff", "amy"): (25.0, 30.0), ("staff", "boss"): (25.0, 1000.0)}
    explained = rec.explain(ctx(customer=None, business={"store_id": "s-1"}, staff={"id": "zed"}), store=store)
    assert {w.gesture_id: w.reason for w in explained.withheld}["waive_fee"] == "over_budget"


def test_concurrent_deliveries_never_overspend(make_store, db_url: str, rec: Recommender) -> None:
    """20 concurrent deliveries of 10 against a budget of 100: exactly 10 go through."""
    store = make_store(policy=Policy(budgets={"acme": Budget(daily=100)}))
    decisions = _decisions(store, rec, 20)
    start = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def deliver(i: int) -> None:
        start.wait()
        try:
            store.record_outcome(decisions[i], "waive_fee", "delivered", f"c-{i}", actual_cost=10)
            outcome = "ok"
        except BudgetExceeded:
            outcome = "over"
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            outcome = f"error: {exc!r}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["ok"] * 10 + ["over"] * 10, results
    assert store.budget_usage("acme")[0].spent == 100
    assert _delivered(store) == 10


def test_concurrent_retries_of_one_key_count_once(make_store, rec: Recommender) -> None:
    store = make_store(policy=Policy(budgets={"acme": Budget(daily=1000)}))
    (d,) = _decisions(store, rec, 1)
    start = threading.Barrier(8)
    records: list[Any] = []

    def retry() -> None:
        start.wait()
        records.append(store.record_outcome(d, "waive_fee", "delivered", "same-key"))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(records) == 8 and len({r.id for r in records}) == 1
    assert sum(not r.replayed for r in records) == 1
    assert store.budget_usage("acme")[0].spent == 25
    assert _delivered(store) == 1


@pytest.mark.postgres
def test_concurrent_deliveries_across_processes_share_one_budget(pg_url: str, rec: Recommender) -> None:
    """Two stores (as two service processes would have) against one PostgreSQL budget."""
    a = open_store(pg_url, upgrade=True, policy=Policy(budgets={"acme": Budget(daily=100)}))
    b = open_store(pg_url, policy=Policy(budgets={"acme": Budget(daily=100)}))
    try:
        decisions = _decisions(a, rec, 16)
        start = threading.Barrier(16)
        ok: list[int] = []

        def deliver(i: int) -> None:
            start.wait()
            try:
                (a if i % 2 else b).record_outcome(decisions[i], "waive_fee", "delivered", f"p-{i}", actual_cost=10)
                ok.append(i)
            except BudgetExceeded:
                pass

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(ok) == 10
        assert b.budget_usage("acme")[0].spent == 100
    finally:
        a.close()
        b.close()
