"""Scenarios of the fitness plugin, run against a real Recommender.

Runs from the plugin folder (``pytest``) or the repo root
(``pytest plugins/fitness/tests``), installed or not.
"""

from __future__ import annotations

import copy
import importlib.metadata
import tomllib
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender, parse_context
from recommender.testing import import_plugin, plugin_recommender, sqlite_store, withheld_reasons

plugin = import_plugin("recommender_fitness", __file__)  # installed, or from the source folder
PLUGIN_ROOT = Path(__file__).resolve().parents[1]

NAME = "recommender_fitness"  # the plugin's name when registered as an object
EP_NAME = "fitness"  # its name when found through the entry point


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return plugin_recommender(plugin)  # only this plugin: no core packs, nothing installed


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with sqlite_store(tmp_path) as memory:  # the real embedded store, one file per test
        yield memory


@pytest.fixture(autouse=True)
def clean_tally() -> Any:
    plugin.TALLY.reset()
    yield
    plugin.TALLY.reset()


def ctx(customer: dict[str, Any] | None = None, staff: str = "genuine", **interaction: Any) -> dict[str, Any]:
    return {"customer": customer or {}, "interaction": interaction, "staff": {"level": staff}}


def offered(result: Any) -> list[str]:
    return result.gesture_ids()


held = withheld_reasons  # gesture id -> why it is not offered


#: A regular (about 9 visits a month) who came once in the last 30 days.
DRIFTING = {"name": "Lee", "tenure_years": 3, "visits_last_year": 100, "attributes": {"visits_last_30_days": 1}}


#: A member asking to cancel: fitness_offer_freeze is recommended.
CANCELLING = {"customer": {"tenure_years": 1}, "interaction": {"issue": "cancellation_request", "cost": 30},
              "staff": {"level": "genuine"}}


def at(business: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {**context, "business": business}


def decide(recommender: Recommender, store: Any, context: dict[str, Any], gesture_id: str) -> str:
    """A real decision logged in ``store`` that recommends ``gesture_id`` (or holds it for approval)."""
    result = recommender.recommend(context, store=store)
    assert gesture_id in [*result.gesture_ids(), *(w.gesture_id for w in result.needs_approval)], result
    assert result.decision_id
    return result.decision_id


def same_kind(result: Any, kinds: dict[str, set[str]]) -> dict[str, list[str]]:
    """Kinds of which more than one gesture came back (recommended or held for approval)."""
    back = [*result.gesture_ids(), *(w.gesture_id for w in result.needs_approval)]
    found = {kind: [g for g in back if g in ids] for kind, ids in kinds.items()}
    return {kind: ids for kind, ids in found.items() if len(ids) > 1}


# -- registration --------------------------------------------------------------------


def test_contributes_prefixed_gestures_and_rules(rec: Recommender) -> None:
    info = {i["name"]: i for i in rec.plugin_info()}[NAME]
    assert set(info["hooks"]) == {"recommender_register_rule_packs", "recommender_enrich_context",
                                  "recommender_record_outcome"}
    assert all(g.startswith("fitness_") for g in info["gestures"])
    assert all(r.startswith("fitness.") for r in info["rules"])
    assert plugin.PACK_PATH.parent == Path(plugin.__file__).parent
    assert rec.rulebook.gestures["fitness_free_pt_sessions"].source == str(plugin.PACK_PATH)


def test_loads_next_to_the_shipped_core_packs_without_warnings() -> None:
    with_core = plugin_recommender(plugin, core_packs=True)
    result = with_core.recommend(ctx({"tenure_years": 0}, issue="membership_signup"))
    assert not result.warnings, result.warnings
    assert "fitness_free_pt_sessions" in with_core.rulebook.gestures


#: Gestures of one kind across the core packs and this plugin: never two in one answer.
SAME_KIND = {"intro-session perk": {"free_intro_session", "fitness_free_pt_sessions"}}


@pytest.mark.parametrize("business", [{}, {"vertical": "fitness"}])
def test_with_the_core_packs_a_new_member_gets_one_intro_perk(business: dict[str, Any]) -> None:
    with_core = plugin_recommender(plugin, core_packs=True)
    groups = {g: with_core.rulebook.gestures[g].exclusive_group for g in SAME_KIND["intro-session perk"]}
    assert set(groups.values()) == {"welcome_perk"}, groups  # the core's group, shared
    signup = at(business, ctx({"name": "Ann", "tenure_years": 0}, issue="membership_signup"))
    result = with_core.recommend(signup, max_extras=10)  # no cap to hide a second perk
    assert not same_kind(result, SAME_KIND)
    assert "fitness_free_pt_sessions" in offered(result)  # the gym's own version wins the group
    assert held(result)["free_intro_session"] == "exclusive_group"
    # (with synthetic staff both perks are held for approval: in the core's arbitration a
    # held gesture claims no exclusive group)


# -- wow new members -----------------------------------------------------------------


def test_new_member_gets_free_personal_training(rec: Recommender) -> None:
    result = rec.recommend(ctx({"name": "Ann", "tenure_years": 0.05}, issue="membership_signup"))
    assert offered(result) == ["fitness_free_pt_sessions"]
    pt = result.recommendations[0]
    assert pt.script.startswith("Welcome aboard, Ann!")
    assert pt.cost == 60 and pt.authority == "genuine"


def test_synthetic_staff_needs_approval_for_the_sessions(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 0}, staff="synthetic", issue="membership_signup"))
    assert held(result)["fitness_free_pt_sessions"] == "needs_approval"


