"""Scenarios of the auto_repair plugin, run against a real Recommender.

Runs from the plugin folder (``pytest``) or the repo root
(``pytest plugins/auto_repair/tests``), installed or not.

The advice model (docs/advice.md): the plugin serves businesses of the vertical
``auto_repair``; loyalty and value are judged on a garage's scale (the plugin's profile
defaults); money above the serving person's limit goes to approval; the extras (tier
``exceed``) are drawn for about one interaction in ten, so a test of one asserts that it was
eligible (listed, or withheld only by the draw: ``offered_or_drawn``) and the draw itself is
tested across many customers on a fixed day, which makes it reproducible.
"""

from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any, Callable

import pytest

from recommender import Recommender, parse_context
from recommender.context import Business
from recommender.testing import (TradePluginTests, import_plugin, offered_or_drawn, plugin_recommender, script_problems,
                                 withheld_reasons)

plugin = import_plugin("recommender_auto_repair", __file__)  # installed, or from the source folder
PLUGIN_ROOT = Path(__file__).resolve().parents[1]

NAME = "recommender_auto_repair"  # the plugin's name when registered as an object
EP_NAME = "auto_repair"  # its name when found through the entry point
SHOP = Business(vertical="auto_repair")
DAY = "2025-06-02T10:00:00"  # a fixed day: the extras draw is reproducible


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return plugin_recommender(plugin)  # only this plugin: no core packs, nothing installed


@pytest.fixture(scope="module")
def with_core() -> Recommender:
    return plugin_recommender(plugin, core_packs=True)  # the shipped core packs plus this plugin


def ctx(customer: dict[str, Any] | None = None, staff: str = "genuine", vertical: str | None = "auto_repair",
        **interaction: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"customer": customer or {}, "interaction": interaction, "staff": {"level": staff}}
    if vertical is not None:
        data["business"] = {"vertical": vertical}
    return data


#: Loyal at a garage (2 years or 8 visits), not high-value there (3000).
LOYAL = {"name": "Maria", "tenure_years": 6, "lifetime_value": 2400}
NEW = {"name": "Sam", "tenure_years": 0.1, "lifetime_value": 60}


def offered(result: Any) -> list[str]:
    return result.gesture_ids()


held = withheld_reasons  # gesture id -> why it is not offered (withheld or awaiting approval)


def matched(result: Any) -> set[str]:
    """Every gesture a rule chose: listed, awaiting approval or withheld with a reason."""
    return {*offered(result), *held(result)}


def drawn(recommender: Recommender, make: Callable[[int], dict[str, Any]], gesture_id: str) -> Any:
    """The first of 200 customers (ids c-0, c-1, ... on a fixed day) whose draw lists ``gesture_id``."""
    for i in range(200):
        result = recommender.recommend(make(i))
        if gesture_id in offered(result):
            return result
    raise AssertionError(f"{gesture_id} was listed for none of 200 customers")


def rec_for(result: Any, gesture_id: str) -> Any:
    return next(r for r in result.recommendations if r.gesture_id == gesture_id)


# -- registration --------------------------------------------------------------------


def test_contributes_prefixed_gestures_and_rules(rec: Recommender) -> None:
    info = {i["name"]: i for i in rec.plugin_info()}[NAME]
    assert set(info["hooks"]) == {"recommender_declare_verticals", "recommender_register_issue_codes",
                                  "recommender_business_profile", "recommender_register_rule_packs",
                                  "recommender_enrich_context", "recommender_adjust_recommendations"}
    book = rec.rulebook_for(SHOP)
    ours = [g for g in book.gestures.values() if g.source == str(plugin.PACK_PATH)]
    assert len(ours) >= 10
    assert all(g.id.startswith("auto_") for g in ours)
    assert all(r.id.startswith("auto_repair.") for r in book.rules)
    assert book.gestures["auto_waive_flat_fee"].source == str(plugin.PACK_PATH)


def test_declares_waiver_vs_upsell_conflict(rec: Recommender) -> None:
    assert "auto_upsell_premium_tire_repair" in rec.rulebook_for(SHOP).gestures["auto_waive_flat_fee"].conflicts_with


def test_loads_next_to_the_shipped_core_packs_without_warnings(with_core: Recommender) -> None:
    result = with_core.recommend(ctx(LOYAL, issue="flat_tire", cost=25))
    assert not result.warnings, result.warnings
    assert "auto_waive_flat_fee" in with_core.rulebook_for(SHOP).gestures


