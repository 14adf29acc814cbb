"""Every operator, evaluated by durable-rules, on present, absent and mistyped values."""

import pytest

from helpers import ctx, gesture, make, rule


def fires(when, context):
    rec = make([gesture("g")], [rule("r", when, "g")])
    return rec.recommend(context).gesture_ids() == ["g"]


CASES = [
    # (condition, context sections, expected)
    ("interaction.issue eq flat_tire", {}, True),
    ("interaction.issue eq oil_change", {}, False),
    ("interaction.issue ne oil_change", {}, True),
    ("interaction.issue ne flat_tire", {}, False),
    ("interaction.cost lt 40", {"interaction": {"cost": 39.99}}, True),
    ("interaction.cost lt 40", {"interaction": {"cost": 40}}, False),
    ("interaction.cost le 40", {"interaction": {"cost": 40}}, True),
    ("interaction.cost gt 40", {"interaction": {"cost": 40}}, False),
    ("interaction.cost gt 40", {"interaction": {"cost": 40.01}}, True),
    ("interaction.cost ge 40", {"interaction": {"cost": 40}}, True),
    ("interaction.cost >= 40", {"interaction": {"cost": 39}}, False),
    ("interaction.channel in [phone, chat]", {"interaction": {"channel": "chat"}}, True),
    ("interaction.channel in [phone, chat]", {"interaction": {"channel": "pos"}}, False),
    ("interaction.channel not_in [phone, chat]", {"interaction": {"channel": "pos"}}, True),
    ("interaction.channel not_in [phone, chat]", {"interaction": {"channel": "phone"}}, False),
    ("customer.visits_last_year in [1, 2, 3]", {"customer": {"visits_last_year": 2}}, True),
    ("customer.tenure_years exists", {"customer": {"tenure_years": 0}}, True),
    ("customer.tenure_years exists", {}, False),
    ("customer.tenure_years exists false", {}, True),
    ("customer.tenure_years exists false", {"customer": {"tenure_years": 3}}, False),
    ("customer.life_events contains home_purchase", {"customer": {"life_events": ["new_baby", "home_purchase"]}}, True),
    ("customer.life_events contains home_purchase", {"customer": {"life_events": ["new_baby"]}}, False),
    ("customer.life_events contains home_purchase", {}, False),
    ("customer.life_events not_contains home_purchase", {"customer": {"life_events": []}}, True),
    ("customer.life_events not_contains home_purchase", {"customer": {"life_events": ["home_purchase"]}}, False),
    ("customer.preferences.drink contains oat", {"customer": {"preferences": {"drink": "flat white, oat milk"}}}, True),
    ("customer.preferences.drink contains (oat)", {"customer": {"preferences": {"drink": "x (oat) y"}}}, True),
    ("customer.preferences.drink contains (oat)", {"customer": {"preferences": {"drink": "x oat y"}}}, False),
    ("interaction.repeat_issue eq true", {"interaction": {"repeat_issue": True}}, True),
    ("interaction.repeat_issue eq true", {"interaction": {"repeat_issue": False}}, False),
    ("interaction.attributes.service eq oil_change", {"interaction": {"attributes": {"service": "oil_change"}}}, True),
    ("interaction.attributes.bay gt 3", {"interaction": {"attributes": {"bay": 4}}}, True),
]


@pytest.mark.parametrize("when,sections,expected", CASES)
def test_operator(when, sections, expected):
    assert fires(when, ctx(**sections)) is expected


def test_missing_field_never_matches_nor_does_its_negation():
    # Three-valued logic: a test on an absent field is unknown, and so is its negation.
    assert not fires("customer.tenure_years lt 2", ctx())
    assert not fires({"not": "customer.tenure_years lt 2"}, ctx())
    assert not fires("interaction.sentiment ne 0", ctx())


