"""Scenarios of the insurance plugin, run against a real Recommender.

Consent first: every partner referral is tested in both directions (consent recorded ->
refer, never ask; no consent -> ask, never refer), plus the guard that holds even when a
rule elsewhere proposes a referral without consent.

Runs from the plugin folder (``pytest``) or the repo root
(``pytest plugins/insurance/tests``), installed or not.

The advice model (docs/advice.md): the plugin serves businesses of the vertical
``insurance``; loyalty is judged on an insurer's scale (the plugin's profile defaults);
money above the serving person's limit goes to approval; at most two ``meet`` gestures are
listed, so a gesture that matched but ranks below them comes back withheld with reason
``listing_cap`` (``matched`` below counts it).
"""

from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender, hookimpl, parse_context
from recommender.context import Business
from recommender.testing import (TradePluginTests, import_plugin, plugin_recommender, script_problems, sqlite_store,
                                 withheld_reasons)

plugin = import_plugin("recommender_insurance", __file__)  # installed, or from the source folder
PLUGIN_ROOT = Path(__file__).resolve().parents[1]

NAME = "recommender_insurance"  # the plugin's name when registered as an object
EP_NAME = "insurance"  # its name when found through the entry point
CONSENT = plugin.CONSENT
AGENCY = Business(vertical="insurance")
#: Room for every meet gesture: the guard tests need the gestures listed to veto them.
ROOMY = {"default": {"listing": {"meet": 6}}}


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
def clean_ledger() -> Any:
    plugin.LEDGER.reset()
    yield
    plugin.LEDGER.reset()


def ctx(customer: dict[str, Any] | None = None, staff: str = "genuine", vertical: str | None = "insurance",
        **interaction: Any) -> dict[str, Any]:
    interaction.setdefault("issue", "policy_review")
    data: dict[str, Any] = {"customer": customer or {}, "interaction": interaction, "staff": {"level": staff}}
    if vertical is not None:
        data["business"] = {"vertical": vertical}
    return data


def offered(result: Any) -> list[str]:
    return result.gesture_ids()


held = withheld_reasons  # gesture id -> why it is not offered (withheld or awaiting approval)


def matched(result: Any) -> list[str]:
    """Every gesture a rule chose: listed, awaiting approval or withheld with a reason."""
    return [*offered(result), *held(result)]


def rec_for(result: Any, gesture_id: str) -> Any:
    return next(r for r in result.recommendations if r.gesture_id == gesture_id)


def refers(ids: list[str]) -> set[str]:
    return {g for g in ids if g.startswith("insurance_refer_")}


def asks(ids: list[str]) -> set[str]:
    return {g for g in ids if g.startswith("insurance_ask_consent_")}


def decide(recommender: Recommender, store: Any, context: dict[str, Any], *gesture_ids: str) -> str:
    """A real decision logged in ``store`` that recommends ``gesture_ids`` (or holds them for approval)."""
    result = recommender.recommend(context, store=store)
    back = [*offered(result), *(w.gesture_id for w in result.needs_approval)]
    assert set(gesture_ids) <= set(back), (gesture_ids, back)
    assert result.decision_id
    return result.decision_id


#: Gestures of one kind across the core packs and this plugin: never two in one answer.
SAME_KIND = {
    "home coverage review": {"home_coverage_review", "insurance_home_coverage_review"},
    "auto coverage review": {"vehicle_coverage_review", "insurance_auto_coverage_review"},
    "consent question": {"ask_referral_consent", "insurance_ask_consent_home_purchase",
                         "insurance_ask_consent_new_baby", "insurance_ask_consent_retirement"},
    "realtor referral": {"refer_realtor_or_lender", "insurance_refer_realtor"},
    "mortgage-lender referral": {"refer_realtor_or_lender", "insurance_refer_mortgage_lender"},
    "financial-planner referral": {"refer_financial_planner", "insurance_refer_financial_planner"},
}


def same_kind(result: Any) -> dict[str, list[str]]:
    """Kinds of which more than one gesture came back (recommended or held for approval)."""
    back = [*offered(result), *(w.gesture_id for w in result.needs_approval)]
    found = {kind: [g for g in back if g in ids] for kind, ids in SAME_KIND.items()}
    return {kind: ids for kind, ids in found.items() if len(ids) > 1}