# -- the trade it serves -------------------------------------------------------------


@pytest.mark.parametrize("vertical", [None, "fitness", "insurance"])
def test_applies_only_to_auto_repair_businesses(rec: Recommender, vertical: str | None) -> None:
    # a plugin that declares its verticals is not in another business's rulebook at all
    assert not [g for g in rec.rulebook_for(Business(vertical=vertical)).gestures if g.startswith("auto_")]
    result = rec.recommend(ctx(LOYAL, vertical=vertical, issue="flat_tire", cost=25))
    assert offered(result) == [] and not held(result)


def test_plugin_config_selects_it_for_a_business_without_a_vertical() -> None:
    # a single-shop install that does not send business.vertical: configure the plugin for it
    single = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    result = single.recommend(ctx(LOYAL, vertical=None, issue="flat_tire", cost=25))
    assert offered(result) == ["auto_waive_flat_fee"]
    # the scope marker still keeps another trade's issue out of the shop's rules
    assert single.recommend(ctx(LOYAL, vertical=None, issue="late_delivery", delay_days=3)).gesture_ids() == []


def test_plugin_config_can_limit_the_plugin_to_auto_shops() -> None:
    sel = plugin_recommender(plugin, plugin_config={"verticals": {"auto_repair": [NAME]}, "default": []})
    flat = {"customer": LOYAL, "interaction": {"issue": "flat_tire", "cost": 25}}
    assert "auto_waive_flat_fee" in sel.recommend({**flat, "business": {"id": "shop1", "vertical": "auto_repair"}}).gesture_ids()
    assert sel.recommend({**flat, "business": {"id": "gym1", "vertical": "fitness"}}).gesture_ids() == []
    assert "auto_waive_flat_fee" not in sel.rulebook_for(Business(id="gym1", vertical="fitness")).gestures


# -- issue codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code, family", [
    ("flat_tire", "routine"), ("puncture", "routine"), ("oil_change", "routine"), ("lube", "routine"),
    ("tire_rotation", "routine"), ("diagnostic", "routine"), ("engine_repair", "routine"),
    ("vehicle_not_ready", "delay"), ("car_not_ready", "delay"),
    ("comeback", "service_failure"), ("repair_failed", "service_failure"),  # the core's codes
])
def test_issue_codes_are_in_their_families(rec: Recommender, code: str, family: str) -> None:
    result = rec.recommend(ctx({}, issue=code))
    assert result.assessment.family == family
    assert not result.notes and not result.warnings


def test_an_unknown_code_at_the_shop_is_noted_and_still_counts(rec: Recommender) -> None:
    result = rec.recommend(ctx({"id": "c-7"}, issue="custom_fabrication", cost=700, occurred_at=DAY))
    assert result.assessment.family is None
    assert any("custom_fabrication" in note for note in result.notes)
    assert offered_or_drawn(result, "auto_courtesy_followup_call")  # service_category "other": still car work


# -- profile -------------------------------------------------------------------------


def test_profile_defaults_on_a_garages_scale(rec: Recommender) -> None:
    shop, _ = rec.profile_for(SHOP)
    assert (shop.loyal_tenure_years, shop.loyal_visits, shop.high_value) == (2, 8, 3000)
    assert shop.limit_for("genuine") == 100
    other, _ = rec.profile_for(Business(vertical="fitness"))  # the plugin does not serve it
    assert (other.loyal_tenure_years, other.high_value) == (3, 2000)
    configured = plugin_recommender(plugin, profiles={"default": {"loyal_tenure_years": 5}})
    assert configured.profile_for(SHOP)[0].loyal_tenure_years == 5  # configuration wins


@pytest.mark.parametrize("customer, loyal", [
    ({"tenure_years": 2.5}, True),                      # loyal at a garage, not by the core's 3 years
    ({"visits": 8}, True),                              # or by visits
    ({"tenure_years": 1.5, "visits": 3}, False),
    ({"lifetime_value": 3500, "tenure_years": 0.5}, True),  # high-value there: the fee is waived too
    ({}, False),                                        # a walk-in: unknown never matches
])
def test_loyalty_is_judged_on_the_shops_scale(rec: Recommender, customer: dict[str, Any], loyal: bool) -> None:
    result = rec.recommend(ctx(customer, issue="flat_tire", cost=25))
    assert ("auto_waive_flat_fee" in offered(result)) is loyal


