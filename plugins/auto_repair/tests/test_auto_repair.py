"""Scenarios of the auto_repair plugin, run against a real Recommender.

Runs from the plugin folder (``pytest``) or the repo root
(``pytest plugins/auto_repair/tests``), installed or not.
"""

from __future__ import annotations

import copy
import importlib.metadata
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender, parse_context
from recommender.context import Business
from recommender.testing import import_plugin, plugin_recommender, sqlite_store, withheld_reasons

plugin = import_plugin("recommender_auto_repair", __file__)  # installed, or from the source folder
PLUGIN_ROOT = Path(__file__).resolve().parents[1]

NAME = "recommender_auto_repair"  # the plugin's name when registered as an object
EP_NAME = "auto_repair"  # its name when found through the entry point


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return plugin_recommender(plugin)  # only this plugin: no core packs, nothing installed


def ctx(customer: dict[str, Any] | None = None, staff: str = "genuine", vertical: str | None = None,
        **interaction: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"customer": customer or {}, "interaction": interaction, "staff": {"level": staff}}
    if vertical is not None:
        data["business"] = {"vertical": vertical}
    return data


LOYAL = {"name": "Maria", "tenure_years": 6, "lifetime_value": 2400}


def offered(result: Any) -> list[str]:
    return result.gesture_ids()


held = withheld_reasons  # gesture id -> why it is not offered


# -- registration --------------------------------------------------------------------


def test_contributes_prefixed_gestures_and_rules(rec: Recommender) -> None:
    info = {i["name"]: i for i in rec.plugin_info()}[NAME]
    assert set(info["hooks"]) == {"recommender_register_rule_packs", "recommender_enrich_context",
                                  "recommender_adjust_recommendations"}
    assert len(info["gestures"]) >= 10
    assert all(g.startswith("auto_") for g in info["gestures"])
    assert all(r.startswith("auto_repair.") for r in info["rules"])
    assert rec.rulebook.gestures["auto_waive_flat_fee"].source == str(plugin.PACK_PATH)


def test_pack_is_package_data() -> None:
    assert plugin.PACK_PATH.parent == Path(plugin.__file__).parent
    assert plugin.PACK_PATH.is_file()


def test_declares_waiver_vs_upsell_conflict(rec: Recommender) -> None:
    assert "auto_upsell_premium_tire_repair" in rec.rulebook.gestures["auto_waive_flat_fee"].conflicts_with


def test_loads_next_to_the_shipped_core_packs_without_warnings() -> None:
    with_core = plugin_recommender(plugin, core_packs=True)
    result = with_core.recommend(ctx(LOYAL, issue="flat_tire", cost=25))
    assert not result.warnings, result.warnings
    assert "auto_waive_flat_fee" in with_core.rulebook.gestures


#: Gestures of one kind across the core packs and this plugin: never two in one answer.
SAME_KIND = {
    "tire check": {"free_tire_check", "auto_free_tire_check"},
    "follow-up contact": {"first_visit_check_in", "post_service_check_in", "follow_up_call",
                          "auto_courtesy_followup_call"},
    "waiver of the fee": {"waive_small_fee", "waive_moderate_fee", "auto_waive_flat_fee", "auto_waive_small_fee"},
}


def same_kind(result: Any) -> dict[str, list[str]]:
    """Kinds of which more than one gesture came back (recommended or held for approval)."""
    back = [*offered(result), *(w.gesture_id for w in result.needs_approval)]
    found = {kind: [g for g in back if g in ids] for kind, ids in SAME_KIND.items()}
    return {kind: ids for kind, ids in found.items() if len(ids) > 1}


NEW = {"name": "Sam", "tenure_years": 0.1, "lifetime_value": 60}


@pytest.mark.parametrize("vertical", [None, "auto_repair"])
@pytest.mark.parametrize("customer, interaction, ours", [
    (NEW, {"issue": "oil_change", "cost": 60}, "auto_free_tire_check"),              # examples/02
    ({"tenure_years": 3}, {"issue": "engine_repair", "cost": 800}, "auto_courtesy_followup_call"),
    (NEW, {"issue": "engine_repair", "cost": 800}, "auto_courtesy_followup_call"),
    (LOYAL, {"issue": "flat_tire", "cost": 25}, "auto_waive_flat_fee"),              # examples/01
], ids=["new-oil-change", "big-repair", "new-big-repair", "loyal-flat-tire"])
def test_with_the_core_packs_each_kind_comes_back_once(vertical: str | None, customer: dict[str, Any],
                                                       interaction: dict[str, Any], ours: str) -> None:
    with_core = plugin_recommender(plugin, core_packs=True)
    for max_extras in (3, 10):  # 10: no cap to hide a second one
        result = with_core.recommend(ctx(customer, vertical=vertical, channel="in_person", **interaction),
                                     max_extras=max_extras)
        assert not same_kind(result), (same_kind(result), offered(result))
        assert ours in offered(result)  # the shop's own version is the one offered