#: life event -> (the ask gesture, the refer gestures, the consent scope)
EVENTS = {
    "home_purchase": ("insurance_ask_consent_home_purchase", {"insurance_refer_realtor", "insurance_refer_mortgage_lender"}, "home"),
    "house_hunting": ("insurance_ask_consent_home_purchase", {"insurance_refer_realtor", "insurance_refer_mortgage_lender"}, "home"),
    "new_baby": ("insurance_ask_consent_new_baby", {"insurance_refer_childcare"}, "family"),
    "retirement": ("insurance_ask_consent_retirement", {"insurance_refer_financial_planner"}, "retirement"),
}


# -- registration --------------------------------------------------------------------


def test_contributes_prefixed_gestures_and_rules(rec: Recommender) -> None:
    info = {i["name"]: i for i in rec.plugin_info()}[NAME]
    assert set(info["hooks"]) == {"recommender_declare_verticals", "recommender_register_issue_codes",
                                  "recommender_business_profile", "recommender_register_rule_packs",
                                  "recommender_enrich_context", "recommender_adjust_recommendations",
                                  "recommender_record_outcome"}
    book = rec.rulebook_for(AGENCY)
    ours = [g for g in book.gestures.values() if g.source == str(plugin.PACK_PATH)]
    assert len(ours) >= 10 and all(g.id.startswith("insurance_") for g in ours)
    assert all(r.id.startswith("insurance.") for r in book.rules)
    assert plugin.PACK_PATH.parent == Path(plugin.__file__).parent
    assert book.gestures["insurance_refer_realtor"].source == str(plugin.PACK_PATH)


def test_loads_next_to_the_shipped_core_packs_without_warnings(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({"life_events": ["home_purchase"]}))
    assert not result.warnings, result.warnings
    assert "insurance_refer_realtor" in with_core.rulebook_for(AGENCY).gestures


# -- the trade it serves -------------------------------------------------------------


@pytest.mark.parametrize("vertical", [None, "banking", "auto_repair"])
def test_applies_only_to_insurance_businesses(rec: Recommender, vertical: str | None) -> None:
    # a plugin that declares its verticals is not in another business's rulebook at all
    assert not [g for g in rec.rulebook_for(Business(vertical=vertical)).gestures if g.startswith("insurance_")]
    result = rec.recommend(ctx({"tenure_years": 9, "life_events": ["home_purchase"], "consents": [CONSENT]},
                               vertical=vertical))
    assert offered(result) == [] and not held(result)


# -- issue codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code, family", [
    ("policy_review", "routine"), ("policy_change", "routine"), ("address_change", "routine"),
    ("claim", "routine"), ("fnol", "routine"), ("claim_delay", "delay"), ("claim_denied", "complaint"),
    ("billing_question", "information_request"), ("general_enquiry", "information_request"),
    ("claim_status", "information_request"),  # the core's code
])
def test_issue_codes_are_in_their_families(rec: Recommender, code: str, family: str) -> None:
    result = rec.recommend(ctx({}, issue=code))
    assert result.assessment.family == family
    assert not result.notes and not result.warnings


# -- profile -------------------------------------------------------------------------


def test_profile_defaults_on_an_insurers_scale(rec: Recommender) -> None:
    agency, _ = rec.profile_for(AGENCY)
    assert (agency.loyal_tenure_years, agency.high_value, agency.major_amount) == (5, 5000, 1000)
    other, _ = rec.profile_for(Business(vertical="banking"))  # the plugin does not serve it
    assert (other.loyal_tenure_years, other.high_value) == (3, 2000)
    configured = plugin_recommender(plugin, profiles={"default": {"loyal_tenure_years": 10}})
    assert configured.profile_for(AGENCY)[0].loyal_tenure_years == 10  # configuration wins


def test_money_at_stake_counts_on_an_insurers_scale(rec: Recommender) -> None:
    small = rec.recommend(ctx({}, issue="claim_delay", amount=400))
    big = rec.recommend(ctx({}, issue="claim_delay", amount=4000))
    assert big.assessment.severity == small.assessment.severity + 1  # from 1000 at an insurer, not 100