#: Gestures of one kind across the core packs and this plugin: never two in one answer.
SAME_KIND = {
    "tire check": {"free_tire_check", "auto_free_tire_check"},
    "follow-up contact": {"first_visit_check_in", "post_service_check_in", "follow_up_call",
                          "auto_courtesy_followup_call"},
    "waiver of the fee": {"waive_small_fee", "no_charge_for_our_error", "auto_waive_flat_fee",
                          "auto_waive_small_fee", "auto_repeat_issue_recheck"},
    "status update": {"proactive_status_update", "auto_delay_status_update"},
}


def same_kind(result: Any) -> dict[str, list[str]]:
    """Kinds of which more than one gesture came back (recommended or held for approval)."""
    back = [*offered(result), *(w.gesture_id for w in result.needs_approval)]
    found = {kind: [g for g in back if g in ids] for kind, ids in SAME_KIND.items()}
    return {kind: ids for kind, ids in found.items() if len(ids) > 1}


@pytest.mark.parametrize("customer, interaction, ours", [
    (NEW, {"issue": "oil_change", "cost": 60}, "auto_free_tire_check"),              # examples/02
    ({"tenure_years": 3}, {"issue": "engine_repair", "cost": 800}, "auto_courtesy_followup_call"),
    (NEW, {"issue": "engine_repair", "cost": 800}, "auto_courtesy_followup_call"),
    (LOYAL, {"issue": "flat_tire", "cost": 25}, "auto_waive_flat_fee"),              # examples/01
    (LOYAL, {"issue": "brake_service", "cost": 300, "delay_days": 2}, "auto_delay_status_update"),
    (LOYAL, {"issue": "flat_tire", "cost": 40, "repeat_issue": True}, "auto_repeat_issue_recheck"),
], ids=["new-oil-change", "big-repair", "new-big-repair", "loyal-flat-tire", "late-repair", "comeback"])
def test_with_the_core_packs_each_kind_comes_back_once(with_core: Recommender, customer: dict[str, Any],
                                                       interaction: dict[str, Any], ours: str) -> None:
    for i in range(40):  # forty customers on one day: some win the extras draw, some do not
        for max_extras in (3, 10):  # 10: no cap to hide a second one
            result = with_core.recommend(ctx({**customer, "id": f"c-{i}"}, channel="in_person", occurred_at=DAY,
                                             **interaction), max_extras=max_extras)
            assert not same_kind(result), (same_kind(result), offered(result))
            assert offered_or_drawn(result, ours), (ours, held(result))
            if with_core.rulebook_for(SHOP).gestures[ours].tier == "exceed" and ours not in offered(result):
                assert not {*offered(result)} & {*SAME_KIND["tire check"], *SAME_KIND["follow-up contact"]}


def test_shop_versions_share_the_core_gestures_groups(with_core: Recommender) -> None:
    book = with_core.rulebook_for(SHOP)
    for ours, core in [("auto_free_tire_check", "free_tire_check"),
                       ("auto_courtesy_followup_call", "post_service_check_in"),
                       ("auto_delay_status_update", "proactive_status_update")]:
        assert book.gestures[ours].exclusive_group == book.gestures[core].exclusive_group is not None, ours


# -- signature case: a loyal customer's flat-tire fee is waived (meet) ----------------


def test_loyal_customer_flat_tire_fee_is_waived(rec: Recommender, with_core: Recommender) -> None:
    for recommender in (rec, with_core):
        result = recommender.recommend(ctx(LOYAL, issue="flat_tire", cost=25, channel="in_person"))
        waiver = rec_for(result, "auto_waive_flat_fee")
        assert waiver.tier == "meet" and waiver.cost == 25
        assert waiver.script == ("You've trusted us with your car for 6 years, so there's no charge for fixing "
                                 "the flat today, Maria - thank you for coming back to us.")
        # conflicts_with: no premium upsell in the same breath as the waiver
        assert held(result)["auto_upsell_premium_tire_repair"] == "conflict"
    # the fee is waived once: the core's general waiver of the same 25 is replaced by ours
    assert held(result)["waive_small_fee"] == "vetoed"


def test_a_loyal_customers_fee_is_not_left_to_the_extras_draw(rec: Recommender) -> None:
    for i in range(50):
        result = rec.recommend(ctx({**LOYAL, "id": f"c-{i}"}, issue="flat_tire", cost=25, occurred_at=DAY))
        assert "auto_waive_flat_fee" in offered(result)