@pytest.mark.parametrize("customer, issue", [
    ({"tenure_years": 1}, "membership_signup"),   # re-joining after a year: not new
    ({"is_new": False}, "first_visit"),            # caller says not new
    ({"tenure_years": 0}, "locker_issue"),         # new, but not a joining moment
    ({}, "membership_signup"),                     # unknown tenure never matches
])
def test_no_free_sessions_in_close_contexts(rec: Recommender, customer: dict[str, Any], issue: str) -> None:
    assert "fitness_free_pt_sessions" not in offered(rec.recommend(ctx(customer, issue=issue)))


def test_pt_package_upsell_conflicts_with_the_free_sessions(rec: Recommender) -> None:
    new = rec.recommend(ctx({"tenure_years": 0.1, "attributes": {"pt_sessions_last_90_days": 4}}, issue="pt_booking"))
    assert "fitness_free_pt_sessions" in offered(new)
    assert held(new)["fitness_upsell_pt_package"] == "conflict"
    regular = rec.recommend(ctx({"tenure_years": 2, "attributes": {"pt_sessions_last_90_days": 4}}, issue="pt_booking"))
    assert "fitness_upsell_pt_package" in offered(regular)


# -- attendance drop -----------------------------------------------------------------


def test_drifting_regular_gets_a_check_in_and_a_comeback_session(rec: Recommender) -> None:
    result = rec.recommend(ctx(DRIFTING, issue="front_desk_visit"))
    assert {"fitness_missed_you_checkin", "fitness_comeback_session"} <= set(offered(result))
    checkin = next(r for r in result.recommendations if r.gesture_id == "fitness_missed_you_checkin")
    assert checkin.follow_up_days == 7
    assert "Lee" in checkin.script


def test_newer_member_who_drifts_gets_only_the_check_in(rec: Recommender) -> None:
    result = rec.recommend(ctx({**DRIFTING, "tenure_years": 0.6}, issue="front_desk_visit"))
    assert "fitness_missed_you_checkin" in offered(result)
    assert "fitness_comeback_session" not in offered(result)


@pytest.mark.parametrize("customer", [
    {"tenure_years": 3, "visits_last_year": 100, "attributes": {"visits_last_30_days": 7}},  # a normal month
    {"tenure_years": 3, "visits_last_year": 12, "attributes": {"visits_last_30_days": 0}},   # never a regular
    {"tenure_years": 3, "visits_last_year": 100},                                            # no recent count
])
def test_no_retention_gesture_without_a_real_drop(rec: Recommender, customer: dict[str, Any]) -> None:
    result = rec.recommend(ctx(customer, issue="front_desk_visit"))
    assert not {"fitness_missed_you_checkin", "fitness_comeback_session"} & set(offered(result))


@pytest.mark.parametrize("recent, year, drop", [
    (1, 100, 0.89), (0, 60, 1.0), (5, 60, 0.0), (2, 46, 0.5), (3, 24, None), (10, 40, 0.0),
])
def test_attendance_drop_formula(recent: float, year: float, drop: float | None) -> None:
    assert plugin.attendance_drop(recent, year) == drop


def test_enrich_returns_data_and_never_mutates() -> None:
    c = parse_context(ctx({"visits_last_year": 100, "attributes": {"visits_last_30_days": 1, "birth_month": 5,
                                                                   "total_visits": 250}},
                          issue="checkin", occurred_at="2025-05-20T07:00:00"))
    before = copy.deepcopy(c.model_dump())
    updates = plugin.recommender_enrich_context(c)
    assert c.model_dump() == before
    assert updates == {
        "interaction": {"attributes": {"fitness_topic": "visit"}},
        "customer": {"attributes": {"avg_monthly_visits": 9.0, "attendance_drop": 0.89,
                                    "birthday_this_month": True, "visit_milestone": 250}},
    }


def test_enrich_gives_only_the_topic_without_member_data() -> None:
    updates = plugin.recommender_enrich_context(parse_context(ctx({"tenure_years": 2}, issue="checkin")))
    assert updates == {"interaction": {"attributes": {"fitness_topic": "visit"}}}