#: The agency's signature moments: life events, with and without consent on file.
#: (``max_extras`` below only matters for the core packs' extras: the agency's gestures are meet.)
SIGNATURE = {
    "home purchase, no consent": {"life_events": ["home_purchase"]},
    "home purchase, consent": {"life_events": ["home_purchase"], "consents": [CONSENT]},
    "house hunting, home consent": {"life_events": ["house_hunting"], "consents": [f"{CONSENT}.home"]},
    "retirement, no consent": {"life_events": ["retirement"]},
    "retirement, consent": {"life_events": ["retirement"], "consents": [CONSENT]},
    "new baby, consent": {"life_events": ["new_baby"], "consents": [CONSENT]},
    "new car": {"life_events": ["new_car"]},
    "everything at once": {"life_events": ["home_purchase", "new_baby", "retirement", "new_car"]},
    "everything at once, consent": {"life_events": ["home_purchase", "new_baby", "retirement", "new_car"],
                                    "consents": [CONSENT]},
}


@pytest.mark.parametrize("customer", list(SIGNATURE.values()), ids=list(SIGNATURE))
@pytest.mark.parametrize("max_extras", [3, 10])  # 10: no cap to hide a second one
def test_with_the_core_packs_each_kind_comes_back_once(with_core: Recommender, customer: dict[str, Any],
                                                       max_extras: int) -> None:
    result = with_core.recommend(ctx({"name": "Aino", "tenure_years": 3, **customer}), max_extras=max_extras)
    assert not same_kind(result), (same_kind(result), offered(result))


#: recommender/examples/03: an insurance client buying a home, consent on file.
HOME_BUYER = {"name": "Aino", "tenure_years": 3, "lifetime_value": 1800, "life_events": ["home_purchase"],
              "consents": [CONSENT]}


def test_a_home_buyer_with_consent_is_referred_to_a_realtor(rec: Recommender, with_core: Recommender) -> None:
    """The signature case: every time (meet), not as a drawn extra; with or without the core packs."""
    for recommender in (rec, with_core):
        for i in range(30):
            result = recommender.recommend(ctx({**HOME_BUYER, "id": f"c-{i}"}, channel="in_person",
                                               occurred_at="2025-04-01T10:00:00"))
            realtor = rec_for(result, "insurance_refer_realtor")
            assert realtor.tier == "meet" and realtor.category == "referral"
            assert realtor.follow_up_days == 7


def test_with_the_core_packs_a_home_buyer_hears_the_agency_once(with_core: Recommender) -> None:
    # recommender/examples/03: consent on file, the default listing (two meet gestures)
    result = with_core.recommend(ctx(HOME_BUYER))
    assert {"insurance_refer_realtor", "insurance_home_coverage_review"} <= set(offered(result))
    assert held(result)["insurance_refer_mortgage_lender"] == "listing_cap"  # matched, ranks third
    assert held(result)["refer_realtor_or_lender"] in ("vetoed", "extras_rate", "listing_cap")  # never listed beside ours
    book = with_core.rulebook_for(AGENCY)
    assert book.gestures["insurance_home_coverage_review"].exclusive_group == "home_coverage"
    assert book.gestures["home_coverage_review"].exclusive_group == "home_coverage"  # the core joins
    assert held(result)["home_coverage_review"] == "exclusive_group"
    asking = with_core.recommend(ctx({"life_events": ["home_purchase"]}), max_extras=10)
    assert {"insurance_ask_consent_home_purchase", "insurance_home_coverage_review"} <= set(offered(asking))
    assert held(asking)["ask_referral_consent"] in ("vetoed", "extras_rate", "listing_cap")
    assert held(asking)["home_coverage_review"] in ("vetoed", "exclusive_group")