@pytest.mark.parametrize("customer", [{"tenure_years": 1.5}, {}], ids=["not-loyal-yet", "walk-in"])
def test_flat_fee_not_waived_without_loyalty(rec: Recommender, customer: dict[str, Any]) -> None:
    result = rec.recommend(ctx(customer, issue="flat_tire", cost=25))
    assert "auto_waive_flat_fee" not in matched(result)
    assert "auto_upsell_premium_tire_repair" in offered(result)  # without the waiver, the option is offered


def test_a_fee_above_the_servers_money_limit_goes_to_approval_with_its_script(rec: Recommender) -> None:
    trainee = rec.recommend(ctx(LOYAL, staff="synthetic", issue="flat_tire", cost=40))
    ask = next(w for w in trainee.needs_approval if w.gesture_id == "auto_waive_flat_fee")
    assert "25.00 USD" in ask.detail and "no charge for fixing the flat" in ask.script
    assert "auto_waive_flat_fee" in offered(rec.recommend(ctx(LOYAL, staff="genuine", issue="flat_tire", cost=40)))
    big = rec.recommend(ctx(LOYAL, staff="genuine", issue="flat_tire", cost=120))
    assert held(big)["auto_waive_flat_fee"] == "needs_approval"
    assert "auto_waive_flat_fee" in offered(rec.recommend(ctx(LOYAL, staff="super", issue="flat_tire", cost=120)))


def test_small_fee_waived_for_loyal_customers_only(rec: Recommender) -> None:
    assert "auto_waive_small_fee" in offered(rec.recommend(ctx(LOYAL, issue="tire_rotation", cost=20)))
    assert "auto_waive_small_fee" in offered(rec.recommend(ctx({"visits": 12}, issue="battery_check", cost=15)))
    assert "auto_waive_small_fee" not in matched(rec.recommend(ctx({"tenure_years": 1}, issue="tire_rotation", cost=20)))


def test_diagnostic_fee_dropped_when_repair_is_booked(rec: Recommender) -> None:
    booked = rec.recommend(ctx({}, issue="diagnostic", cost=90, attributes={"repair_booked": True}))
    assert rec_for(booked, "auto_waive_diagnostic_fee").tier == "meet"
    not_booked = rec.recommend(ctx({}, issue="diagnostic", cost=90, attributes={"repair_booked": False}))
    assert "auto_waive_diagnostic_fee" not in matched(not_booked)


# -- signature case: a new customer's oil change gets a free tire check (the extra) ---


def oil_change(i: int, **customer: Any) -> dict[str, Any]:
    return ctx({**NEW, "id": f"c-{i}", **customer}, issue="oil_change", cost=60, channel="in_person", occurred_at=DAY)


def test_new_oil_change_customer_is_eligible_for_a_free_tire_check(rec: Recommender) -> None:
    for i in range(20):
        result = rec.recommend(oil_change(i))
        assert offered_or_drawn(result, "auto_free_tire_check")  # listed, or withheld only by the draw
    assert rec.rulebook_for(SHOP).gestures["auto_free_tire_check"].tier == "exceed"
    check = rec_for(drawn(rec, oil_change, "auto_free_tire_check"), "auto_free_tire_check")
    assert check.script == ("Welcome, Sam, and thank you for choosing us! While your oil is being changed, "
                            "we'll check your tire pressure and tread too - no charge.")
    anonymous = rec_for(drawn(rec, lambda i: oil_change(i, name=None), "auto_free_tire_check"), "auto_free_tire_check")
    assert anonymous.script.startswith("Welcome, and thank you for choosing us!")


def test_the_tire_check_is_drawn_for_some_new_customers_not_all(rec: Recommender) -> None:
    results = [rec.recommend(oil_change(i)) for i in range(200)]
    listed = sum("auto_free_tire_check" in offered(r) for r in results)
    assert all(offered_or_drawn(r, "auto_free_tire_check") for r in results)
    # the chance is the extras rate (0.10) aimed x1.5 at a new customer: about 30 of 200
    assert 10 <= listed <= 60, listed
    # the same customer on the same day gets the same answer (a receipt replays)
    assert [offered(rec.recommend(oil_change(i))) for i in range(10)] == [offered(r) for r in results[:10]]