def test_shop_versions_share_the_core_gestures_groups() -> None:
    book = plugin_recommender(plugin, core_packs=True).rulebook
    for ours, core in [("auto_free_tire_check", "free_tire_check"),
                       ("auto_courtesy_followup_call", "post_service_check_in")]:
        assert book.gestures[ours].exclusive_group == book.gestures[core].exclusive_group is not None, ours


# -- don't nickel-and-dime -----------------------------------------------------------


def test_loyal_customer_flat_tire_fee_is_waived(rec: Recommender) -> None:
    result = rec.recommend(ctx(LOYAL, issue="flat_tire", cost=25, channel="in_person"))
    assert offered(result)[0] == "auto_waive_flat_fee"
    top = result.recommendations[0]
    assert top.cost == 25
    assert top.authority == "genuine"
    assert "6 years" in top.script
    # conflicts_with: no premium upsell in the same breath as the waiver
    assert held(result)["auto_upsell_premium_tire_repair"] == "conflict"


@pytest.mark.parametrize("customer, cost", [
    ({"tenure_years": 1.5}, 25),   # not long-term yet
    (LOYAL, 60),                   # not a small fee
    ({}, 25),                      # walk-in: tenure unknown never matches
])
def test_flat_fee_not_waived_in_close_contexts(rec: Recommender, customer: dict[str, Any], cost: float) -> None:
    result = rec.recommend(ctx(customer, issue="flat_tire", cost=cost))
    assert "auto_waive_flat_fee" not in offered(result)
    # without the waiver, the premium repair may be offered
    assert "auto_upsell_premium_tire_repair" in offered(result)


def test_small_fee_waived_for_regulars_only(rec: Recommender) -> None:
    assert "auto_waive_small_fee" in offered(rec.recommend(ctx(LOYAL, issue="tire_rotation", cost=20)))
    assert "auto_waive_small_fee" not in offered(rec.recommend(ctx(LOYAL, issue="tire_rotation", cost=30)))
    assert "auto_waive_small_fee" not in offered(rec.recommend(ctx({"tenure_years": 1}, issue="tire_rotation", cost=20)))


def test_diagnostic_fee_dropped_when_repair_is_booked(rec: Recommender) -> None:
    booked = rec.recommend(ctx({}, issue="diagnostic", cost=90, attributes={"repair_booked": True}))
    assert "auto_waive_diagnostic_fee" in offered(booked)
    not_booked = rec.recommend(ctx({}, issue="diagnostic", cost=90, attributes={"repair_booked": False}))
    assert "auto_waive_diagnostic_fee" not in offered(not_booked)


# -- wow new customers ---------------------------------------------------------------


def test_new_oil_change_customer_gets_a_free_tire_check(rec: Recommender) -> None:
    result = rec.recommend(ctx({"name": "Sam", "tenure_years": 0}, issue="oil_change", cost=49))
    assert "auto_free_tire_check" in offered(result)
    rec_ = next(r for r in result.recommendations if r.gesture_id == "auto_free_tire_check")
    assert rec_.script.startswith("Welcome, Sam!")


def test_returning_oil_change_customer_gets_no_tire_check(rec: Recommender) -> None:
    assert "auto_free_tire_check" not in offered(rec.recommend(ctx({"tenure_years": 1}, issue="oil_change", cost=49)))
    # and a new customer with another issue neither
    assert "auto_free_tire_check" not in offered(rec.recommend(ctx({"is_new": True}, issue="inspection", cost=49)))


# -- keep customers informed ---------------------------------------------------------


def test_late_repair_gets_a_proactive_status_update_with_note(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="brake_service", cost=300, delay_days=0.5))
    update = next(r for r in result.recommendations if r.gesture_id == "auto_delay_status_update")
    assert update.tier == "meet"
    assert update.follow_up_days == 1
    assert "12 h late" in update.agent_reason  # added by the adjust hook from the derived hours_late
    assert "auto_delay_goodwill_wash" not in offered(result)  # half a day: no recovery gesture yet


