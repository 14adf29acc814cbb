"""Issue 15, the store's side: every case runs on a SQLite file and on PostgreSQL, and both
must give the same verdict.

* A request dated out of range never poisons a customer's history (item 3): the store
  refuses to log it, and rows logged before dates were bounded are ignored by enrichment.
* History windows cannot overflow, whatever the reference time (item 5).
* NUL characters, lone surrogates and non-finite numbers are refused with the field named,
  on both databases alike (item 4); what one database keeps, the other keeps too.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any

import pytest
from memory_fixtures import (  # noqa: F401  (fixtures)
    NOW,
    clock,
    ctx,
    db_url,
    make_store,
    pg_url,
    rec,
    sqlite_url,
    store,
)
from sqlalchemy import func, insert, select

from recommender import parse_context
from recommender.memory import InvalidStoreInput, KeyStore, Policy, StoreError
from recommender.memory.models import Decision, Outcome, Visit, table_of
from recommender.memory_protocol import Offer

UTC = timezone.utc
YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)


def _visit(store: Any, when: datetime, issue: str = "flat_tire", customer: str = "c-1") -> None:
    """A visit row as an older version of the store could have logged it (no date window)."""
    with store.engine.begin() as conn:
        conn.execute(insert(table_of(Visit)).values(tenant="acme", customer_id=customer, issue=issue,
                                                    occurred_at=when))


def _count(store: Any, model: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table_of(model))).scalar_one())


# -- item 3: one request must not poison a customer's history --------------------------


@pytest.mark.parametrize("when", ["1700-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z",
                                  "1899-12-31T23:59:59Z", "2201-01-01T00:00:00Z"])
def test_a_decision_dated_out_of_range_is_refused_and_later_requests_work(rec, store, when):
    # The context boundary refuses such dates; the store refuses them too, for callers that
    # hand it a context built some other way (so nothing out of range is ever logged).
    bad = parse_context(ctx())
    bad.interaction.occurred_at = datetime.fromisoformat(when.replace("Z", "+00:00"))
    for call in (lambda: store.enrich(bad), lambda: store.screen(bad, [Offer("waive_fee", "fee_waiver", "recover", 25)]),
                 lambda: store.record_decision(bad, rec.recommend(ctx()))):
        with pytest.raises(InvalidStoreInput, match="interaction.occurred_at: date must lie between the years "
                                                    "1900 and 2200") as err:
            call()
        assert err.value.field == "interaction.occurred_at"
    assert _count(store, Visit) == 0 and _count(store, Decision) == 0  # nothing was logged
    later = rec.recommend(ctx(interaction={"occurred_at": "2025-06-01T12:00:00Z"}), store=store)
    assert later.decision_id and _count(store, Visit) == 1


@pytest.mark.parametrize("when", [datetime(1700, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC),
                                  datetime(1, 1, 1, tzinfo=UTC)])
def test_rows_logged_out_of_range_before_do_not_poison_enrichment(rec, store, when):
    _visit(store, when)
    at = ctx(interaction={"occurred_at": "2025-06-01T00:00:00Z"})
    assert "customer" not in store.enrich(parse_context(at))  # no history that makes sense
    for _ in range(2):  # every later request works, and keeps working
        assert rec.recommend(at, store=store).decision_id
    _visit(store, datetime(2025, 5, 20, tzinfo=UTC), issue="oil_change")
    enriched = store.enrich(parse_context(at))
    assert enriched["customer"]["last_visit_days"] == 12.0  # the latest earlier visit, a sane one
    assert enriched["customer"]["prior_issues"] == ["oil_change"]  # the out-of-range flat is not history
    assert store.customer("acme", "c-1").known  # the view still shows every row


def test_a_very_long_absence_saturates_at_the_contexts_bound(rec, store):
    _visit(store, datetime(1900, 1, 2, tzinfo=UTC))
    late = ctx(interaction={"occurred_at": "2200-12-31T00:00:00Z"})
    enriched = store.enrich(parse_context(late))
    assert enriched["customer"]["last_visit_days"] == 100_000  # 110,000 days saturate, never fail
    assert rec.recommend(late, store=store).decision_id
    assert rec.recommend(late, store=store).decision_id  # and the next one too


def test_stored_profile_values_the_context_refuses_are_left_out_of_enrichment(rec, store):
    # A profile written before NUL and length checks (SQLite keeps a NUL; PostgreSQL would not).
    from recommender.memory.models import CustomerProfileRow

    from sqlalchemy import create_engine

    prefs = {"contact": "sms", "bad": "x\x00y" if store.dialect == "sqlite" else "ok", "huge": 2**60}
    old = create_engine(store._url)  # without today's checks
    with old.begin() as conn:
        conn.execute(insert(table_of(CustomerProfileRow)).values(
            tenant="acme", customer_id="c-1", preferences=prefs, interests=["golf", "g" * 300], notes=[],
            created_at=NOW, updated_at=NOW))
    old.dispose()
    enriched = store.enrich(parse_context(ctx()))
    assert enriched["customer"]["preferences"]["contact"] == "sms"
    assert "huge" not in enriched["customer"]["preferences"]
    assert enriched["customer"]["interests"] == ["golf"]
    assert rec.recommend(ctx(), store=store).decision_id


# -- item 5: the history window arithmetic cannot overflow --------------------------------


@pytest.mark.parametrize("now", [YEAR_1, LAST, datetime(9999, 12, 31, 23, 0, tzinfo=UTC)])
def test_windows_saturate_at_the_ends_of_the_calendar(rec, make_store, clock, now):
    policy = Policy(budgets={"acme": {"daily": 100}}, timezone="Pacific/Kiritimati",
                    contact=[{"tier": "exceed", "suppress_days": 36500}, {"category": "freebie", "max_count": 1,
                                                                           "window_days": 36500}],
                    goodwill={"share": 0.01, "period_days": 36500}, abuse={"threshold": 1, "window_days": 36500})
    store = make_store(policy=policy)
    first = rec.recommend(ctx({"lifetime_value": 10}), store=store)
    for g in first.recommendations:
        store.record_outcome(first.decision_id, g.gesture_id, "delivered", idempotency_key=f"k-{g.gesture_id}")
    c = parse_context(ctx({"lifetime_value": 10}))
    offers = [Offer("tire_check", "freebie", "exceed", 5.0), Offer("waive_fee", "fee_waiver", "recover", 25.0)]
    holds = store.screen(c, offers, now=now)  # no OverflowError, whatever ``now`` is
    assert all(h.available_on is None or isinstance(h.available_on, date) for h in holds)
    view = store.customer("acme", "c-1", now=now)
    assert view.known
    policy.budget_day(now), policy.next_budget_day(now)  # noqa: B018 - must not raise
    assert policy.next_budget_day(LAST) == date.max


def test_screening_history_from_years_ago_and_ahead_never_overflows(rec, store, clock):
    result = rec.recommend(ctx(), store=store)
    gesture = result.recommendations[0].gesture_id
    with store.engine.begin() as conn:  # outcomes at the ends of the calendar (a broken clock)
        for i, (outcome, at) in enumerate([("delivered", YEAR_1),
                                           ("accepted", datetime(9999, 12, 31, 23, 59, tzinfo=UTC))]):
            conn.execute(insert(table_of(Outcome)).values(
                tenant="acme", idempotency_key=f"edge-{i}", decision_id=result.decision_id, gesture_id=gesture,
                outcome=outcome, customer_id="c-1", category="fee_waiver", tier="exceed", cost=1.0,
                recorded_at=at))
    for now in (YEAR_1, LAST):
        store.screen(parse_context(ctx()), [Offer(gesture, "fee_waiver", "exceed", 1.0)], now=now)
        store.customer("acme", "c-1", now=now)
    assert rec.recommend(ctx(), store=store).decision_id


# -- item 4: both stores accept and refuse the same values ---------------------------------


NUL, SURROGATE = "a\x00b", "a\ud800b"


def _decision(rec: Any, store: Any) -> tuple[str, str]:
    result = rec.recommend(ctx(), store=store)
    return result.decision_id, result.recommendations[0].gesture_id


# (name, call(store, decision_id, gesture_id), the field the refusal names)
REFUSED = [
    ("outcome note NUL", lambda s, d, g: s.record_outcome(d, g, "accepted", "k1", note=NUL), "note"),
    ("outcome note surrogate", lambda s, d, g: s.record_outcome(d, g, "accepted", "k1", note=SURROGATE), "note"),
    ("idempotency key NUL", lambda s, d, g: s.record_outcome(d, g, "accepted", "k\x00"), "idempotency_key"),
    ("gesture id NUL", lambda s, d, g: s.record_outcome(d, g + "\x00", "accepted", "k1"), "gesture_id"),
    ("decision id NUL", lambda s, d, g: s.record_outcome(d[:30] + "\x00", g, "accepted", "k1"), "decision_id"),
    ("actual cost NaN", lambda s, d, g: s.record_outcome(d, g, "delivered", "k1", actual_cost=math.nan),
     "actual_cost"),
    ("actual cost inf", lambda s, d, g: s.record_outcome(d, g, "delivered", "k1", actual_cost=math.inf),
     "actual_cost"),
    ("get decision NUL", lambda s, d, g: s.get_decision("x\x00"), "decision_id"),
    ("customer view NUL", lambda s, d, g: s.customer("acme", "c\x00"), "customer_id"),
    ("customer view surrogate", lambda s, d, g: s.customer("acme", "c\udfff"), "customer_id"),
    ("tenant NUL", lambda s, d, g: s.customer("ac\x00me", "c-1"), "tenant"),
    ("tenant newline", lambda s, d, g: s.report("acme\n"), "tenant"),
    ("profile id NUL", lambda s, d, g: s.update_customer("acme", "c\x00", note="hi"), "customer_id"),
    ("preference NUL", lambda s, d, g: s.update_customer("acme", "c-1", preferences={"k": NUL}), "preferences.k"),
    ("preference NaN", lambda s, d, g: s.update_customer("acme", "c-1", preferences={"k": math.nan}),
     "preferences.k"),
    ("preference 2**63", lambda s, d, g: s.update_customer("acme", "c-1", preferences={"k": 2**63}),
     "preferences.k"),
    ("interest NUL", lambda s, d, g: s.update_customer("acme", "c-1", interests=[NUL]), "interests"),
    ("profile note NUL", lambda s, d, g: s.update_customer("acme", "c-1", note=NUL), "note"),
    ("forget NUL", lambda s, d, g: s.forget_customer("acme", "c\x00"), "customer_id"),
    ("key name NUL", lambda s, d, g: KeyStore(s).create("acme", ["recommend"], name=NUL), "name"),
    ("key list tenant NUL", lambda s, d, g: KeyStore(s).list("a\x00"), "tenant"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_both_stores_refuse_the_same_values_naming_the_field(rec, store, case):
    _, call, field = case
    decision_id, gesture = _decision(rec, store)
    outcomes = _count(store, Outcome)
    with pytest.raises(InvalidStoreInput) as err:
        call(store, decision_id, gesture)
    assert err.value.field == field and str(err.value).startswith(f"{field}:")
    assert _count(store, Outcome) == outcomes  # nothing was written
    assert rec.recommend(ctx(), store=store).decision_id  # and the store works on


@pytest.mark.parametrize("path,value", [("customer.name", NUL), ("customer.id", NUL), ("staff.id", SURROGATE),
                                        ("interaction.attributes.note", NUL),
                                        ("interaction.attributes.x", math.inf),
                                        ("customer.preferences.x", math.nan)])
def test_a_context_the_store_cannot_keep_is_refused_before_anything_is_logged(rec, store, path, value):
    # The context boundary refuses these; a context built around it must not reach either database.
    c = parse_context(ctx())
    section, name, *key = path.split(".")
    model = getattr(c, section)
    if key:
        getattr(model, name)[key[0]] = value
    else:
        setattr(model, name, value)
    result = rec.recommend(ctx(), store=store)
    before = _count(store, Decision)
    with pytest.raises(InvalidStoreInput) as err:
        store.record_decision(c, result)
    assert err.value.field == path
    assert _count(store, Decision) == before


def test_keys_with_unstorable_text_are_simply_unknown(store):
    keys = KeyStore(store)
    for bad in ("rk_\x00_secret", "rk_0123456789abcdef_sec\x00ret", "rk_0123456789abcdef_\ud800", "rk_zz_zz"):
        assert keys.verify(bad) is None
    assert keys.get("\x00") is None and keys.revoke("\x00") is False


ACCEPTED = ["control \x01\x1f\t\n chars", "emoji 🛞 and accents é", "x" * 2000, "quote ' \" \\u0000 backslash"]


@pytest.mark.parametrize("text", ACCEPTED, ids=["controls", "unicode", "2000", "escapes"])
def test_both_stores_keep_the_same_text_exactly(rec, store, text):
    decision_id, gesture = _decision(rec, store)
    stored = store.record_outcome(decision_id, gesture, "accepted", "k-text", note=text)
    assert store.get_decision(decision_id).outcomes[0].note == text == stored.note
    view = store.update_customer("acme", "c-1", preferences={"k": text}, note=text[:2000])
    assert view.preferences["k"] == text and view.notes[-1].text == text
    cid = text[:2000]
    store.update_customer("acme", cid, interests=["golf"])
    assert store.customer("acme", cid).known


def test_every_store_error_is_a_store_error(store):
    # The HTTP layer maps StoreError codes: nothing a caller passes may escape as a driver error.
    for call in (lambda: store.customer("acme", "x" * 2001), lambda: store.get_decision(42),
                 lambda: store.update_customer("acme", "c-1", interests=[None])):
        with pytest.raises(StoreError):
            call()