def test_returning_oil_change_customer_gets_no_tire_check(rec: Recommender) -> None:
    assert "auto_free_tire_check" not in matched(rec.recommend(ctx({"tenure_years": 1}, issue="oil_change", cost=49)))
    # a new customer with another issue neither
    assert "auto_free_tire_check" not in matched(rec.recommend(ctx({"is_new": True}, issue="inspection", cost=49)))
    # a first visit by count is new too
    assert "auto_free_tire_check" in matched(rec.recommend(ctx({"visits": 1}, issue="lube", cost=49)))


# -- keep customers informed ---------------------------------------------------------


def test_late_repair_gets_a_proactive_status_update_with_note(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="brake_service", cost=300, delay_days=0.5))
    update = rec_for(result, "auto_delay_status_update")
    assert update.tier == "meet"
    assert update.follow_up_days == 1
    assert rec.rulebook_for(SHOP).gestures["auto_delay_status_update"].contacts_customer
    assert "12 h late" in update.agent_reason  # added by the adjust hook from the derived hours_late
    assert "auto_delay_goodwill_wash" not in matched(result)  # half a day: no recovery gesture yet
    assert result.assessment.severity == 1  # a routine job running late is a (minor) negative experience


def test_hours_late_attribute_alone_triggers_the_update(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="brake_service", cost=300, attributes={"hours_late": 3}))
    assert "auto_delay_status_update" in offered(result)


def test_car_not_ready_is_a_delay(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="vehicle_not_ready"))
    assert result.assessment.family == "delay"
    assert "auto_delay_status_update" in offered(result)


def test_a_day_late_adds_a_recovery_gesture(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="engine_repair", cost=300, delay_days=1))
    assert {"auto_delay_status_update", "auto_delay_goodwill_wash"} <= set(offered(result))
    wash = rec_for(result, "auto_delay_goodwill_wash")
    assert wash.tier == "recover"
    assert wash.script.startswith("Your car is 1 day later than planned, so to make up for the wait")
    by_hours = rec.recommend(ctx({}, issue="engine_repair", cost=300, attributes={"hours_late": 30}))
    assert rec_for(by_hours, "auto_delay_goodwill_wash").script.startswith("To make up for the wait")


def test_with_the_core_packs_a_late_repair_gets_one_status_update(with_core: Recommender) -> None:
    result = with_core.recommend(ctx(LOYAL, issue="brake_service", cost=300, delay_days=3))
    assert "auto_delay_status_update" in offered(result)
    assert held(result)["proactive_status_update"] == "exclusive_group"


def test_no_contact_gesture_when_the_issue_is_how_we_contact_the_customer(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="too_many_calls", delay_days=1))
    assert held(result)["auto_delay_status_update"] == "contact_preference"


def test_on_time_repair_gets_no_delay_update(rec: Recommender) -> None:
    assert "auto_delay_status_update" not in matched(rec.recommend(ctx({}, issue="brake_service", cost=300, delay_days=0)))
    assert "auto_delay_status_update" not in matched(rec.recommend(ctx({}, issue="brake_service", cost=300)))


def test_car_words_at_another_trade_are_not_ours(rec: Recommender) -> None:
    # a "flat_tire" roadside claim at an insurance agency is not a repair at our shop
    assert rec.recommend(ctx(LOYAL, vertical="insurance", issue="flat_tire", cost=25)).gesture_ids() == []
    # and the enrichment stays silent even when a configuration gives it another trade's business
    both = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    assert both.recommend(ctx(LOYAL, vertical="retail", issue="late_delivery", delay_days=2)).gesture_ids() == []


# -- follow up -----------------------------------------------------------------------


def big_repair(i: int) -> dict[str, Any]:
    return ctx({"id": f"c-{i}"}, issue="transmission_repair", cost=1800, occurred_at="2025-05-02T09:00:00")


def test_big_repair_gets_a_courtesy_call_in_three_days(rec: Recommender) -> None:
    assert all(offered_or_drawn(rec.recommend(big_repair(i)), "auto_courtesy_followup_call") for i in range(20))
    call = rec_for(drawn(rec, big_repair, "auto_courtesy_followup_call"), "auto_courtesy_followup_call")
    assert call.follow_up_days == 3
    assert str(call.due_date) == "2025-05-05"
    assert rec.rulebook_for(SHOP).gestures["auto_courtesy_followup_call"].contacts_customer