@pytest.mark.parametrize("vertical, issue, topic", [
    (None, "cancellation_request", "membership"),   # single-business install: known gym issue
    (None, "flat_tire", None),                      # not ours
    ("fitness", "parking_question", "general"),     # any issue at a gym
    ("telecom", "cancellation_request", None),      # another trade's cancellation
])
def test_topic_marks_fitness_interactions_only(vertical: str | None, issue: str, topic: str | None) -> None:
    data = ctx({"tenure_years": 3}, issue=issue)
    if vertical:
        data["business"] = {"vertical": vertical}
    updates = plugin.recommender_enrich_context(parse_context(data))
    assert (updates or {}).get("interaction", {}).get("attributes", {}).get("fitness_topic") == topic


def test_no_gym_gestures_for_another_trades_cancellation(rec: Recommender) -> None:
    telecom = {**ctx({"tenure_years": 4}, issue="cancellation_request", cost=30), "business": {"vertical": "telecom"}}
    assert rec.recommend(telecom).gesture_ids() == []
    gym = {**ctx({"tenure_years": 4}, issue="cancellation_request", cost=30), "business": {"vertical": "fitness"}}
    assert "fitness_offer_freeze" in rec.recommend(gym).gesture_ids()


def test_every_rule_requires_the_fitness_topic(rec: Recommender) -> None:
    for rule in rec.rulebook.rules:
        for branch in rule.branches:
            assert any(a.field == "interaction.attributes.fitness_topic" and a.op == "exists" for a in branch), rule.id


def test_callers_attendance_drop_wins(rec: Recommender) -> None:
    told = {**DRIFTING, "attributes": {**DRIFTING["attributes"], "attendance_drop": 0.1}}
    assert "fitness_missed_you_checkin" not in offered(rec.recommend(ctx(told, issue="front_desk_visit")))


# -- cancellation --------------------------------------------------------------------


def test_cancellation_request_gets_a_freeze_offer_first(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 1}, issue="cancellation_request", cost=30))
    assert offered(result) == ["fitness_offer_freeze"]
    freeze = result.recommendations[0]
    assert freeze.tier == "meet" and freeze.cost == 0
    assert "cancel" in freeze.script and "right now" in freeze.script  # never a hurdle


def test_long_standing_member_leaves_without_a_fee(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 4}, issue="cancellation_request", cost=30))
    assert set(offered(result)) == {"fitness_offer_freeze", "fitness_waive_cancellation_fee"}
    assert "fitness_waive_cancellation_fee" not in offered(
        rec.recommend(ctx({"tenure_years": 4}, issue="cancellation_request", cost=80)))


def test_member_who_moves_away_gets_no_freeze_but_no_fee(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 0.5, "life_events": ["moving"]}, issue="cancellation_request", cost=30))
    assert offered(result) == ["fitness_waive_cancellation_fee"]


def test_no_freeze_offer_outside_a_cancellation(rec: Recommender) -> None:
    assert "fitness_offer_freeze" not in offered(rec.recommend(ctx({"tenure_years": 1}, issue="billing_question")))


def test_cancelled_class_is_recovered_first(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 2, "attributes": {"total_visits": 100}}, issue="class_cancelled"))
    assert offered(result)[0] == "fitness_class_cancelled_priority_booking"


# -- personal touches ----------------------------------------------------------------


def test_birthday_month_guest_pass(rec: Recommender) -> None:
    may = ctx({"attributes": {"birth_month": 5}}, issue="checkin", occurred_at="2025-05-03T07:00:00")
    assert "fitness_birthday_guest_pass" in offered(rec.recommend(may))
    june = ctx({"attributes": {"birth_month": 5}}, issue="checkin", occurred_at="2025-06-03T07:00:00")
    assert "fitness_birthday_guest_pass" not in offered(rec.recommend(june))
    undated = ctx({"attributes": {"birth_month": 5}}, issue="checkin")
    assert "fitness_birthday_guest_pass" not in offered(rec.recommend(undated))


def test_visit_milestone_shoutout(rec: Recommender) -> None:
    result = rec.recommend(ctx({"attributes": {"total_visits": 500}}, issue="checkin"))
    shout = next(r for r in result.recommendations if r.gesture_id == "fitness_milestone_shoutout")
    assert "visit number 500" in shout.script
    assert "fitness_milestone_shoutout" not in offered(rec.recommend(ctx({"attributes": {"total_visits": 501}}, issue="checkin")))


def test_preferred_trainer_is_remembered(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 2, "preferences": {"preferred_trainer": "Jo"}}, issue="class_booking"))
    booking = next(r for r in result.recommendations if r.gesture_id == "fitness_book_preferred_trainer")
    assert "Jo" in booking.script


# -- outcome observer ----------------------------------------------------------------