def test_hours_late_attribute_alone_triggers_the_update(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="brake_service", cost=300, attributes={"hours_late": 3}))
    assert "auto_delay_status_update" in offered(result)


def test_a_day_late_adds_a_recovery_gesture(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="engine_repair", cost=300, delay_days=1))
    assert {"auto_delay_status_update", "auto_delay_goodwill_wash"} <= set(offered(result))


def test_on_time_repair_gets_no_delay_update(rec: Recommender) -> None:
    assert "auto_delay_status_update" not in offered(rec.recommend(ctx({}, issue="brake_service", cost=300, delay_days=0)))
    assert "auto_delay_status_update" not in offered(rec.recommend(ctx({}, issue="brake_service", cost=300)))


def test_delay_in_another_trade_is_not_ours(rec: Recommender) -> None:
    # a late parcel at some other business: no service_category is derived, so no car talk
    result = rec.recommend(ctx({}, vertical="retail", issue="late_delivery", delay_days=2))
    assert not [g for g in offered(result) if g.startswith("auto_")]


def test_car_words_at_another_trade_are_not_ours(rec: Recommender) -> None:
    # a "flat_tire" roadside claim at an insurance agency is not a repair at our shop
    result = rec.recommend(ctx(LOYAL, vertical="insurance", issue="flat_tire", cost=25))
    assert result.gesture_ids() == []


def test_every_rule_requires_the_service_category(rec: Recommender) -> None:
    for rule in rec.rulebook.rules:
        for branch in rule.branches:
            assert any(a.field == "interaction.attributes.service_category" for a in branch), rule.id


# -- follow up -----------------------------------------------------------------------


def test_big_repair_gets_a_courtesy_call_in_three_days(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="transmission_repair", cost=1800, occurred_at="2025-05-02T09:00:00"))
    call = next(r for r in result.recommendations if r.gesture_id == "auto_courtesy_followup_call")
    assert call.follow_up_days == 3
    assert call.due_date == date(2025, 5, 5)


def test_smaller_repair_gets_no_courtesy_call(rec: Recommender) -> None:
    assert "auto_courtesy_followup_call" not in offered(rec.recommend(ctx({}, issue="brake_service", cost=499)))


def test_unknown_issue_at_an_auto_shop_still_counts(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, vertical="auto_repair", issue="exhaust_repair", cost=700))
    assert "auto_courtesy_followup_call" in offered(result)


# -- long repairs: loaner needs super authority --------------------------------------


def test_loaner_needs_super_authority_genuine_staff_offers_a_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="genuine", issue="engine_repair", cost=400,
                               attributes={"repair_days_estimate": 3}))
    assert held(result)["auto_loaner_car"] == "needs_approval"
    assert "auto_courtesy_ride" in offered(result)


def test_super_staff_offers_the_loaner_instead_of_the_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="super", issue="engine_repair", cost=400,
                               attributes={"repair_days_estimate": 3}))
    assert "auto_loaner_car" in offered(result)
    assert held(result)["auto_courtesy_ride"] == "exclusive_group"


def test_short_repair_gets_neither_loaner_nor_ride(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, staff="super", issue="brake_service", cost=200,
                               attributes={"repair_hours_estimate": 1}))
    assert not {"auto_loaner_car", "auto_courtesy_ride"} & (set(offered(result)) | set(held(result)))


# -- remembered preferences, comebacks -----------------------------------------------


def test_preferred_technician_is_remembered(rec: Recommender) -> None:
    result = rec.recommend(ctx({"preferences": {"preferred_technician": "Anna"}}, issue="brake_service", cost=200))
    tech = next(r for r in result.recommendations if r.gesture_id == "auto_preferred_technician")
    assert "Anna" in tech.script


def test_comeback_is_rechecked_free_and_not_upsold(rec: Recommender) -> None:
    result = rec.recommend(ctx(LOYAL, issue="flat_tire", cost=60, repeat_issue=True))
    assert offered(result)[0] == "auto_repeat_issue_recheck"
    assert held(result)["auto_upsell_premium_tire_repair"] == "vetoed"


# -- enrichment ----------------------------------------------------------------------