def test_smaller_repair_gets_no_courtesy_call(rec: Recommender) -> None:
    assert "auto_courtesy_followup_call" not in matched(rec.recommend(ctx({}, issue="brake_service", cost=499)))


# -- long repairs: the loaner is the service manager's call ---------------------------


def test_loaner_needs_super_authority_genuine_staff_offers_a_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="genuine", issue="engine_repair", cost=400,
                               attributes={"repair_days_estimate": 3}))
    ask = next(w for w in result.needs_approval if w.gesture_id == "auto_loaner_car")
    assert "super" in ask.detail and ask.script.startswith("This repair will take about 3 days")
    assert "auto_courtesy_ride" in offered(result)


def test_super_staff_offers_the_loaner_instead_of_the_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="super", issue="engine_repair", cost=400,
                               attributes={"repair_days_estimate": 3}))
    assert rec_for(result, "auto_loaner_car").tier == "meet"  # a customer without a car needs it: not a draw
    assert held(result)["auto_courtesy_ride"] == "exclusive_group"


def test_short_repair_gets_neither_loaner_nor_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="super", issue="brake_service", cost=200,
                               attributes={"repair_hours_estimate": 1}))
    assert not {"auto_loaner_car", "auto_courtesy_ride"} & matched(result)


# -- remembered preferences, comebacks -----------------------------------------------


def test_preferred_technician_is_remembered(rec: Recommender) -> None:
    result = rec.recommend(ctx({"preferences": {"preferred_technician": "Anna"}}, issue="brake_service", cost=200))
    tech = rec_for(result, "auto_preferred_technician")
    assert tech.tier == "meet" and "Anna" in tech.script


def test_comeback_is_rechecked_free_and_not_upsold(rec: Recommender) -> None:
    result = rec.recommend(ctx(LOYAL, issue="flat_tire", cost=60, repeat_issue=True))
    assert offered(result)[0] == "auto_repeat_issue_recheck"
    assert rec_for(result, "auto_repeat_issue_recheck").tier == "recover"
    assert held(result)["auto_upsell_premium_tire_repair"] == "vetoed"
    assert held(result)["auto_waive_flat_fee"] == "exclusive_group"  # one fee, waived once


def test_a_comeback_by_its_issue_code_is_a_service_failure(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="comeback", cost=80))
    assert result.assessment.family == "service_failure" and result.assessment.severity >= 2
    assert "auto_repeat_issue_recheck" in offered(result)
    costly = rec.recommend(ctx({}, issue="comeback", cost=300))  # above a service advisor's 100
    ask = next(w for w in costly.needs_approval if w.gesture_id == "auto_repeat_issue_recheck")
    assert "re-check our work" in ask.script


def test_a_comeback_of_unknown_cost_is_not_promised_free_and_the_cost_is_asked_for(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="comeback", repeat_issue=True, channel="in_person"))
    assert "auto_repeat_issue_recheck" not in matched(result)  # no free redo of unknown size
    assert "interaction.cost" in result.missing_inputs


def test_with_the_core_packs_a_comeback_is_waived_once(with_core: Recommender) -> None:
    result = with_core.recommend(ctx(LOYAL, issue="flat_tire", cost=40, repeat_issue=True, channel="in_person"))
    assert "auto_repeat_issue_recheck" in offered(result)
    assert "no_charge_for_our_error" not in offered(result)
    assert held(result)["no_charge_for_our_error"] in ("vetoed", "listing_cap", "exclusive_group")


# -- enrichment ----------------------------------------------------------------------


def test_enrich_returns_data_and_never_mutates() -> None:
    c = parse_context(ctx({"lifetime_value": 8000}, issue="oil_change", delay_days=0.25,
                          occurred_at="2025-01-10T08:00:00", attributes={"vehicle_year": 2012}))
    before = copy.deepcopy(c.model_dump())
    updates = plugin.recommender_enrich_context(c)
    assert c.model_dump() == before
    assert updates == {"interaction": {"attributes": {"service_category": "maintenance", "vehicle_age_years": 13,
                                                      "vehicle_age_band": "old", "hours_late": 6.0}}}


def test_enrich_is_silent_outside_auto_repair() -> None:
    assert plugin.recommender_enrich_context(parse_context(ctx({}, vertical="fitness", issue="oil_change"))) is None
    assert plugin.recommender_enrich_context(parse_context(ctx({}, vertical=None, issue="cancellation_request"))) is None


