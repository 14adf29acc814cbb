"""Reports per gesture and per rule, and API keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from memory_fixtures import NOW, clock, ctx, db_url, make_store, pg_url, rec, store  # noqa: F401  (fixtures)
from sqlalchemy import select

from recommender import Recommender
from recommender.memory import InvalidStoreInput, KeyStore, Store
from recommender.memory.models import ApiKey


def test_report_counts_per_gesture_and_rule(store: Store, clock, rec: Recommender) -> None:
    d1 = rec.recommend(ctx(customer="a"), store=store).decision_id
    d2 = rec.recommend(ctx(customer="b", cost=40), store=store).decision_id
    d3 = rec.recommend(ctx(customer="c", issue="oil_change"), store=store).decision_id
    rec.recommend(ctx(customer="d", tenant="other"), store=store)  # another tenant: not counted
    store.record_outcome(d1, "waive_fee", "offered", "1")
    store.record_outcome(d1, "waive_fee", "accepted", "2")
    store.record_outcome(d1, "waive_fee", "delivered", "3")
    store.record_outcome(d2, "waive_fee", "delivered", "4", actual_cost=35.5)
    store.record_outcome(d2, "tire_check", "declined", "5")
    store.record_outcome(d2, "tire_check", "declined", "5")  # a retry: counted once
    store.record_outcome(d3, "oil_tip", "offered", "6")
    clock.advance(minutes=1)

    report = store.report("acme", NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert report.decisions == 3
    g = {r.key: r for r in report.gestures}
    assert (g["waive_fee"].recommended, g["waive_fee"].offered, g["waive_fee"].accepted,
            g["waive_fee"].delivered, g["waive_fee"].total_cost) == (2, 1, 1, 2, 60.5)
    assert (g["tire_check"].recommended, g["tire_check"].declined, g["tire_check"].total_cost) == (2, 1, 0)
    assert (g["oil_tip"].recommended, g["oil_tip"].offered) == (1, 1)
    assert g["waive_fee"].acceptance_rate == 1.0 and g["tire_check"].acceptance_rate == 0.0
    r = {row.key: row for row in report.rules}
    assert (r["flat-waive"].recommended, r["flat-waive"].delivered, r["flat-waive"].total_cost) == (2, 2, 60.5)
    assert (r["flat-check"].recommended, r["flat-check"].declined) == (4, 1)  # tire_check + apology, twice
    assert r["oil"].offered == 1
    assert report.total_cost == 60.5

    # the period filters on when the decision was made; the default is the last 30 days
    assert store.report("acme", NOW + timedelta(hours=1), NOW + timedelta(days=1)).decisions == 0
    assert store.report("acme").decisions == 3
    assert store.report("other").decisions == 1
    with pytest.raises(InvalidStoreInput, match="is after until"):
        store.report("acme", NOW, NOW - timedelta(days=1))


def test_api_keys(store: Store) -> None:
    keys = KeyStore(store)
    info, plaintext = keys.create("acme", ["recommend", "outcome", "recommend"], name="pos")
    assert plaintext.startswith(f"rk_{info.id}_") and len(plaintext) > 40
    assert info.scopes == ["recommend", "outcome"] and info.name == "pos" and info.revoked_at is None
    assert keys.verify(plaintext) == info
    assert info.allows("outcome") and not info.allows("admin")
    other, _ = keys.create("globex", ["admin"])
    assert other.allows("outcome")

    # only a hash is stored
    with store.engine.connect() as conn:
        row = conn.execute(select(ApiKey.__table__).where(ApiKey.__table__.c.id == info.id)).one()
    assert plaintext.split("_", 2)[2] not in str(tuple(row))

    for wrong in (plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"), "rk_nope_secret", "garbage", "",
                  f"rk_{info.id}_", "x" * 500):
        assert keys.verify(wrong) is None
    assert [k.id for k in keys.list("acme")] == [info.id]
    assert {k.id for k in keys.list()} == {info.id, other.id}
    assert keys.revoke(info.id) and not keys.revoke(info.id) and not keys.revoke("missing")
    assert keys.verify(plaintext) is None
    assert keys.list("acme")[0].revoked_at is not None

    with pytest.raises(InvalidStoreInput, match="invalid scope\\(s\\) 'write'"):
        keys.create("acme", ["write"])
    with pytest.raises(InvalidStoreInput, match="invalid scope"):
        keys.create("acme", [])
    with pytest.raises(InvalidStoreInput, match="invalid tenant"):
        keys.create("bad tenant", ["recommend"])
