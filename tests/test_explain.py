"""Explanations: matched conditions with values, scripts, near misses, missing inputs, receipts."""

from datetime import date
from typing import Any

from helpers import ctx, gesture, make, rule

WAIVE = gesture("waive_fee", "exceed", "interaction.cost", category="fee_waiver", authority="genuine",
                script="Thanks for {customer.tenure_years} years, {customer.name|friend}: the ${interaction.cost} is on us.")
LOYAL = rule("loyal", {"all": ["interaction.issue eq flat_tire", "customer.tenure_years ge 2", "interaction.cost le 40"]},
             "waive_fee", because="Don't nickel-and-dime loyal customers.")


def test_recommendation_carries_rule_conditions_values_script_and_reason():
    rec = make([WAIVE], [LOYAL])
    r = rec.recommend(ctx(customer={"tenure_years": 6, "name": "Maria"}, interaction={"cost": 25})).recommendations[0]
    assert r.script == "Thanks for 6 years, Maria: the $25 is on us."
    assert r.rules[0].rule_id == "loyal" and r.rules[0].because.startswith("Don't nickel")
    assert [(c.field, c.actual) for c in r.rules[0].conditions] == [
        ("interaction.issue", "flat_tire"), ("customer.tenure_years", 6.0), ("interaction.cost", 25.0)]
    assert "customer.tenure_years is 6 (needs >= 2)" in [c.text for c in r.rules[0].conditions]
    assert r.agent_reason == "Don't nickel-and-dime loyal customers."  # one sentence; the trace is in rules
    assert r.cost == 25.0


def test_script_fallback_when_a_value_is_missing():
    rec = make([WAIVE], [LOYAL])
    r = rec.recommend(ctx(customer={"tenure_years": 3}, interaction={"cost": 10})).recommendations[0]
    assert "friend" in r.script


def test_near_miss_says_what_would_flip_it():
    rec = make([WAIVE], [LOYAL])
    e = rec.explain(ctx(customer={"tenure_years": 1.5}, interaction={"cost": 25}))
    assert e.recommendations == []
    (nm,) = e.near_misses
    assert nm.rule_id == "loyal" and nm.gestures == ["waive_fee"]
    assert nm.failed.field == "customer.tenure_years"
    assert nm.hint == "would qualify at customer.tenure_years >= 2; is 1.5"


def test_rules_failing_on_two_conditions_are_not_near_misses():
    rec = make([WAIVE], [LOYAL])
    e = rec.explain(ctx(customer={"tenure_years": 1.5}, interaction={"cost": 80}))
    assert e.near_misses == []


def test_missing_data_is_a_state_not_an_error():
    rec = make([WAIVE], [LOYAL])
    e = rec.explain(ctx(interaction={"cost": 25}))
    assert e.recommendations == []
    assert "customer.tenure_years" in e.missing_inputs
    assert e.near_misses[0].hint == "would qualify if customer.tenure_years were known and >= 2"


def test_receipt_is_stable_and_changes_with_context_or_rules():
    rec = make([WAIVE], [LOYAL])
    a = rec.recommend({"interaction": {"issue": "flat_tire", "cost": 25}, "customer": {"tenure_years": 6}})
    b = rec.recommend({"customer": {"tenure_years": 6.0, "name": None}, "interaction": {"cost": 25.0, "issue": "flat_tire"}})
    assert a.receipt == b.receipt
    c = rec.recommend({"interaction": {"issue": "flat_tire", "cost": 26}, "customer": {"tenure_years": 6}})
    assert c.receipt.context_hash != a.receipt.context_hash
    other = make([WAIVE], [dict(LOYAL, priority=51)])
    assert other.ruleset_version != rec.ruleset_version
    assert a.receipt.ruleset_version == rec.ruleset_version == a.ruleset_version


def test_follow_up_due_date():
    call = gesture("courtesy_call", "meet", 0, category="follow_up", follow_up_days=3)
    rec = make([call], [rule("big", "interaction.cost ge 500", "courtesy_call")])
    r = rec.recommend(ctx(interaction={"cost": 900, "occurred_at": "2026-03-01T10:00:00"})).recommendations[0]
    assert r.follow_up_days == 3 and r.due_date == date(2026, 3, 4)


def test_result_round_trips_through_json():
    from recommender.results import Explanation

    rec = make([WAIVE], [LOYAL])
    e = rec.explain(ctx(customer={"tenure_years": 6}, interaction={"cost": 25}))
    assert Explanation.model_validate_json(e.model_dump_json()) == e


def test_missing_inputs_lists_only_fields_whose_absence_blocked_a_rule():
    rules = [LOYAL, rule("web", {"all": ["interaction.channel eq web", "interaction.sentiment lt 0"]}, "waive_fee")]
    rec = make([WAIVE], rules)
    # sentiment is absent too, but the web rule fails on channel anyway: giving sentiment changes nothing
    res = rec.recommend(ctx(interaction={"cost": 25}))
    assert res.missing_inputs == ["customer.tenure_years"]
    res = rec.recommend(ctx(interaction={"cost": 25, "channel": "web"}, customer={"tenure_years": 5}))
    assert res.missing_inputs == ["interaction.sentiment"]
    # what the check fires is memoized per values: the same answers again, and without the memo
    for shared in (rec.rulebook.shared, None):
        rec.rulebook.shared = shared
        assert rec.recommend(ctx(interaction={"cost": 25})).missing_inputs == ["customer.tenure_years"]
        again = rec.recommend(ctx(interaction={"cost": 25, "channel": "web"}, customer={"tenure_years": 5}))
        assert again.missing_inputs == ["interaction.sentiment"]