def test_enrich_maps_aliases_to_their_category() -> None:
    attrs = plugin.recommender_enrich_context(parse_context(ctx({}, issue="puncture")))["interaction"]["attributes"]
    assert attrs["service_category"] == "tires"


@pytest.mark.parametrize("age, band", [(0, "new"), (3, "new"), (4, "mid"), (9, "mid"), (10, "old"), (30, "old")])
def test_vehicle_age_band(age: int, band: str) -> None:
    assert plugin.vehicle_age_band(age) == band


def test_derived_vehicle_age_band_drives_a_rule(rec: Recommender) -> None:
    old = rec.explain(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                          attributes={"vehicle_year": 2010}))
    assert "auto_repair.aging-vehicle-check" in old.rules_matched
    assert offered_or_drawn(old, "auto_aging_vehicle_check")
    newer = rec.explain(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                            attributes={"vehicle_year": 2022}))
    assert "auto_repair.aging-vehicle-check" not in newer.rules_matched


def test_callers_value_wins_over_enrichment(rec: Recommender) -> None:
    result = rec.explain(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                             attributes={"vehicle_year": 2010, "vehicle_age_band": "mid"}))
    assert "auto_repair.aging-vehicle-check" not in result.rules_matched


def test_high_value_on_the_shops_scale_gets_the_next_open_bay(rec: Recommender) -> None:
    valuable = rec.explain(ctx({"lifetime_value": 3500}, issue="brake_service", cost=300))
    assert "auto_repair.vip-priority" in valuable.rules_matched
    assert offered_or_drawn(valuable, "auto_vip_priority_bay")
    assert "auto_repair.vip-priority" not in rec.explain(ctx({"lifetime_value": 2500}, issue="brake_service",
                                                             cost=300)).rules_matched
    told = rec.explain(ctx({"lifetime_value": 12000, "high_value": False}, issue="brake_service", cost=300))
    assert "auto_repair.vip-priority" not in told.rules_matched  # the caller's own judgement wins


# -- adjust hook ---------------------------------------------------------------------


def test_no_upsell_in_a_negative_experience(rec: Recommender) -> None:
    calm = rec.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=0.2))
    assert "auto_upsell_premium_tire_repair" in offered(calm)
    upset = rec.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=-0.6))
    assert upset.assessment.severity >= 1
    veto = next(w for w in upset.withheld if w.gesture_id == "auto_upsell_premium_tire_repair")
    assert veto.reason == "vetoed" and NAME in veto.detail
    late = rec.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, delay_days=1))
    assert held(late)["auto_upsell_premium_tire_repair"] == "vetoed"


GENERAL_WAIVER = {"pack": "shop-general", "gestures": [
    {"id": "general_waive_fee", "title": "Waive the fee", "category": "fee_waiver", "tier": "meet",
     "cost": "interaction.cost", "authority": "synthetic", "script": "No charge today."}],
    "rules": [{"id": "general-small-fee", "when": ["customer.tenure_years ge 1", "interaction.cost le 40"],
               "then": "general_waive_fee", "because": "Don't nickel-and-dime."}]}


def test_our_waiver_replaces_another_packs_waiver_of_the_same_fee() -> None:
    both = plugin_recommender(plugin, packs=[GENERAL_WAIVER])
    result = both.recommend(ctx(LOYAL, issue="flat_tire", cost=25))
    assert "auto_waive_flat_fee" in offered(result)
    assert "general_waive_fee" not in offered(result)
    veto = next(w for w in result.withheld if w.gesture_id == "general_waive_fee")
    assert veto.reason == "vetoed" and NAME in veto.detail
    assert not result.warnings


def test_other_waiver_stays_when_ours_is_not_listed() -> None:
    both = plugin_recommender(plugin, packs=[GENERAL_WAIVER])
    # a customer of 18 months: not yet loyal at a garage, but the other pack waives it
    result = both.recommend(ctx({"tenure_years": 1.5}, issue="flat_tire", cost=25))
    assert "auto_waive_flat_fee" not in matched(result)
    assert "general_waive_fee" in offered(result)