def test_all_any_not_combine():
    when = {"all": ["interaction.issue eq flat_tire",
                    {"any": ["customer.tenure_years ge 5", "customer.lifetime_value ge 1000"]},
                    {"not": "interaction.channel eq web"}]}
    assert fires(when, ctx(customer={"tenure_years": 6}, interaction={"channel": "pos"}))
    assert fires(when, ctx(customer={"tenure_years": 1, "lifetime_value": 1500}, interaction={"channel": "phone"}))
    assert not fires(when, ctx(customer={"tenure_years": 1}, interaction={"channel": "pos"}))
    assert not fires(when, ctx(customer={"tenure_years": 6}, interaction={"channel": "web"}))
    # an unknown channel is neither web nor not web: the rule does not claim it
    assert not fires(when, ctx(customer={"tenure_years": 6}))


def test_not_of_any_is_de_morgan():
    when = {"not": {"any": ["interaction.channel eq web", "interaction.channel eq email"]}}
    assert fires(when, ctx(interaction={"channel": "phone"}))
    assert not fires(when, ctx(interaction={"channel": "email"}))


def test_a_rule_with_several_true_branches_fires_once():
    rec = make([gesture("g")], [rule("r", {"any": ["interaction.issue eq flat_tire", "interaction.cost ge 0"]}, "g")])
    res = rec.explain(ctx(interaction={"cost": 5}))
    assert res.gesture_ids() == ["g"] and res.rules_matched == ["r"]
    assert len(res.recommendations[0].rules) == 1


def test_a_number_sent_as_text_in_attributes_does_not_match_and_is_reported():
    # durable-rules would compare "5" > 3 as strings; we never send it.
    rec = make([gesture("g")], [rule("r", "interaction.attributes.bay gt 3", "g")])
    res = rec.recommend(ctx(interaction={"attributes": {"bay": "5"}}))
    assert res.gesture_ids() == []
    assert res.type_mismatches == ["interaction.attributes.bay"]
    res = rec.recommend(ctx(interaction={"attributes": {"bay": True}}))
    assert res.gesture_ids() == [] and res.type_mismatches == ["interaction.attributes.bay"]


def test_exists_and_a_typed_test_on_one_open_key_agree_whatever_the_rule_order():
    for order in ((0, 1), (1, 0)):
        rules = [rule("r1", "interaction.attributes.fee exists", "g1"), rule("r2", "interaction.attributes.fee gt 1", "g2")]
        rec = make([gesture("g1"), gesture("g2")], [rules[i] for i in order])
        res = rec.recommend(ctx(interaction={"attributes": {"fee": 5}}))
        assert sorted(res.gesture_ids()) == ["g1", "g2"] and res.type_mismatches == []


def test_exists_alone_on_an_open_key_accepts_any_value_type():
    rec = make([gesture("g")], [rule("r", "interaction.attributes.flag exists", "g")])
    for value in (1, "x", True, 2.5):
        assert rec.recommend(ctx(interaction={"attributes": {"flag": value}})).gesture_ids() == ["g"]
    assert rec.recommend(ctx()).gesture_ids() == []


def matched(when, context):
    rec = make([gesture("g", "meet")], [rule("r", when, "g")])
    return rec.explain(context).rules_matched == ["r"]


def test_the_largest_threshold_a_pack_may_hold_still_orders_every_accepted_value():
    # packs refuse thresholds beyond +-(2**53 - 1); contexts stop at +-2**53: both compared exactly
    top = 2**53 - 1
    assert matched(f"interaction.attributes.x gt {top}", ctx(interaction={"attributes": {"x": 2**53}}))
    assert not matched(f"interaction.attributes.x gt {top}", ctx(interaction={"attributes": {"x": top}}))
    assert matched(f"interaction.attributes.x le -{top}", ctx(interaction={"attributes": {"x": -(2**53)}}))
    assert matched(f"interaction.attributes.x eq {top}", ctx(interaction={"attributes": {"x": top}}))


def test_contains_on_text_escapes_every_pattern_metacharacter():
    for pattern in ("a.b", "a*b", "1+1", "why?", "a|b", "(x)", "[x]", "{x}", "50%"):
        when = {"field": "customer.preferences.note", "op": "contains", "value": pattern}
        assert matched(when, ctx(customer={"preferences": {"note": f"say {pattern} now"}})), pattern
        assert not matched(when, ctx(customer={"preferences": {"note": "say ab now, 1 1 x"}})), pattern