# -- consent first: both directions --------------------------------------------------


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_without_consent_we_ask_and_never_refer(rec: Recommender, event: str) -> None:
    ask, _, _ = EVENTS[event]
    result = rec.explain(ctx({"name": "Kim", "tenure_years": 2, "life_events": [event]}))
    assert asks(offered(result)) == {ask}
    assert not refers(offered(result))
    assert not refers(list(held(result)))  # not even matched-and-withheld: no rule proposed it
    question = next(r for r in result.recommendations if r.gesture_id == ask)
    assert "Kim" in question.script and "?" in question.script
    assert "consent" in question.agent_reason


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_with_consent_we_refer_and_never_ask(rec: Recommender, event: str) -> None:
    _, referrals, _ = EVENTS[event]
    result = rec.recommend(ctx({"tenure_years": 2, "life_events": [event], "consents": [CONSENT]}))
    assert refers(matched(result)) == referrals  # listed, or below the listing cap
    assert refers(offered(result))  # the first referral is always listed
    assert not asks(offered(result)) and not asks(list(held(result)))
    for r in result.recommendations:
        if r.gesture_id in referrals:
            assert r.category == "referral" and r.follow_up_days
    assert {held(result)[g] for g in referrals - set(offered(result))} <= {"listing_cap"}


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_scoped_consent_covers_its_scope_only(rec: Recommender, event: str) -> None:
    ask, referrals, scope = EVENTS[event]
    mine = rec.recommend(ctx({"life_events": [event], "consents": [f"{CONSENT}.{scope}"]}))
    assert refers(matched(mine)) == referrals and not asks(matched(mine))
    other_scope = next(s for s in ("home", "family", "retirement") if s != scope)
    other = rec.recommend(ctx({"life_events": [event], "consents": [f"{CONSENT}.{other_scope}"]}))
    assert not refers(matched(other)) and asks(offered(other)) == {ask}


def test_unrelated_consent_is_not_partner_consent(rec: Recommender) -> None:
    result = rec.recommend(ctx({"life_events": ["home_purchase"], "consents": ["marketing_email"]}))
    assert not refers(offered(result))
    assert asks(offered(result)) == {"insurance_ask_consent_home_purchase"}


def test_a_remembered_no_is_respected(rec: Recommender) -> None:
    result = rec.recommend(ctx({"life_events": ["home_purchase", "retirement"],
                                "preferences": {CONSENT: False}}))
    assert not asks(offered(result)) and not refers(offered(result))
    assert "insurance_home_coverage_review" in offered(result)  # our own cover needs no partner consent


def test_conflicting_records_never_refer(rec: Recommender) -> None:
    # consent on file, but the client said no since: the refer rules test "not declined" too
    conflicting = ctx({"life_events": ["home_purchase"], "consents": [CONSENT], "preferences": {CONSENT: False}})
    result = rec.explain(conflicting)
    assert not refers(offered(result)) and not asks(offered(result))
    assert "insurance.home-refer" not in result.rules_matched
    # and should a rule elsewhere ignore that, the guard vetoes it
    guarded = plugin_recommender(plugin, RoguePack(), profiles=ROOMY)
    assert held(guarded.recommend(conflicting))["insurance_refer_realtor"] == "vetoed"


def test_only_one_consent_question_per_conversation(rec: Recommender) -> None:
    result = rec.recommend(ctx({"life_events": ["home_purchase", "new_baby"]}), max_extras=5)
    assert asks(offered(result)) == {"insurance_ask_consent_home_purchase"}
    assert "exclusive_group" in {held(result).get(g) for g in ("insurance_ask_consent_home_purchase",
                                                               "insurance_ask_consent_new_baby")}


def test_every_refer_rule_tests_consent_in_every_branch(rec: Recommender) -> None:
    """Static check over the compiled rulebook: no path to a referral skips the consent test."""
    refer_rules = ask_rules = 0
    for rule in rec.rulebook_for(AGENCY).rules:
        for gid in rule.gesture_ids:
            if gid.startswith("insurance_refer_"):
                refer_rules += 1
                ok = {CONSENT, f"{CONSENT}.{plugin.REFERRAL_SCOPES[gid]}"}
                for branch in rule.branches:
                    assert any(a.field == "customer.consents" and a.op == "contains" and a.value in ok
                               for a in branch), (rule.id, branch)
                    assert any(a.field == "customer.attributes.partner_referrals_declined" and a.op == "eq"
                               and a.value is False for a in branch), (rule.id, branch)
            if gid.startswith("insurance_ask_consent_"):
                ask_rules += 1
                for branch in rule.branches:
                    tests = {(a.field, a.op, a.value) for a in branch}
                    assert ("customer.consents", "not_contains", CONSENT) in tests, rule.id
                    assert ("customer.attributes.partner_referrals_declined", "eq", False) in tests, rule.id
    assert refer_rules >= 4 and ask_rules >= 3
    # every scope that can be referred can also be asked about
    scopes_referred = set(plugin.REFERRAL_SCOPES.values())
    assert scopes_referred == {EVENTS[e][2] for e in EVENTS}


# -- the consent guard (adjust hook) -------------------------------------------------


