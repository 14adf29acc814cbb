"""Scenarios of the fitness plugin, run against a real Recommender.

Runs from the plugin folder (``pytest``) or the repo root
(``pytest plugins/fitness/tests``), installed or not.

The advice model (docs/advice.md): the plugin serves businesses of the vertical ``fitness``;
loyalty and value are judged on a gym's scale (the plugin's profile defaults); money above
the serving person's limit goes to approval; the extras (tier ``exceed``) are drawn for
about one interaction in ten, so a test of one asserts that it was eligible (listed, or
withheld only by the draw: ``offered_or_drawn``) and the draw itself is tested across many
members on a fixed day, which makes it reproducible.
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
                                 sqlite_store, withheld_reasons)

plugin = import_plugin("recommender_fitness", __file__)  # installed, or from the source folder
PLUGIN_ROOT = Path(__file__).resolve().parents[1]

NAME = "recommender_fitness"  # the plugin's name when registered as an object
EP_NAME = "fitness"  # its name when found through the entry point
GYM = Business(vertical="fitness")
DAY = "2025-05-20T07:00:00"  # a fixed day: the extras draw is reproducible


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return plugin_recommender(plugin)  # only this plugin: no core packs, nothing installed


@pytest.fixture(scope="module")
def with_core() -> Recommender:
    return plugin_recommender(plugin, core_packs=True)  # the shipped core packs plus this plugin


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with sqlite_store(tmp_path) as memory:  # the real embedded store, one file per test
        yield memory


@pytest.fixture(autouse=True)
def clean_tally() -> Any:
    plugin.TALLY.reset()
    yield
    plugin.TALLY.reset()


def ctx(customer: dict[str, Any] | None = None, staff: str = "genuine", vertical: str | None = "fitness",
        **interaction: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"customer": customer or {}, "interaction": interaction, "staff": {"level": staff}}
    if vertical is not None:
        data["business"] = {"vertical": vertical}
    return data


def offered(result: Any) -> list[str]:
    return result.gesture_ids()


held = withheld_reasons  # gesture id -> why it is not offered (withheld or awaiting approval)


def matched(result: Any) -> set[str]:
    """Every gesture a rule chose: listed, awaiting approval or withheld with a reason."""
    return {*offered(result), *held(result)}


def drawn(recommender: Recommender, make: Callable[[int], dict[str, Any]], gesture_id: str) -> Any:
    """The first of 200 members (ids m-0, m-1, ... on a fixed day) whose draw lists ``gesture_id``."""
    for i in range(200):
        result = recommender.recommend(make(i))
        if gesture_id in offered(result):
            return result
    raise AssertionError(f"{gesture_id} was listed for none of 200 members")


def rec_for(result: Any, gesture_id: str) -> Any:
    return next(r for r in result.recommendations if r.gesture_id == gesture_id)


#: A regular (about 9 visits a month) who came once in the last 30 days.
DRIFTING = {"name": "Lee", "tenure_years": 3, "visits_last_year": 100, "attributes": {"visits_last_30_days": 1}}


#: A member of six months asking to cancel: fitness_offer_freeze is recommended.
CANCELLING = {"customer": {"tenure_years": 0.5}, "interaction": {"issue": "cancellation_request", "cost": 30},
              "staff": {"level": "genuine"}, "business": {"vertical": "fitness"}}


def at(business: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {**context, "business": {**context.get("business", {}), **business}}


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
    assert set(info["hooks"]) == {"recommender_declare_verticals", "recommender_register_issue_codes",
                                  "recommender_business_profile", "recommender_register_rule_packs",
                                  "recommender_enrich_context", "recommender_record_outcome"}
    book = rec.rulebook_for(GYM)
    ours = [g for g in book.gestures.values() if g.source == str(plugin.PACK_PATH)]
    assert len(ours) >= 10 and all(g.id.startswith("fitness_") for g in ours)
    assert all(r.id.startswith("fitness.") for r in book.rules)
    assert plugin.PACK_PATH.parent == Path(plugin.__file__).parent
    assert book.gestures["fitness_free_pt_sessions"].source == str(plugin.PACK_PATH)


def test_loads_next_to_the_shipped_core_packs_without_warnings(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({"tenure_years": 0}, issue="membership_signup"))
    assert not result.warnings, result.warnings
    assert "fitness_free_pt_sessions" in with_core.rulebook_for(GYM).gestures


# -- the trade it serves -------------------------------------------------------------


@pytest.mark.parametrize("vertical", [None, "telecom", "auto_repair"])
def test_applies_only_to_fitness_businesses(rec: Recommender, vertical: str | None) -> None:
    # a plugin that declares its verticals is not in another business's rulebook at all
    assert not [g for g in rec.rulebook_for(Business(vertical=vertical)).gestures if g.startswith("fitness_")]
    result = rec.recommend(ctx({"tenure_years": 4}, vertical=vertical, issue="cancellation_request", cost=30))
    assert offered(result) == [] and not held(result)


def test_plugin_config_selects_it_for_a_business_without_a_vertical() -> None:
    # a single-gym install that does not send business.vertical: configure the plugin for it
    single = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    result = single.recommend(ctx({"tenure_years": 0.5}, vertical=None, issue="cancellation_request", cost=30))
    assert offered(result) == ["fitness_offer_freeze"]
    # the scope marker still keeps another trade's issue out of the gym's rules
    assert single.recommend(ctx({"tenure_years": 4}, vertical=None, issue="flat_tire", cost=30)).gesture_ids() == []


# -- issue codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code, family", [
    ("membership_signup", "routine"), ("joining", "routine"), ("checkin", "routine"), ("pt_booking", "routine"),
    ("class_cancelled", "service_failure"), ("locker_issue", "service_failure"),
    ("parking_question", "information_request"), ("billing_question", "information_request"),
    ("late_fee", "routine"), ("cancellation_request", "routine"),  # the core's code
])
def test_issue_codes_are_in_their_families(rec: Recommender, code: str, family: str) -> None:
    result = rec.recommend(ctx({}, issue=code))
    assert result.assessment.family == family
    assert not result.notes and not result.warnings


def test_a_cancelled_class_is_a_negative_experience(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="class_cancelled"))
    assert result.assessment.severity == 2  # service_failure: base 2
    assert offered(result) == ["fitness_class_cancelled_priority_booking"]


# -- profile -------------------------------------------------------------------------


def test_profile_defaults_on_a_gyms_scale(rec: Recommender) -> None:
    gym, _ = rec.profile_for(GYM)
    assert (gym.loyal_tenure_years, gym.loyal_visits, gym.high_value) == (1, 100, 600)
    assert gym.limit_for("genuine") == 75
    other, _ = rec.profile_for(Business(vertical="telecom"))  # the plugin does not serve it
    assert (other.loyal_tenure_years, other.high_value) == (3, 2000)
    configured = plugin_recommender(plugin, profiles={"default": {"loyal_tenure_years": 2}})
    assert configured.profile_for(GYM)[0].loyal_tenure_years == 2  # configuration wins


@pytest.mark.parametrize("customer, waived", [
    ({"tenure_years": 1.5, "lifetime_value": 700}, True),   # docs/advice.md: loyal at a gym, not by the core's 3 years
    ({"visits": 120}, True),                                # or by visits
    ({"tenure_years": 0.5, "lifetime_value": 700}, True),   # high-value at a gym (600)
    ({"tenure_years": 0.5, "lifetime_value": 300}, False),
    ({}, False),                                            # unknown never matches
])
def test_loyalty_is_judged_on_the_gyms_scale(rec: Recommender, customer: dict[str, Any], waived: bool) -> None:
    result = rec.recommend(ctx(customer, issue="cancellation_request", cost=30))
    assert ("fitness_waive_cancellation_fee" in offered(result)) is waived


#: Gestures of one kind across the core packs and this plugin: never two in one answer.
SAME_KIND = {"intro-session perk": {"free_intro_session", "fitness_free_pt_sessions"},
             "waiver of the fee": {"waive_small_fee", "fitness_waive_cancellation_fee"}}


def signup(i: int, staff: str = "genuine", **customer: Any) -> dict[str, Any]:
    return ctx({"id": f"m-{i}", "name": "Ann", "tenure_years": 0, **customer}, staff=staff,
               issue="membership_signup", occurred_at=DAY)


def test_with_the_core_packs_a_new_member_gets_one_intro_perk(with_core: Recommender) -> None:
    groups = {g: with_core.rulebook_for(GYM).gestures[g].exclusive_group for g in SAME_KIND["intro-session perk"]}
    assert set(groups.values()) == {"welcome_perk"}, groups  # the core's group, shared
    for i in range(40):  # forty members on one day: some win the extras draw, some do not
        result = with_core.recommend(signup(i), max_extras=10)  # no cap to hide a second perk
        assert not same_kind(result, SAME_KIND)
        assert offered_or_drawn(result, "fitness_free_pt_sessions")
        if "fitness_free_pt_sessions" in offered(result):  # the gym's own version wins the group
            assert held(result)["free_intro_session"] == "exclusive_group"
        else:
            assert held(result)["free_intro_session"] == "extras_rate"


def test_with_the_core_packs_a_leaving_members_fee_is_waived_once(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({"tenure_years": 4}, issue="cancellation_request", cost=30))
    assert not same_kind(result, SAME_KIND)
    assert "fitness_waive_cancellation_fee" in offered(result)  # the gym's wording wins the group
    assert held(result)["waive_small_fee"] == "exclusive_group"


# -- wow new members (the extra) -----------------------------------------------------


def test_new_member_is_eligible_for_free_personal_training(rec: Recommender) -> None:
    for i in range(20):
        assert offered_or_drawn(rec.recommend(signup(i)), "fitness_free_pt_sessions")
    pt = rec_for(drawn(rec, signup, "fitness_free_pt_sessions"), "fitness_free_pt_sessions")
    assert pt.tier == "exceed"
    assert pt.script.startswith("Welcome aboard, Ann, and congratulations on joining!")
    assert pt.cost == 60  # a membership adviser gives it within their 75
    anonymous = rec_for(drawn(rec, lambda i: signup(i, name=None), "fitness_free_pt_sessions"),
                        "fitness_free_pt_sessions")
    assert anonymous.script.startswith("Welcome aboard, and congratulations on joining!")


def test_the_sessions_are_drawn_for_some_new_members_not_all(rec: Recommender) -> None:
    results = [rec.recommend(signup(i)) for i in range(200)]
    listed = sum("fitness_free_pt_sessions" in offered(r) for r in results)
    assert all(offered_or_drawn(r, "fitness_free_pt_sessions") for r in results)
    # the chance is the extras rate (0.10) aimed x1.5 at a member not yet won: about 30 of 200
    assert 10 <= listed <= 60, listed


def test_a_trainee_asks_approval_for_the_sessions_when_drawn(rec: Recommender) -> None:
    for i in range(200):
        result = rec.recommend(signup(i, staff="synthetic"))
        reason = held(result).get("fitness_free_pt_sessions")
        assert reason in ("needs_approval", "extras_rate"), reason
        if reason == "needs_approval":
            ask = next(w for w in result.needs_approval if w.gesture_id == "fitness_free_pt_sessions")
            assert "10.00 USD" in ask.detail and ask.script.startswith("Welcome aboard, Ann")
            break
    else:
        raise AssertionError("the draw never fell for 200 members")


@pytest.mark.parametrize("customer, issue", [
    ({"tenure_years": 1}, "membership_signup"),   # re-joining after a year: not new
    ({"is_new": False}, "first_visit"),            # caller says not new
    ({"tenure_years": 0}, "locker_issue"),         # new, but not a joining moment (a facility issue)
    ({}, "membership_signup"),                     # unknown tenure never matches
])
def test_no_free_sessions_in_close_contexts(rec: Recommender, customer: dict[str, Any], issue: str) -> None:
    assert "fitness_free_pt_sessions" not in matched(rec.recommend(ctx(customer, issue=issue)))


def test_pt_package_upsell_never_comes_with_the_free_sessions(rec: Recommender) -> None:
    for i in range(60):
        new = rec.recommend(ctx({"id": f"m-{i}", "tenure_years": 0.1, "attributes": {"pt_sessions_last_90_days": 4}},
                                issue="pt_booking", occurred_at=DAY))
        assert offered_or_drawn(new, "fitness_free_pt_sessions")
        assert "fitness_upsell_pt_package" not in offered(new)
        # drawn: the sessions win and the upsell conflicts; not drawn: neither extra today
        assert held(new)["fitness_upsell_pt_package"] in ("conflict", "extras_rate")
    regular = rec.recommend(ctx({"tenure_years": 2, "attributes": {"pt_sessions_last_90_days": 4}}, issue="pt_booking"))
    assert offered_or_drawn(regular, "fitness_upsell_pt_package")


# -- attendance drop -----------------------------------------------------------------


def test_drifting_regular_gets_a_check_in_and_a_comeback_session(rec: Recommender) -> None:
    result = rec.recommend(ctx(DRIFTING, issue="front_desk_visit"))
    checkin = rec_for(result, "fitness_missed_you_checkin")  # noticing is expected: meet, every time
    assert checkin.tier == "meet" and checkin.follow_up_days == 7
    assert checkin.script.startswith("We've missed you lately, Lee, and we hope all is well.")
    assert rec.rulebook_for(GYM).gestures["fitness_missed_you_checkin"].contacts_customer
    assert offered_or_drawn(result, "fitness_comeback_session")  # the extra for a loyal member


def test_the_comeback_session_is_drawn_for_some_drifting_members(rec: Recommender) -> None:
    def drifting(i: int) -> dict[str, Any]:
        return ctx({**DRIFTING, "id": f"m-{i}"}, issue="front_desk_visit", occurred_at=DAY)

    session = rec_for(drawn(rec, drifting, "fitness_comeback_session"), "fitness_comeback_session")
    assert session.tier == "exceed" and session.cost == 30
    listed = sum("fitness_comeback_session" in offered(rec.recommend(drifting(i))) for i in range(200))
    assert 0 < listed < 100, listed  # rare: the rate aimed x1.3 at a loyal member


def test_newer_member_who_drifts_gets_only_the_check_in(rec: Recommender) -> None:
    result = rec.recommend(ctx({**DRIFTING, "tenure_years": 0.6}, issue="front_desk_visit"))
    assert "fitness_missed_you_checkin" in offered(result)
    assert "fitness_comeback_session" not in matched(result)  # not loyal yet at a gym (a year)


@pytest.mark.parametrize("customer", [
    {"tenure_years": 3, "visits_last_year": 100, "attributes": {"visits_last_30_days": 7}},  # a normal month
    {"tenure_years": 3, "visits_last_year": 12, "attributes": {"visits_last_30_days": 0}},   # never a regular
    {"tenure_years": 3, "visits_last_year": 100},                                            # no recent count
])
def test_no_retention_gesture_without_a_real_drop(rec: Recommender, customer: dict[str, Any]) -> None:
    result = rec.recommend(ctx(customer, issue="front_desk_visit"))
    assert not {"fitness_missed_you_checkin", "fitness_comeback_session"} & matched(result)


@pytest.mark.parametrize("recent, year, drop", [
    (1, 100, 0.89), (0, 60, 1.0), (5, 60, 0.0), (2, 46, 0.5), (3, 24, None), (10, 40, 0.0),
])
def test_attendance_drop_formula(recent: float, year: float, drop: float | None) -> None:
    assert plugin.attendance_drop(recent, year) == drop


def test_enrich_returns_data_and_never_mutates() -> None:
    c = parse_context(ctx({"visits_last_year": 100, "attributes": {"visits_last_30_days": 1, "birth_month": 5,
                                                                   "total_visits": 250}},
                          issue="checkin", occurred_at=DAY))
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
    data = ctx({"tenure_years": 3}, vertical=vertical, issue=issue)
    updates = plugin.recommender_enrich_context(parse_context(data))
    assert (updates or {}).get("interaction", {}).get("attributes", {}).get("fitness_topic") == topic


def test_no_gym_gestures_for_another_trades_cancellation(rec: Recommender) -> None:
    telecom = ctx({"tenure_years": 4}, vertical="telecom", issue="cancellation_request", cost=30)
    assert rec.recommend(telecom).gesture_ids() == []
    # not even when a configuration gives the plugin to every business: the scope marker
    everyone = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    assert everyone.recommend(telecom).gesture_ids() == []
    gym = ctx({"tenure_years": 4}, issue="cancellation_request", cost=30)
    assert "fitness_offer_freeze" in rec.recommend(gym).gesture_ids()


def test_callers_attendance_drop_wins(rec: Recommender) -> None:
    told = {**DRIFTING, "attributes": {**DRIFTING["attributes"], "attendance_drop": 0.1}}
    assert "fitness_missed_you_checkin" not in matched(rec.recommend(ctx(told, issue="front_desk_visit")))


# -- cancellation --------------------------------------------------------------------


def test_cancellation_request_gets_a_freeze_offer_first(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 0.5}, issue="cancellation_request", cost=30))
    assert offered(result) == ["fitness_offer_freeze"]
    freeze = result.recommendations[0]
    assert freeze.tier == "meet" and freeze.cost == 0
    assert "cancel" in freeze.script and "right now" in freeze.script  # never a hurdle


def test_loyal_member_leaves_without_a_fee(rec: Recommender) -> None:
    result = rec.recommend(ctx({"name": "Kai", "tenure_years": 4}, issue="cancellation_request", cost=30))
    assert set(offered(result)) == {"fitness_offer_freeze", "fitness_waive_cancellation_fee"}
    waiver = rec_for(result, "fitness_waive_cancellation_fee")
    assert waiver.tier == "meet"  # policy: a loyal member reliably leaves without the fee
    assert waiver.script.startswith("There's no cancellation fee for you, Kai - thank you")


def test_a_fee_above_the_servers_money_limit_goes_to_approval_with_its_script(rec: Recommender) -> None:
    big = rec.recommend(ctx({"tenure_years": 4}, issue="cancellation_request", cost=80))
    ask = next(w for w in big.needs_approval if w.gesture_id == "fitness_waive_cancellation_fee")
    assert "75.00 USD" in ask.detail and ask.script.startswith("There's no cancellation fee for you")
    manager = rec.recommend(ctx({"tenure_years": 4}, staff="super", issue="cancellation_request", cost=80))
    assert "fitness_waive_cancellation_fee" in offered(manager)


def test_member_who_moves_away_gets_no_freeze_but_no_fee(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 0.5, "life_events": ["moving"]}, issue="cancellation_request", cost=30))
    assert offered(result) == ["fitness_waive_cancellation_fee"]


def test_no_freeze_offer_outside_a_cancellation(rec: Recommender) -> None:
    assert "fitness_offer_freeze" not in matched(rec.recommend(ctx({"tenure_years": 1}, issue="billing_question")))


def test_cancelled_class_is_recovered_first(rec: Recommender) -> None:
    result = rec.recommend(ctx({"name": "Ada", "tenure_years": 2, "attributes": {"total_visits": 100}},
                               issue="class_cancelled"))
    assert offered(result)[0] == "fitness_class_cancelled_priority_booking"
    assert result.recommendations[0].script.startswith("I'm sorry we had to cancel your class, Ada.")


def test_with_the_core_packs_a_cancelled_class_is_apologised_for_and_recovered(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({"tenure_years": 2}, issue="class_cancelled"))
    assert {"acknowledge_and_own", "fitness_class_cancelled_priority_booking"} <= set(offered(result))


# -- personal touches (extras) -------------------------------------------------------


def test_birthday_month_guest_pass(rec: Recommender) -> None:
    def may(i: int) -> dict[str, Any]:
        return ctx({"id": f"m-{i}", "name": "Bo", "attributes": {"birth_month": 5}}, issue="checkin",
                   occurred_at="2025-05-03T07:00:00")

    assert offered_or_drawn(rec.recommend(may(0)), "fitness_birthday_guest_pass")
    guest = rec_for(drawn(rec, may, "fitness_birthday_guest_pass"), "fitness_birthday_guest_pass")
    assert guest.script.startswith("Happy birthday month, Bo!")
    june = ctx({"attributes": {"birth_month": 5}}, issue="checkin", occurred_at="2025-06-03T07:00:00")
    assert "fitness_birthday_guest_pass" not in matched(rec.recommend(june))
    undated = ctx({"attributes": {"birth_month": 5}}, issue="checkin")
    assert "fitness_birthday_guest_pass" not in matched(rec.recommend(undated))


def test_visit_milestone_shoutout(rec: Recommender) -> None:
    def milestone(i: int) -> dict[str, Any]:
        return ctx({"id": f"m-{i}", "attributes": {"total_visits": 500}}, issue="checkin", occurred_at=DAY)

    assert offered_or_drawn(rec.recommend(milestone(0)), "fitness_milestone_shoutout")
    shout = rec_for(drawn(rec, milestone, "fitness_milestone_shoutout"), "fitness_milestone_shoutout")
    assert "visit number 500" in shout.script
    assert "fitness_milestone_shoutout" not in matched(rec.recommend(ctx({"attributes": {"total_visits": 501}},
                                                                         issue="checkin")))


def test_preferred_trainer_is_remembered(rec: Recommender) -> None:
    result = rec.recommend(ctx({"tenure_years": 2, "preferences": {"preferred_trainer": "Jo"}}, issue="class_booking"))
    booking = rec_for(result, "fitness_book_preferred_trainer")
    assert booking.tier == "meet" and "Jo" in booking.script


# -- scripts -------------------------------------------------------------------------


#: A sample value for every placeholder the gym's scripts use.
SAMPLE = {"customer.name": "Lee", "customer.attributes.visit_milestone": 250,
          "customer.preferences.preferred_trainer": "Jo"}


def test_every_script_reads_true_with_and_without_its_optional_fields(rec: Recommender) -> None:
    for gesture in rec.rulebook_for(GYM).gestures.values():
        if gesture.id.startswith("fitness_"):
            assert script_problems(gesture.script, SAMPLE) == [], gesture.id


def test_follow_up_gestures_are_marked_as_contacting_the_customer(rec: Recommender) -> None:
    for gesture in rec.rulebook_for(GYM).gestures.values():
        if gesture.id.startswith("fitness_") and gesture.follow_up_days:
            assert gesture.contacts_customer, gesture.id


# -- outcome observer ----------------------------------------------------------------


def test_outcomes_of_fitness_gestures_are_counted(rec: Recommender, store: Any) -> None:
    d1 = decide(rec, store, CANCELLING, "fitness_offer_freeze")
    d2 = decide(rec, store, CANCELLING, "fitness_offer_freeze")
    d3 = decide(rec, store, at({"id": "gym-north"}, CANCELLING), "fitness_offer_freeze")
    with_core = plugin_recommender(plugin, core_packs=True)  # a core gesture, for an outcome not ours
    d4 = decide(with_core, store, ctx({"tenure_years": 4}, issue="late_fee", cost=15), "waive_small_fee")
    # the plugin serves the vertical fitness: its observer hears the outcomes of a gym's decisions
    gym = {"vertical": "fitness"}
    rec.record_outcome(store, d1, "fitness_offer_freeze", "offered", idempotency_key="k1", **gym)
    rec.record_outcome(store, d1, "fitness_offer_freeze", "accepted", idempotency_key="k2", **gym)
    rec.record_outcome(store, d2, "fitness_offer_freeze", "declined", idempotency_key="k3", **gym)
    rec.record_outcome(store, d3, "fitness_offer_freeze", "accepted", idempotency_key="k4", tenant="gym-north", **gym)
    rec.record_outcome(store, d4, "waive_small_fee", "accepted", idempotency_key="k5")  # not ours: not a gym
    # the store saw everything; the plugin only observes
    assert sum(len(store.get_decision(d).outcomes) for d in (d1, d2, d3, d4)) == 5
    assert plugin.TALLY.report("default") == {
        "fitness_offer_freeze": {"offered": 1, "accepted": 1, "declined": 1, "delivered": 0, "acceptance_rate": 0.5}}
    assert plugin.TALLY.report()["fitness_offer_freeze"]["accepted"] == 2
    assert plugin.TALLY.report("gym-north")["fitness_offer_freeze"]["acceptance_rate"] == 1.0


def test_observer_hears_a_gyms_outcome_without_being_told_the_vertical(rec: Recommender, store: Any) -> None:
    d1 = decide(rec, store, CANCELLING, "fitness_offer_freeze")  # the decision's context says: fitness
    rec.record_outcome(store, d1, "fitness_offer_freeze", "accepted", idempotency_key="k1")
    assert plugin.TALLY.report("default")["fitness_offer_freeze"]["accepted"] == 1


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


def _installed() -> bool:
    return any(ep.name == EP_NAME for ep in importlib.metadata.entry_points(group="recommender"))


@pytest.mark.skipif(not _installed(), reason="not pip-installed: pip install -e plugins/fitness")
def test_installed_plugin_is_autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
    default = Recommender()
    info = {i["name"]: i for i in default.plugin_info()}[EP_NAME]
    assert info["source"] == "entrypoint"
    assert offered_or_drawn(default.recommend(signup(0)), "fitness_free_pt_sessions")
    assert "fitness_offer_freeze" in default.recommend(CANCELLING).gesture_ids()
    # not a gym: not the gym's rules
    assert not [g for g in default.recommend(ctx({"tenure_years": 4}, vertical=None, issue="cancellation_request",
                                                 cost=30)).gesture_ids() if g.startswith("fitness_")]


class TestTrade(TradePluginTests):
    """What every one-trade plugin is tested for (recommender.testing.TradePluginTests)."""

    plugin = plugin
    root = PLUGIN_ROOT
    entry_point = EP_NAME
    distribution = "recommender-fitness"
    prefix = "fitness_"
    marker = "interaction.attributes.fitness_topic"
    signature = (CANCELLING, "fitness_offer_freeze")
    # the scope table's codes, and the codes these tests use
    issues_used = (*plugin.TOPICS, "front_desk_visit", "class_booking", "late_fee", "locker_issue")