def test_enrich_returns_data_and_never_mutates() -> None:
    c = parse_context(ctx({"lifetime_value": 8000}, issue="oil_change", delay_days=0.25,
                          occurred_at="2025-01-10T08:00:00", attributes={"vehicle_year": 2012}))
    before = copy.deepcopy(c.model_dump())
    updates = plugin.recommender_enrich_context(c)
    assert c.model_dump() == before
    assert updates == {
        "interaction": {"attributes": {"service_category": "maintenance", "vehicle_age_years": 13,
                                       "vehicle_age_band": "old", "hours_late": 6.0}},
        "customer": {"is_vip": True},
    }


def test_enrich_is_silent_outside_auto_repair() -> None:
    assert plugin.recommender_enrich_context(parse_context(ctx({}, vertical="fitness", issue="oil_change"))) is None
    assert plugin.recommender_enrich_context(parse_context(ctx({}, issue="cancellation_request"))) is None


@pytest.mark.parametrize("age, band", [(0, "new"), (3, "new"), (4, "mid"), (9, "mid"), (10, "old"), (30, "old")])
def test_vehicle_age_band(age: int, band: str) -> None:
    assert plugin.vehicle_age_band(age) == band


def test_derived_vehicle_age_band_drives_a_rule(rec: Recommender) -> None:
    old = rec.explain(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                          attributes={"vehicle_year": 2010}))
    assert "auto_aging_vehicle_check" in offered(old)
    cond = {c.field: c.actual for r in old.recommendations if r.gesture_id == "auto_aging_vehicle_check"
            for c in r.rules[0].conditions}
    assert cond["interaction.attributes.vehicle_age_band"] == "old"
    newer = rec.recommend(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                              attributes={"vehicle_year": 2022}))
    assert "auto_aging_vehicle_check" not in offered(newer)


def test_callers_value_wins_over_enrichment(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="oil_change", cost=49, occurred_at="2025-06-01T10:00:00",
                               attributes={"vehicle_year": 2010, "vehicle_age_band": "mid"}))
    assert "auto_aging_vehicle_check" not in offered(result)


def test_vip_derived_from_lifetime_value_unless_caller_says_otherwise(rec: Recommender) -> None:
    vip = rec.recommend(ctx({"lifetime_value": 12000}, issue="brake_service", cost=300))
    assert "auto_vip_priority_bay" in offered(vip)
    assert "auto_vip_priority_bay" not in offered(rec.recommend(ctx({"lifetime_value": 900}, issue="brake_service", cost=300)))
    told = rec.recommend(ctx({"lifetime_value": 12000, "is_vip": False}, issue="brake_service", cost=300))
    assert "auto_vip_priority_bay" not in offered(told)


# -- adjust hook ---------------------------------------------------------------------


def test_no_upsell_to_an_unhappy_customer(rec: Recommender) -> None:
    calm = rec.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=0.2))
    assert "auto_upsell_premium_tire_repair" in offered(calm)
    upset = rec.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=-0.6))
    assert "auto_upsell_premium_tire_repair" not in offered(upset)
    veto = next(w for w in upset.withheld if w.gesture_id == "auto_upsell_premium_tire_repair")
    assert veto.reason == "vetoed" and NAME in veto.detail


GENERAL_WAIVER = {"pack": "shop-general", "gestures": [
    {"id": "general_waive_fee", "title": "Waive the fee", "category": "fee_waiver", "tier": "exceed",
     "cost": "interaction.cost", "authority": "synthetic", "script": "No charge today."}],
    "rules": [{"id": "general-loyal-small-fee", "when": ["customer.tenure_years ge 2", "interaction.cost le 40"],
               "then": "general_waive_fee", "because": "Don't nickel-and-dime."}]}


def test_our_waiver_replaces_another_packs_waiver_of_the_same_fee() -> None:
    both = plugin_recommender(plugin, packs=[GENERAL_WAIVER])
    result = both.recommend(ctx(LOYAL, issue="flat_tire", cost=25))
    assert "auto_waive_flat_fee" in offered(result)
    assert "general_waive_fee" not in offered(result)
    veto = next(w for w in result.withheld if w.gesture_id == "general_waive_fee")
    assert veto.reason == "vetoed" and NAME in veto.detail
    assert not result.warnings