ROGUE = {"pack": "hand-edited", "rules": [
    {"id": "rogue-refer-realtor", "when": "customer.life_events contains home_purchase",
     "then": "insurance_refer_realtor", "because": "Someone forgot the consent test."}]}


class RoguePack:
    """Another agency plugin whose hand-edited rule refers without testing consent. (A pack
    given with ``packs=`` cannot use our gestures: it is in every business's rulebook, and
    ours are only in an insurance business's.)"""

    name = "rogue_agency_pack"

    @hookimpl
    def recommender_declare_verticals(self) -> list[str]:
        return ["insurance"]

    @hookimpl
    def recommender_register_rule_packs(self, register: Any) -> None:
        register(ROGUE)


def test_guard_vetoes_a_referral_proposed_without_consent() -> None:
    guarded = plugin_recommender(plugin, RoguePack(), profiles=ROOMY)
    result = guarded.recommend(ctx({"life_events": ["home_purchase"]}))
    assert "insurance_refer_realtor" not in offered(result)
    veto = next(w for w in result.withheld if w.gesture_id == "insurance_refer_realtor")
    assert veto.reason == "vetoed" and NAME in veto.detail and veto.rules == ["rogue-refer-realtor"]
    assert "insurance_ask_consent_home_purchase" in offered(result)
    granted = guarded.recommend(ctx({"life_events": ["home_purchase"], "consents": [CONSENT]}))
    assert "insurance_refer_realtor" in offered(granted)


OTHER_REFERRAL = {"pack": "general-referrals", "gestures": [
    {"id": "general_refer_realtor", "title": "Refer to a realtor", "category": "referral", "tier": "meet",
     "cost": 0, "script": "I can put you in touch with a realtor."}],
    "rules": [{"id": "general-home-referral", "when": "customer.life_events contains home_purchase",
               "then": "general_refer_realtor", "because": "Go the extra mile."}]}


def test_guard_holds_other_packs_referrals_until_consent() -> None:
    both = plugin_recommender(plugin, packs=[OTHER_REFERRAL], profiles=ROOMY)
    asking = both.recommend(ctx({"life_events": ["home_purchase"]}))
    assert "insurance_ask_consent_home_purchase" in offered(asking)
    assert held(asking)["general_refer_realtor"] == "vetoed"
    declined = both.recommend(ctx({"life_events": ["home_purchase"], "preferences": {CONSENT: False}}))
    assert held(declined)["general_refer_realtor"] == "vetoed"
    consented = both.recommend(ctx({"life_events": ["home_purchase"], "consents": [CONSENT]}))
    assert "general_refer_realtor" in offered(consented)  # consent given: not ours to block


# -- enrichment ----------------------------------------------------------------------


def test_enrich_returns_data_and_never_mutates() -> None:
    c = parse_context(ctx({"tenure_years": 7, "life_events": ["new_baby"], "preferences": {CONSENT: False},
                           "attributes": {"days_since_policy_review": 400}}))
    before = copy.deepcopy(c.model_dump())
    updates = plugin.recommender_enrich_context(c)
    assert c.model_dump() == before
    assert updates == {"interaction": {"attributes": {"insurance_line": "policy"}},
                       "customer": {"attributes": {"partner_referrals_declined": True, "policy_review_due": True}}}


def test_enrich_defaults() -> None:
    c = parse_context(ctx({"tenure_years": 7, "life_events": ["home_purchase"],
                           "attributes": {"days_since_policy_review": 30}}))
    assert plugin.recommender_enrich_context(c) == {
        "interaction": {"attributes": {"insurance_line": "policy"}},
        "customer": {"attributes": {"partner_referrals_declined": False, "policy_review_due": False}}}
    assert plugin.recommender_enrich_context(parse_context(ctx({}))) == {
        "interaction": {"attributes": {"insurance_line": "policy"}}}
    assert plugin.recommender_enrich_context(parse_context(ctx({"tenure_years": 9}, vertical="fitness"))) is None


@pytest.mark.parametrize("vertical, issue, line", [
    (None, "claim_status", "claims"),            # single-business install: known insurance issue
    (None, "flat_tire", None),                   # not ours
    ("insurance", "general_enquiry", "general"), # any issue at an agency
    ("auto_repair", "policy_review", None),      # another trade
])
def test_line_marks_insurance_interactions_only(vertical: str | None, issue: str, line: str | None) -> None:
    updates = plugin.recommender_enrich_context(parse_context(ctx({"tenure_years": 9}, vertical=vertical, issue=issue)))
    assert (updates or {}).get("interaction", {}).get("attributes", {}).get("insurance_line") == line


