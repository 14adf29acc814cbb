"""Ranking and arbitration: authority, budget, exclusive groups, conflicts, cap, determinism."""

from recommender.ranking import score

from helpers import OPEN_PROFILE, ctx, gesture, make, rule
from recommender import parse_context

ALWAYS = "interaction.issue eq flat_tire"


def test_score_rewards_relationship_and_tier_and_penalises_cost():
    loyal = parse_context(ctx(customer={"tenure_years": 10, "lifetime_value": 5000}))
    new = parse_context(ctx(customer={"tenure_years": 0.1, "lifetime_value": 50}))
    assert score("exceed", 50, 10, loyal) > score("exceed", 50, 10, new)
    assert score("recover", 50, 10, new) > score("meet", 50, 10, new) > score("exceed", 50, 10, new)
    assert score("exceed", 50, 10, new) > score("exceed", 50, 500, new)
    assert score("exceed", 80, 10, new) > score("exceed", 20, 10, new)


def test_baseline_comes_before_extras_and_extras_are_capped():
    gs = [gesture("recover_it", "recover", 50), gesture("meet_it", "meet", 0)] + \
         [gesture(f"extra{i}", "exceed", i) for i in range(5)]
    rules = [rule(f"r_{g['id']}", ALWAYS, g["id"], priority=90 if g["tier"] == "exceed" else 10) for g in gs]
    rec = make(gs, rules, profiles={"default": {**OPEN_PROFILE, "listing": {"recover": 20, "meet": 20, "exceed": 3}}})
    res = rec.recommend(ctx())
    tiers = [r.tier for r in res.recommendations]
    assert tiers[:2] == ["recover", "meet"] and tiers[2:] == ["exceed"] * 3
    assert [r.gesture_id for r in res.recommendations[2:]] == ["extra0", "extra1", "extra2"]  # cheapest score highest
    assert sorted(w.gesture_id for w in res.withheld if w.reason == "listing_cap") == ["extra3", "extra4"]
    assert len(rec.recommend(ctx(), max_extras=1).recommendations) == 3


def test_authority_moves_gestures_to_needs_approval():
    rec = make([gesture("big", "exceed", 100, authority="super"), gesture("small", "exceed", 1)],
               [rule("a", ALWAYS, ["big", "small"])])
    res = rec.recommend(ctx(staff={"level": "genuine"}))
    assert res.gesture_ids() == ["small"]
    assert [w.gesture_id for w in res.needs_approval] == ["big"]
    assert "needs super staff authority" in res.needs_approval[0].detail
    assert set(rec.recommend(ctx(staff={"level": "super"})).gesture_ids()) == {"big", "small"}
    assert rec.recommend(ctx(staff={"level": "synthetic"})).gesture_ids() == ["small"]


def test_budget_is_respected_in_rank_order():
    gs = [gesture("a", "recover", 30), gesture("b", "exceed", 15), gesture("c", "exceed", 10)]
    rec = make(gs, [rule("r", ALWAYS, ["a", "b", "c"])])
    res = rec.recommend(ctx(), budget=45)
    assert res.gesture_ids() == ["a", "c"]
    assert [(w.gesture_id, w.reason) for w in res.withheld] == [("b", "over_budget")]
    res = rec.recommend(ctx(interaction={"budget": 30}))
    assert res.gesture_ids() == ["a"]


def test_unknown_cost_cannot_be_checked_against_a_budget_or_a_money_limit():
    # Never promise what cannot be checked: a waiver of an amount the context lacks.
    rec = make([gesture("waive", "exceed", "interaction.cost")], [rule("r", ALWAYS, "waive")])
    for budget in (None, 100):
        res = rec.recommend(ctx(), budget=budget)
        assert res.gesture_ids() == [] and res.withheld[0].reason == "cost_unknown"
        assert "interaction.cost" in res.withheld[0].detail
    assert rec.recommend(ctx(interaction={"cost": 12})).recommendations[0].cost == 12


def test_exclusive_group_keeps_only_the_best():
    gs = [gesture("waive_all", "exceed", 40, exclusive_group="price"),
          gesture("discount", "exceed", 5, exclusive_group="price")]
    rec = make(gs, [rule("r", ALWAYS, ["waive_all", "discount"], priority=50)])
    res = rec.recommend(ctx())
    assert res.gesture_ids() == ["discount"]
    assert res.withheld[0].reason == "exclusive_group" and res.withheld[0].gesture_id == "waive_all"