def test_other_waiver_of_a_different_fee_stays() -> None:
    other = {"pack": "shop-addon", "gestures": [
        {"id": "general_waive_addon", "title": "Waive the add-on fee", "category": "fee_waiver", "tier": "meet",
         "cost": 3, "script": "No disposal fee."}],
        "rules": [{"id": "general-addon", "when": "interaction.issue eq flat_tire", "then": "general_waive_addon",
                   "because": "Irritant."}]}
    both = plugin_recommender(plugin, packs=[other])
    assert {"auto_waive_flat_fee", "general_waive_addon"} <= set(offered(both.recommend(ctx(LOYAL, issue="flat_tire", cost=25))))


def test_adjust_leaves_other_gestures_alone() -> None:
    other = {"pack": "shop-upsell", "gestures": [
        {"id": "general_upsell_wax", "title": "Offer a wax", "category": "upgrade", "tier": "meet",
         "cost": 0, "script": "Would you like a wax?"}],
        "rules": [{"id": "general-wax", "when": "interaction.issue eq flat_tire", "then": "general_upsell_wax",
                   "because": "Upsell."}]}
    both = plugin_recommender(plugin, packs=[other])
    result = both.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=-0.9))
    assert "general_upsell_wax" in offered(result)  # not ours to veto
    assert "auto_upsell_premium_tire_repair" not in offered(result)


# -- scripts -------------------------------------------------------------------------


#: A sample value for every placeholder the shop's scripts use.
SAMPLE = {"customer.name": "Maria", "customer.tenure_years": 6, "interaction.delay_days": 2,
          "interaction.attributes.repair_days_estimate": 3, "customer.preferences.preferred_technician": "Anna"}


def test_every_script_reads_true_with_and_without_its_optional_fields(rec: Recommender) -> None:
    book = rec.rulebook_for(SHOP)
    for gesture in book.gestures.values():
        if gesture.id.startswith("auto_"):
            assert script_problems(gesture.script, SAMPLE) == [], gesture.id
            assert script_problems(gesture.script, {**SAMPLE, "customer.tenure_years": 1,
                                                    "interaction.delay_days": 1}) == [], gesture.id


def test_follow_up_gestures_are_marked_as_contacting_the_customer(rec: Recommender) -> None:
    for gesture in rec.rulebook_for(SHOP).gestures.values():
        if gesture.id.startswith("auto_") and gesture.follow_up_days:
            assert gesture.contacts_customer, gesture.id


# -- discovery through the entry point -----------------------------------------------


def _installed() -> bool:
    return any(ep.name == EP_NAME for ep in importlib.metadata.entry_points(group="recommender"))


@pytest.mark.skipif(not _installed(), reason="not pip-installed: pip install -e plugins/auto_repair")
def test_installed_plugin_is_autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
    default = Recommender()  # autoload on, shipped core packs
    info = {i["name"]: i for i in default.plugin_info()}[EP_NAME]
    assert info["source"] == "entrypoint"
    assert info["version"] == importlib.metadata.version("recommender-auto-repair")
    assert "auto_waive_flat_fee" in default.rulebook_for(SHOP).gestures

    loyal = default.explain(ctx(LOYAL, issue="flat_tire", cost=25))
    assert not [w for w in loyal.warnings if w.plugin == EP_NAME]
    assert "auto_repair.flat-fee-loyal" in loyal.rules_matched
    assert "auto_waive_flat_fee" in loyal.gesture_ids()
    # one waiver per fee: a core pack's waiver of the same 25 is replaced by ours
    assert sum(r.category == "fee_waiver" and r.cost == 25 for r in loyal.recommendations) == 1

    new = default.recommend(ctx({"tenure_years": 0.5}, issue="flat_tire", cost=25))
    assert "auto_upsell_premium_tire_repair" in new.gesture_ids()
    # not a garage: not the garage's rules
    assert not [g for g in default.recommend(ctx(LOYAL, vertical=None, issue="flat_tire", cost=25)).gesture_ids()
                if g.startswith("auto_")]


class TestTrade(TradePluginTests):
    """What every one-trade plugin is tested for (recommender.testing.TradePluginTests)."""

    plugin = plugin
    root = PLUGIN_ROOT
    entry_point = EP_NAME
    distribution = "recommender-auto-repair"
    prefix = "auto_"
    marker = "interaction.attributes.service_category"
    signature = (ctx(LOYAL, issue="flat_tire", cost=25), "auto_waive_flat_fee")
    # the scope table's codes, and the codes these tests use
    issues_used = (*plugin.SERVICE_CATEGORIES, "comeback", "repair_failed", "brake_service", "late_delivery")