def test_no_insurance_gestures_at_another_trade(rec: Recommender) -> None:
    # a car shop's long-standing customer who just bought a car and a house, consent on file
    customer = {"tenure_years": 9, "life_events": ["new_car", "home_purchase"], "consents": [CONSENT]}
    assert rec.recommend(ctx(customer, vertical=None, issue="flat_tire", cost=25)).gesture_ids() == []
    assert rec.recommend(ctx(customer, vertical="auto_repair", issue="oil_change")).gesture_ids() == []


def test_no_vertical_means_not_an_insurance_business_unless_configured(rec: Recommender) -> None:
    # the plugin declares the vertical insurance: a business that sends no vertical is not
    # known to be an agency, so the plugin does not apply to it ...
    assert rec.recommend(ctx({"life_events": ["retirement"]}, vertical=None)).gesture_ids() == []
    # ... unless the configuration selects it: a single-agency install that sends no vertical
    single = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    result = single.recommend(ctx({"life_events": ["retirement"]}, vertical=None))
    assert asks(offered(result)) == {"insurance_ask_consent_retirement"}
    # there, a known insurance issue is what marks the interaction as the agency's
    assert single.recommend(ctx({"life_events": ["retirement"]}, vertical=None, issue="flat_tire")).gesture_ids() == []


def test_without_enrichment_the_ask_stays_silent() -> None:
    # another trade's context (the plugin configured for every business): the enricher does
    # not run, so "not declined" is unknown and nobody is asked
    other = plugin_recommender(plugin, plugin_config={"default": [NAME]})
    result = other.recommend(ctx({"life_events": ["home_purchase"]}, vertical="bakery"))
    assert not asks(matched(result)) and not refers(matched(result))


# -- the client's own cover ----------------------------------------------------------


def test_new_car_gets_an_auto_coverage_review_not_a_referral(rec: Recommender) -> None:
    result = rec.recommend(ctx({"life_events": ["new_car"]}))
    assert offered(result) == ["insurance_auto_coverage_review"]


def test_new_baby_gets_a_life_cover_review(rec: Recommender) -> None:
    assert "insurance_life_cover_review" in offered(rec.recommend(ctx({"life_events": ["new_baby"]})))


def test_loyal_client_gets_a_policy_review_when_due(rec: Recommender) -> None:
    due = rec.recommend(ctx({"name": "Pat", "tenure_years": 8}, issue="billing_question"))
    review = rec_for(due, "insurance_policy_review")
    assert review.script.startswith("You've been with us 8 years, so let's set up a review")
    assert review.tier == "meet" and review.follow_up_days == 14
    recent = rec.recommend(ctx({"tenure_years": 8, "attributes": {"days_since_policy_review": 90}}, issue="billing_question"))
    assert "insurance_policy_review" not in matched(recent)
    newer = rec.recommend(ctx({"tenure_years": 4}, issue="billing_question"))  # loyal from 5 years at an insurer
    assert "insurance_policy_review" not in matched(newer)


def test_policy_change_fee_waived_for_loyal_clients(rec: Recommender) -> None:
    waived = rec.recommend(ctx({"name": "Pat", "tenure_years": 6}, issue="address_change", cost=20))
    waiver = rec_for(waived, "insurance_waive_policy_change_fee")
    assert waiver.tier == "meet" and waiver.script.startswith("There's no admin fee for this change, Pat")
    assert "insurance_waive_policy_change_fee" in offered(
        rec.recommend(ctx({"tenure_years": 1, "lifetime_value": 6000}, issue="policy_change", cost=20)))  # high-value
    assert "insurance_waive_policy_change_fee" not in matched(
        rec.recommend(ctx({"tenure_years": 4}, issue="policy_change", cost=20)))


def test_a_fee_above_the_servers_money_limit_goes_to_approval_with_its_script(rec: Recommender) -> None:
    trainee = rec.recommend(ctx({"tenure_years": 6}, staff="synthetic", issue="policy_change", cost=20))
    ask = next(w for w in trainee.needs_approval if w.gesture_id == "insurance_waive_policy_change_fee")
    assert "10.00 USD" in ask.detail and ask.script.startswith("There's no admin fee for this change")
    assert held(rec.recommend(ctx({"tenure_years": 6}, issue="policy_change", cost=80)))[
        "insurance_waive_policy_change_fee"] == "needs_approval"