def test_missing_inputs_counts_a_missing_field_that_a_rule_wants_missing():
    """The check skips the engine when a rule's other tests read absent fields; a test that a
    field be *missing* holds on an absent field, so it must not be skipped for that."""
    unknown = {"field": "customer.tier", "op": "exists", "value": False}
    rec = make([WAIVE], [rule("quiet", {"all": ["interaction.sentiment lt 0", unknown]}, "waive_fee")])
    assert rec.recommend(ctx(interaction={"cost": 25})).missing_inputs == ["interaction.sentiment"]
    assert rec.recommend(ctx(interaction={"cost": 25}, customer={"tier": "gold"})).missing_inputs == []


def test_missing_inputs_memo_tells_list_values_apart():
    """The check's memo keys list values by their items: the same list again hits, another
    list is asked afresh."""
    moving = rule("moving", {"all": ["customer.life_events contains moving", "interaction.sentiment lt 0"]},
                  "waive_fee")
    rec = make([WAIVE], [moving])

    def missing(events):
        return rec.recommend(ctx(interaction={"cost": 25}, customer={"life_events": events})).missing_inputs

    assert missing(["moving"]) == ["interaction.sentiment"]
    assert missing(["moving"]) == ["interaction.sentiment"]
    assert missing(["married"]) == []
    assert missing(["married", "moving"]) == ["interaction.sentiment"]


def test_shared_explanations_read_each_context_afresh_and_stay_bounded():
    """Rule matches are shared per branch and values: same values, same object; new values, new
    text; a list value is shared as a tuple (the same list, the same match; a changed list, a
    new one); the memo never outgrows its bound, and while values do not repeat it stands
    aside (parts made afresh, still right)."""
    from recommender.explain import SharedParts

    listy = rule("listy", {"all": ["customer.life_events contains moving", "interaction.issue eq flat_tire"]},
                 "waive_fee")
    rec = make([WAIVE], [LOYAL, listy])
    book = rec.rulebook
    book.shared = shared = SharedParts(size=8, window=10, rest=3)

    def loyal(cost):
        r = rec.recommend(ctx(customer={"tenure_years": 6}, interaction={"cost": cost})).recommendations[0]
        assert f"interaction.cost is {cost} (needs <= 40)" in [c.text for c in r.rules[0].conditions]
        assert r.rules[0].conditions[2].actual == float(cost) and r.script.endswith(f"${cost} is on us.")
        return r.rules[0]

    first = loyal(39)
    assert loyal(39) is first  # shared while it pays
    for cost in range(10, 39):  # every value new: the memo fills, misses, then stands aside
        loyal(cost)
        assert len(shared) <= 8
        if shared._idle:
            break
    assert shared._idle > 0 and len(shared) == 0  # standing aside, emptied
    assert loyal(39) is not first and loyal(39) == first  # afresh, and equal
    book.shared = SharedParts()

    def moving(*events):
        c = ctx(customer={"life_events": list(events), "tenure_years": 1}, interaction={"cost": 1})
        (m,) = rec.recommend(c).recommendations[0].rules
        assert m.rule_id == "listy" and m.conditions[0].actual == events
        assert m.conditions[0].text.startswith(f"customer.life_events is {', '.join(events)} (needs contains moving)")
        assert rec.recommend(c).model_dump(mode="json")["recommendations"][0]["rules"][0]["conditions"][0][
            "actual"] == list(events)  # a list again in JSON
        return m

    one = moving("moving")
    assert moving("moving") is one
    two = moving("moving", "new_baby")
    assert two is not one and moving("moving") is one


def test_shared_explanations_under_threads_give_the_single_thread_answers():
    """A small memo that fills, evicts, empties and refills while 8 threads use it."""
    import sys
    import threading

    from recommender.explain import SharedParts

    rec = make([WAIVE], [LOYAL])
    contexts = [ctx(customer={"tenure_years": t, "name": n}, interaction={"cost": c})
                for t in (2, 6) for n in ("Ann", "Bo") for c in range(5, 40, 3)]
    expected = [rec.recommend(c).model_dump() for c in contexts]
    rec.rulebook.shared = SharedParts(size=4, window=8, rest=1)
    errors: list[Any] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def worker(offset: int) -> None:
        try:
            for i in range(200):
                k = (i * 7 + offset) % len(contexts)
                if rec.recommend(contexts[k]).model_dump() != expected[k]:
                    errors.append(k)
        except Exception as exc:  # noqa: BLE001 - any exception fails the test below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        sys.setswitchinterval(old)
    assert errors == []