def test_conflicting_gestures_never_come_back_together():
    gs = [gesture("waive_service_fee", "exceed", 20, conflicts_with=["upsell_premium"]),
          gesture("upsell_premium", "exceed", 0)]
    rec = make(gs, [rule("r", ALWAYS, ["waive_service_fee", "upsell_premium"])])
    res = rec.recommend(ctx())
    assert len(res.recommendations) == 1
    assert res.withheld[0].reason == "conflict"


def test_same_input_same_output():
    gs = [gesture(f"g{i}", "exceed", i) for i in range(6)]
    rec = make(gs, [rule(f"r{i}", ALWAYS, f"g{i}", priority=50) for i in range(6)])
    a = rec.recommend(ctx(customer={"tenure_years": 3})).model_dump_json()
    b = rec.recommend(ctx(customer={"tenure_years": 3})).model_dump_json()
    assert a == b
    c = make(gs, [rule(f"r{i}", ALWAYS, f"g{i}", priority=50) for i in range(6)])
    assert c.recommend(ctx(customer={"tenure_years": 3})).model_dump_json() == a


def test_a_gesture_matched_by_two_rules_appears_once_with_both_reasons():
    rec = make([gesture("g")], [rule("r1", ALWAYS, "g", priority=10), rule("r2", "interaction.cost ge 0", "g", priority=80)])
    res = rec.recommend(ctx(interaction={"cost": 5}))
    assert res.gesture_ids() == ["g"]
    assert [m.rule_id for m in res.recommendations[0].rules] == ["r1", "r2"]


def test_recommend_many_equals_recommend_in_a_loop():
    gs = [gesture(f"g{i}", "exceed", i) for i in range(4)]
    rec = make(gs, [rule(f"r{i}", f"interaction.cost ge {i * 10}", f"g{i}") for i in range(4)])
    contexts = [ctx(interaction={"cost": c}, customer={"tenure_years": t}) for c in (0, 15, 35) for t in (1, 5)]
    contexts.append(contexts[0])  # a repeat
    batch = rec.recommend_many(contexts)
    assert [r.model_dump() for r in batch] == [rec.recommend(c).model_dump() for c in contexts]


def test_one_approval_request_per_exclusive_group():
    """Two perks of one kind never both wait for approval, and a kept gesture of a group
    leaves nothing of that group to ask for. (Same priority: the cheaper gesture ranks higher.)"""
    gs = [gesture("refund_full", "exceed", 80, exclusive_group="price", authority="super"),
          gesture("refund_half", "exceed", 40, exclusive_group="price", authority="genuine"),
          gesture("voucher", "exceed", 5, exclusive_group="price"),
          gesture("upgrade", "exceed", 30, authority="super")]
    rec = make(gs, [rule("r", ALWAYS, [g["id"] for g in gs])])
    res = rec.recommend(ctx(staff={"level": "synthetic"}), max_extras=9)
    assert res.gesture_ids() == ["voucher"]
    assert [w.gesture_id for w in res.needs_approval] == ["upgrade"]  # nothing of "price" left to ask for
    assert [(w.gesture_id, w.reason) for w in res.withheld] == [
        ("refund_half", "exclusive_group"), ("refund_full", "exclusive_group")]

    no_voucher = make(gs[:2] + gs[3:], [rule("r", ALWAYS, ["refund_full", "refund_half", "upgrade"])])
    res = no_voucher.recommend(ctx(staff={"level": "synthetic"}), max_extras=9)
    assert res.gesture_ids() == []
    assert [w.gesture_id for w in res.needs_approval] == ["upgrade", "refund_half"]
    (other,) = res.withheld
    assert (other.gesture_id, other.reason) == ("refund_full", "exclusive_group")
    assert "refund_half ranks higher and awaits approval" in other.detail
    # genuine staff give the half refund; nothing of its group is left to ask for
    res = no_voucher.recommend(ctx(staff={"level": "genuine"}), max_extras=9)
    assert res.gesture_ids() == ["refund_half"]
    assert [w.gesture_id for w in res.needs_approval] == ["upgrade"]
    assert [(w.gesture_id, w.reason) for w in res.withheld] == [("refund_full", "exclusive_group")]