def test_with_the_core_packs_an_admin_fee_is_waived_once(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({"tenure_years": 6}, issue="policy_change", cost=20))
    assert "insurance_waive_policy_change_fee" in offered(result)
    assert "waive_small_fee" not in offered(result)


# -- claims --------------------------------------------------------------------------


def test_delayed_claim_gets_a_proactive_update(rec: Recommender) -> None:
    result = rec.recommend(ctx({}, issue="claim_status", delay_days=3))
    assert offered(result) == ["insurance_claim_status_update"]
    update = result.recommendations[0]
    assert update.follow_up_days == 2
    assert update.script.startswith("I'm sorry your claim is taking longer than it should: it is 3 days behind.")
    assert offered(rec.recommend(ctx({}, issue="claim_status", delay_days=1))) == []
    # a claim the client reports as delayed, without a count: the script says no number
    told = rec.recommend(ctx({}, issue="claim_delay"))
    assert told.assessment.family == "delay"
    assert rec_for(told, "insurance_claim_status_update").script.startswith(
        "I'm sorry your claim is taking longer than it should. Here's")


def test_with_the_core_packs_a_delayed_claim_gets_one_status_update(with_core: Recommender) -> None:
    result = with_core.recommend(ctx({}, issue="claim", delay_days=4))
    assert "insurance_claim_status_update" in offered(result)
    assert held(result)["proactive_status_update"] == "exclusive_group"
    assert "acknowledge_and_own" in offered(result)  # a late claim is a negative experience: the core apologises


def test_no_call_backs_when_the_issue_is_how_we_contact_the_client(rec: Recommender) -> None:
    # a loyal client, review due, complains about our calls: no gesture that contacts them again
    result = rec.recommend(ctx({"tenure_years": 9}, issue="too_many_calls"))
    assert result.assessment.family == "contact_preference"
    assert held(result)["insurance_policy_review"] == "contact_preference"
    book = rec.rulebook_for(AGENCY)
    for gid in ("insurance_claim_status_update", "insurance_claim_escalation", "insurance_policy_review",
                "insurance_refer_realtor"):
        assert book.gestures[gid].contacts_customer, gid


def test_long_delayed_claim_escalation_needs_super_authority(rec: Recommender) -> None:
    genuine = rec.recommend(ctx({}, staff="genuine", issue="claim", delay_days=12))
    assert held(genuine)["insurance_claim_escalation"] == "needs_approval"
    assert "insurance_claim_status_update" in offered(genuine)
    senior = rec.recommend(ctx({}, staff="super", issue="claim", delay_days=12))
    assert offered(senior)[0] == "insurance_claim_escalation"


def test_a_disputed_claim_goes_to_a_senior_adjuster(rec: Recommender) -> None:
    disputed = rec.recommend(ctx({}, staff="super", issue="claim", escalated=True))
    assert "insurance_claim_escalation" in offered(disputed)
    assert "insurance_claim_escalation" not in matched(rec.recommend(ctx({}, staff="super", issue="claim")))


def test_a_denied_claim_is_explained_with_the_way_to_a_review(rec: Recommender) -> None:
    result = rec.recommend(ctx({"name": "Pat"}, issue="claim_denied"))
    assert result.assessment.family == "complaint" and result.assessment.severity >= 1
    explain = rec_for(result, "insurance_explain_claim_decision")
    assert explain.tier == "meet" and "reviewed" in explain.script


# -- scripts -------------------------------------------------------------------------


#: A sample value for every placeholder the agency's scripts use.
SAMPLE = {"customer.name": "Aino", "customer.tenure_years": 6, "interaction.delay_days": 3}


def test_every_script_reads_true_with_and_without_its_optional_fields(rec: Recommender) -> None:
    for gesture in rec.rulebook_for(AGENCY).gestures.values():
        if gesture.id.startswith("insurance_"):
            assert script_problems(gesture.script, SAMPLE) == [], gesture.id
            assert script_problems(gesture.script, {**SAMPLE, "customer.tenure_years": 1,
                                                    "interaction.delay_days": 1}) == [], gesture.id