def test_other_waiver_stays_when_ours_needs_approval() -> None:
    both = plugin_recommender(plugin, packs=[GENERAL_WAIVER])
    result = both.recommend(ctx(LOYAL, staff="synthetic", issue="flat_tire", cost=25))
    assert held(result)["auto_waive_flat_fee"] == "needs_approval"
    assert "general_waive_fee" in offered(result)  # the fee is still waived, by who may waive it


def test_other_waiver_of_a_different_fee_stays() -> None:
    other = {"pack": "shop-addon", "gestures": [
        {"id": "general_waive_addon", "title": "Waive the add-on fee", "category": "fee_waiver", "tier": "exceed",
         "cost": 3, "script": "No disposal fee."}],
        "rules": [{"id": "general-addon", "when": "interaction.issue eq flat_tire", "then": "general_waive_addon",
                   "because": "Irritant."}]}
    both = plugin_recommender(plugin, packs=[other])
    assert {"auto_waive_flat_fee", "general_waive_addon"} <= set(offered(both.recommend(ctx(LOYAL, issue="flat_tire", cost=25))))


def test_adjust_leaves_other_gestures_alone() -> None:
    other = {"pack": "shop-upsell", "gestures": [
        {"id": "general_upsell_wax", "title": "Offer a wax", "category": "upgrade", "tier": "exceed",
         "cost": 0, "script": "Fancy a wax?"}],
        "rules": [{"id": "general-wax", "when": "interaction.issue eq flat_tire", "then": "general_upsell_wax",
                   "because": "Upsell."}]}
    both = plugin_recommender(plugin, packs=[other])
    result = both.recommend(ctx({"tenure_years": 1}, issue="flat_tire", cost=25, sentiment=-0.9))
    assert "general_upsell_wax" in offered(result)  # not ours to veto
    assert "auto_upsell_premium_tire_repair" not in offered(result)


# -- per-business selection ----------------------------------------------------------


def test_plugin_config_can_limit_the_plugin_to_auto_shops() -> None:
    sel = plugin_recommender(plugin,
                      plugin_config={"verticals": {"auto_repair": [NAME]}, "default": []})
    flat = {"customer": LOYAL, "interaction": {"issue": "flat_tire", "cost": 25}}
    assert "auto_waive_flat_fee" in sel.recommend({**flat, "business": {"id": "shop1", "vertical": "auto_repair"}}).gesture_ids()
    assert sel.recommend({**flat, "business": {"id": "gym1", "vertical": "fitness"}}).gesture_ids() == []
    assert "auto_waive_flat_fee" not in sel.rulebook_for(Business(id="gym1", vertical="fitness")).gestures


# -- discovery through the entry point -----------------------------------------------


def test_entry_point_declared_in_pyproject_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic: a throw-away dist-info carrying the pyproject's entry point, no pip needed."""
    declared = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["recommender"]
    assert declared == {EP_NAME: "recommender_auto_repair"}
    dist = tmp_path / "recommender_auto_repair_probe-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recommender-auto-repair-probe\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[recommender]\nprobe_{EP_NAME} = {declared[EP_NAME]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # only the probe: block every really-installed plugin (one module under two names is refused)
    installed = {ep.name for ep in importlib.metadata.entry_points(group="recommender")} - {f"probe_{EP_NAME}"}
    monkeypatch.setenv("RECOMMENDER_DISABLED_PLUGINS", ",".join(sorted(installed)))
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    found = Recommender(rules=[])
    info = {i["name"]: i for i in found.plugin_info()}[f"probe_{EP_NAME}"]
    assert info["source"] == "entrypoint" and info["version"] == "0.0.0"
    assert "auto_waive_flat_fee" in found.recommend(ctx(LOYAL, issue="flat_tire", cost=25)).gesture_ids()


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
    assert "auto_waive_flat_fee" in info["gestures"]

    loyal = default.explain(ctx(LOYAL, vertical="auto_repair", issue="flat_tire", cost=25))
    assert not [w for w in loyal.warnings if w.plugin == EP_NAME]
    assert "auto_repair.flat-fee-loyal" in loyal.rules_matched
    assert "auto_waive_flat_fee" in loyal.gesture_ids()
    # one waiver per fee: a core pack's waiver of the same 25 is replaced by ours
    assert sum(r.category == "fee_waiver" and r.cost == 25 for r in loyal.recommendations) == 1

    new = default.recommend(ctx({"tenure_years": 0.5}, issue="flat_tire", cost=25))
    assert "auto_upsell_premium_tire_repair" in new.gesture_ids()