def test_outcomes_of_fitness_gestures_are_counted(rec: Recommender, store: Any) -> None:
    d1 = decide(rec, store, CANCELLING, "fitness_offer_freeze")
    d2 = decide(rec, store, CANCELLING, "fitness_offer_freeze")
    d3 = decide(rec, store, at({"id": "gym-north"}, CANCELLING), "fitness_offer_freeze")
    with_core = plugin_recommender(plugin, core_packs=True)  # a core gesture, for an outcome not ours
    d4 = decide(with_core, store, ctx({"tenure_years": 4}, issue="late_fee", cost=15), "waive_small_fee")
    rec.record_outcome(store, d1, "fitness_offer_freeze", "offered", idempotency_key="k1")
    rec.record_outcome(store, d1, "fitness_offer_freeze", "accepted", idempotency_key="k2")
    rec.record_outcome(store, d2, "fitness_offer_freeze", "declined", idempotency_key="k3")
    rec.record_outcome(store, d3, "fitness_offer_freeze", "accepted", idempotency_key="k4", tenant="gym-north")
    rec.record_outcome(store, d4, "waive_small_fee", "accepted", idempotency_key="k5")  # not ours
    # the store saw everything; the plugin only observes
    assert sum(len(store.get_decision(d).outcomes) for d in (d1, d2, d3, d4)) == 5
    assert plugin.TALLY.report("default") == {
        "fitness_offer_freeze": {"offered": 1, "accepted": 1, "declined": 1, "delivered": 0, "acceptance_rate": 0.5}}
    assert plugin.TALLY.report()["fitness_offer_freeze"]["accepted"] == 2
    assert plugin.TALLY.report("gym-north")["fitness_offer_freeze"]["acceptance_rate"] == 1.0


def test_observer_follows_business_selection(rec: Recommender, store: Any) -> None:
    sel = plugin_recommender(plugin,
                      plugin_config={"businesses": {"gym1": [NAME]}, "default": []})
    d1 = decide(sel, store, at({"id": "gym1"}, CANCELLING), "fitness_offer_freeze")
    # sel does not run the plugin for bakery1: the decision comes from an install that does
    d2 = decide(rec, store, at({"id": "bakery1"}, CANCELLING), "fitness_offer_freeze")
    sel.record_outcome(store, d1, "fitness_offer_freeze", "accepted", idempotency_key="a", tenant="gym1")
    sel.record_outcome(store, d2, "fitness_offer_freeze", "accepted", idempotency_key="b", tenant="bakery1")
    assert plugin.TALLY.report() == {
        "fitness_offer_freeze": {"offered": 0, "accepted": 1, "declined": 0, "delivered": 0, "acceptance_rate": 1.0}}


def test_observer_follows_vertical_selection(store: Any) -> None:
    sel = plugin_recommender(plugin,
                      plugin_config={"verticals": {"fitness": [NAME]}, "default": []})
    d1 = decide(sel, store, at({"id": "gym1", "vertical": "fitness"}, CANCELLING), "fitness_offer_freeze")
    sel.record_outcome(store, d1, "fitness_offer_freeze", "accepted", idempotency_key="a", tenant="gym1",
                       vertical="fitness")
    assert plugin.TALLY.report("gym1")["fitness_offer_freeze"]["accepted"] == 1


# -- discovery through the entry point -----------------------------------------------


def test_entry_point_declared_in_pyproject_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic: a throw-away dist-info carrying the pyproject's entry point, no pip needed."""
    declared = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["recommender"]
    assert declared == {EP_NAME: "recommender_fitness"}
    dist = tmp_path / "recommender_fitness_probe-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recommender-fitness-probe\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[recommender]\nprobe_{EP_NAME} = {declared[EP_NAME]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = {ep.name for ep in importlib.metadata.entry_points(group="recommender")} - {f"probe_{EP_NAME}"}
    monkeypatch.setenv("RECOMMENDER_DISABLED_PLUGINS", ",".join(sorted(installed)))
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    found = Recommender(rules=[])
    info = {i["name"]: i for i in found.plugin_info()}[f"probe_{EP_NAME}"]
    assert info["source"] == "entrypoint"
    assert "fitness_free_pt_sessions" in found.recommend(ctx({"tenure_years": 0}, issue="membership_signup")).gesture_ids()


def _installed() -> bool:
    return any(ep.name == EP_NAME for ep in importlib.metadata.entry_points(group="recommender"))


@pytest.mark.skipif(not _installed(), reason="not pip-installed: pip install -e plugins/fitness")
def test_installed_plugin_is_autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
    default = Recommender()
    info = {i["name"]: i for i in default.plugin_info()}[EP_NAME]
    assert info["source"] == "entrypoint"
    result = default.recommend(ctx({"tenure_years": 0}, issue="membership_signup"))
    assert "fitness_free_pt_sessions" in result.gesture_ids()