def test_follow_up_gestures_are_marked_as_contacting_the_customer(rec: Recommender) -> None:
    for gesture in rec.rulebook_for(AGENCY).gestures.values():
        if gesture.id.startswith("insurance_") and gesture.follow_up_days:
            assert gesture.contacts_customer, gesture.id


# -- outcome observer ----------------------------------------------------------------


def test_ledger_counts_consent_asks_and_referrals(rec: Recommender, with_core: Recommender, store: Any) -> None:
    home = decide(rec, store, ctx({"life_events": ["home_purchase"]}),
                  "insurance_ask_consent_home_purchase", "insurance_home_coverage_review")
    retiring = decide(rec, store, ctx({"life_events": ["retirement"]}), "insurance_ask_consent_retirement")
    consented = decide(rec, store, ctx({"life_events": ["home_purchase"], "consents": [CONSENT]}),
                       "insurance_refer_realtor")
    # a core referral, not ours: a bank's client (the plugin stays out of another trade); the
    # core's referral is an extra, so take the first of the bank's clients the draw falls on
    bank = next(r.decision_id for r in (
        with_core.recommend(ctx({"id": f"b-{i}", "life_events": ["home_purchase"], "consents": [CONSENT]},
                                vertical="banking", issue="account_review", occurred_at="2025-04-01T10:00:00"),
                            store=store) for i in range(200)) if "refer_realtor_or_lender" in r.gesture_ids())
    assert bank
    # the plugin serves the vertical insurance: its observer hears an agency's outcomes (the host
    # reads the vertical from the decision only with PluginConfig.verticals: pass it)
    for i, (decision_id, gid, outcome) in enumerate([
        (home, "insurance_ask_consent_home_purchase", "offered"),
        (home, "insurance_ask_consent_home_purchase", "accepted"),
        (retiring, "insurance_ask_consent_retirement", "offered"),
        (retiring, "insurance_ask_consent_retirement", "declined"),
        (consented, "insurance_refer_realtor", "delivered"),
        (home, "insurance_home_coverage_review", "accepted"),  # not a referral: not counted
        (bank, "refer_realtor_or_lender", "delivered"),         # not ours: not counted
    ]):
        rec.record_outcome(store, decision_id, gid, outcome, idempotency_key=f"k{i}", vertical="insurance")
    # the store saw everything; the plugin only observes
    assert sum(len(store.get_decision(d).outcomes) for d in (home, retiring, consented, bank)) == 7
    report = plugin.LEDGER.report()
    assert report["consent_asked"] == 2
    assert report["consent_given"] == 1 and report["consent_refused"] == 1
    assert report["consent_rate"] == 0.5
    assert report["referrals_made"] == 1
    assert set(report["by_gesture"]) == {"insurance_ask_consent_home_purchase", "insurance_ask_consent_retirement",
                                         "insurance_refer_realtor"}
    assert plugin.LEDGER.report("other-agency")["consent_asked"] == 0


# -- discovery through the entry point -----------------------------------------------


def _installed() -> bool:
    return any(ep.name == EP_NAME for ep in importlib.metadata.entry_points(group="recommender"))


@pytest.mark.skipif(not _installed(), reason="not pip-installed: pip install -e plugins/insurance")
def test_installed_plugin_is_autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
    default = Recommender()
    info = {i["name"]: i for i in default.plugin_info()}[EP_NAME]
    assert info["source"] == "entrypoint"
    no_consent = default.recommend(ctx({"life_events": ["home_purchase"]}))
    assert "insurance_ask_consent_home_purchase" in no_consent.gesture_ids()
    assert not refers(no_consent.gesture_ids())
    assert "insurance_refer_realtor" in default.recommend(ctx(HOME_BUYER)).gesture_ids()
    # not an agency: not the agency's rules
    assert not [g for g in default.recommend(ctx(HOME_BUYER, vertical=None)).gesture_ids()
                if g.startswith("insurance_")]


class TestTrade(TradePluginTests):
    """What every one-trade plugin is tested for (recommender.testing.TradePluginTests)."""

    plugin = plugin
    root = PLUGIN_ROOT
    entry_point = EP_NAME
    distribution = "recommender-insurance"
    prefix = "insurance_"
    marker = "interaction.attributes.insurance_line"
    signature = (ctx(HOME_BUYER), "insurance_refer_realtor")
    # the scope table's codes, and the codes these tests use
    issues_used = (*plugin.LINES, "account_review", "general_enquiry")
