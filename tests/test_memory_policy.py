"""Contact policy, abuse review, the goodwill cap and authority limits, seen through explain()."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import NOW, clock, ctx, db_url, make_store, pg_url, rec  # noqa: F401  (fixtures)

from recommender import Recommender, parse_context
from recommender.memory import (
    AbuseRule,
    Budget,
    ContactRule,
    GoodwillRule,
    InvalidStoreInput,
    Policy,
)
from recommender.memory_protocol import Offer


def _held(result: Any) -> dict[str, Any]:
    return {w.gesture_id: w for w in [*result.withheld, *result.needs_approval]}


def _deliver(store: Any, rec: Recommender, gesture: str, key: str, outcome: str = "delivered", **c: Any) -> str:
    result = rec.recommend(ctx(**c), store=store)
    assert gesture in result.gesture_ids() + [w.gesture_id for w in result.needs_approval], result
    store.record_outcome(result.decision_id, gesture, outcome, key)
    return result.decision_id


# -- contact policy -----------------------------------------------------------------------


def test_an_exceed_gesture_is_not_repeated_within_90_days(make_store, clock, rec: Recommender) -> None:
    store = make_store()
    clock.set(NOW - timedelta(days=30))
    _deliver(store, rec, "tire_check", "t-1")  # a free tire check 30 days ago
    clock.set(NOW)

    explained = rec.explain(ctx(), store=store)
    assert "tire_check" not in explained.gesture_ids()
    held = _held(explained)["tire_check"]
    assert held.reason == "suppressed"
    assert held.available_on == date(2025, 7, 31)  # 30 days ago + 90 days
    assert "delivered to this customer on 2025-05-02 (30 days ago)" in held.detail
    assert "not again within 90 days" in held.detail
    assert "apology" in explained.gesture_ids()  # a 'meet' gesture is not suppressed

    # another customer still gets it; and after the window the customer gets it again
    assert "tire_check" in rec.explain(ctx(customer="c-2"), store=store).gesture_ids()
    clock.set(NOW + timedelta(days=61))
    assert "tire_check" in rec.explain(ctx(), store=store).gesture_ids()


def test_offered_counts_as_received_but_declined_does_not(make_store, clock, rec: Recommender) -> None:
    store = make_store()
    _deliver(store, rec, "tire_check", "a-1", outcome="declined", customer="c-a")
    _deliver(store, rec, "tire_check", "b-1", outcome="offered", customer="c-b")
    clock.advance(days=1)
    assert "tire_check" in rec.explain(ctx(customer="c-a"), store=store).gesture_ids()
    assert _held(rec.explain(ctx(customer="c-b"), store=store))["tire_check"].reason == "suppressed"
    # count_declined makes a declined offer count too
    strict = make_store(policy=Policy(contact=[ContactRule(tier="exceed", suppress_days=90, count_declined=True)]))
    assert _held(rec.explain(ctx(customer="c-a"), store=strict))["tire_check"].reason == "suppressed"


def test_frequency_cap_per_category(make_store, clock, rec: Recommender) -> None:
    policy = Policy(contact=[ContactRule(category="freebie", max_count=2, window_days=30, per_gesture=False)])
    store = make_store(policy=policy)
    _deliver(store, rec, "tire_check", "f-1")
    clock.advance(days=5)
    _deliver(store, rec, "tire_check", "f-2")  # no suppression window in this policy: offered again
    clock.advance(days=5)
    held = _held(rec.explain(ctx(), store=store))["tire_check"]
    assert held.reason == "suppressed"
    assert "frequency cap of 2 per 30 days reached (2 received)" in held.detail
    assert held.available_on == (NOW + timedelta(days=30)).date()  # the older one leaves the window
    assert "category freebie" in held.detail


def test_screen_without_a_customer_applies_no_contact_policy(make_store) -> None:
    store = make_store()
    offers = [Offer("tire_check", "freebie", "exceed", 5.0)]
    assert store.screen(parse_context(ctx(customer=None)), offers) == []


# -- abuse review ---------------------------------------------------------------------------


def test_three_fee_waivers_flag_the_customer_for_review(make_store, clock, rec: Recommender) -> None:
    store = make_store()
    for i in range(3):
        _deliver(store, rec, "waive_fee", f"w-{i}")
        clock.advance(days=20)
    explained = rec.explain(ctx(), store=store)
    pending = {w.gesture_id: w for w in explained.needs_approval}
    assert set(pending) == {"waive_fee", "tire_check", "comeback_credit"}  # every monetary gesture
    w = pending["waive_fee"]
    assert "flagged for review: 3 fee_waiver gestures accepted or delivered in the last 90 days" in w.detail
    assert w.available_on == (NOW + timedelta(days=90)).date()  # when the first waiver leaves the window
    assert "apology" in explained.gesture_ids()  # a gesture that costs nothing still goes
    assert store.customer("acme", "c-1").flagged_for_review

    # an approved gesture can be recorded against the decision that listed it
    result = rec.recommend(ctx(), store=store)
    assert "waive_fee" in [w.gesture_id for w in result.needs_approval]
    rec_ = store.record_outcome(result.decision_id, "waive_fee", "delivered", "approved-1", note="manager ok")
    assert rec_.category == "fee_waiver"
    status = {g.gesture_id: g.status for g in store.get_decision(result.decision_id).gestures}
    assert status["waive_fee"] == "needs_approval"

    clock.advance(days=91)
    assert "waive_fee" in rec.explain(ctx(), store=store).gesture_ids()  # ... and after the window


def test_abuse_rule_is_configurable(make_store, clock, rec: Recommender) -> None:
    store = make_store(policy=Policy(abuse=AbuseRule(threshold=1, window_days=10)))
    _deliver(store, rec, "waive_fee", "w-1")
    assert "waive_fee" in [w.gesture_id for w in rec.explain(ctx(), store=store).needs_approval]
    clock.advance(days=11)
    assert "waive_fee" in rec.explain(ctx(), store=store).gesture_ids()
    off = make_store(policy=Policy(abuse=AbuseRule(enabled=False)))
    assert not rec.explain(ctx(), store=off).needs_approval


# -- goodwill cap ----------------------------------------------------------------------------


def test_goodwill_stays_within_a_share_of_lifetime_value(make_store, clock, rec: Recommender) -> None:
    store = make_store()
    valued = {"lifetime_value": 1000}
    _deliver(store, rec, "waive_fee", "g-1", cost=40)
    clock.advance(days=1)
    _deliver(store, rec, "waive_fee", "g-2", cost=40, customer=valued)
    clock.advance(days=1)
    explained = rec.explain(ctx(cost=30, customer=valued), store=store)
    held = _held(explained)["waive_fee"]
    assert held.reason == "goodwill_cap"
    assert "80.00 given to this customer in the last 365 days" in held.detail
    assert "10% of lifetime value 1000.00 (cap 100.00)" in held.detail
    assert held.available_on == (NOW + timedelta(days=365)).date()
    # the tire check (5) still fits under the cap: 80 + 5 <= 100
    assert "tire_check" in explained.gesture_ids()
    # no lifetime value stated: the cap does not apply
    assert "waive_fee" in rec.explain(ctx(cost=30), store=store).gesture_ids()
    # a larger share lets it through
    generous = make_store(policy=Policy(goodwill=GoodwillRule(share=0.2)))
    assert "waive_fee" in rec.explain(ctx(cost=30, customer=valued), store=generous).gesture_ids()


# -- authority limits and budgets in screening -------------------------------------------------


def test_authority_limit_per_staff_level(make_store, rec: Recommender) -> None:
    store = make_store(policy=Policy(authority_limits={"synthetic": 10, "genuine": 50}))
    junior = rec.explain(ctx(cost=25, staff={"level": "synthetic"}), store=store)
    held = _held(junior)["waive_fee"]
    assert held.reason == "over_budget"
    assert "over the synthetic staff level's limit of 10.00" in held.detail
    assert "tire_check" in junior.gesture_ids()  # 5 <= 10
    assert "waive_fee" in rec.explain(ctx(cost=25, staff={"level": "genuine"}), store=store).gesture_ids()
    assert "waive_fee" in rec.explain(ctx(cost=55, staff={"level": "super"}), store=store).gesture_ids()


def test_budget_screening_shows_over_budget_until_tomorrow(make_store, clock, rec: Recommender) -> None:
    store = make_store(policy=Policy(budgets={"acme": Budget(daily=30)}))
    d = rec.recommend(ctx(customer=None, cost=25), store=store).decision_id
    store.record_outcome(d, "waive_fee", "delivered", "b-1")
    explained = rec.explain(ctx(customer=None, cost=25), store=store)
    held = _held(explained)["waive_fee"]
    assert held.reason == "over_budget"
    assert "tenant daily budget for 2025-06-01: 25.00 of 30.00 spent, this costs 25.00" in held.detail
    assert held.available_on == date(2025, 6, 2)
    assert "tire_check" in explained.gesture_ids()  # 25 + 5 <= 30
    # other tenants have their own (here: no) budget
    assert "waive_fee" in rec.explain(ctx(customer=None, cost=25, tenant="other"), store=store).gesture_ids()
    clock.advance(days=1)
    assert "waive_fee" in rec.explain(ctx(customer=None, cost=25), store=store).gesture_ids()


# -- the policy model -------------------------------------------------------------------------


def test_policy_defaults_and_files(tmp_path: Path) -> None:
    p = Policy()
    assert [(r.tier, r.suppress_days) for r in p.contact] == [("exceed", 90)]
    assert (p.abuse.category, p.abuse.threshold, p.abuse.window_days) == ("fee_waiver", 3, 90)
    assert (p.goodwill.share, p.goodwill.period_days) == (0.10, 365)
    assert p.repeat_issue_days == 30

    f = tmp_path / "policy.yaml"
    f.write_text("contact:\n  - {gesture: tire_check, suppress_days: 30}\n"
                 "budgets:\n  acme: {daily: 500, per_store_daily: 100, stores: {s-9: 250}}\n"
                 "authority_limits: {synthetic: 20}\ntimezone: Europe/Berlin\n")
    loaded = Policy.load(f)
    assert loaded.contact[0].gesture == "tire_check"
    assert loaded.budget_for("acme").limits("s-9", None) == [("tenant", "", 500), ("store", "s-9", 250)]
    assert loaded.budget_for("acme").limits("s-1", None)[1] == ("store", "s-1", 100)
    assert loaded.budget_for("nobody") is None

    bad = tmp_path / "bad.yaml"
    bad.write_text("contact:\n  - {tier: exceed}\nbudgets: {acme: {daily: -1}}\n")
    with pytest.raises(InvalidStoreInput, match=r"bad.yaml: invalid policy: contact.0: .*suppress_days or max_count.*"
                                                r"budgets.acme.daily"):
        Policy.load(bad)
    with pytest.raises(InvalidStoreInput, match="cannot read policy file"):
        Policy.load(tmp_path / "missing.yaml")
