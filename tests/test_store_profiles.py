"""Issue 14, store side: a tenant's own profile (the last layer), value and tenure percentiles
among the business's own customers, and the realised extras rate steering the draw, each on
SQLite and PostgreSQL, with replays that stay exact."""

from __future__ import annotations

import time
from typing import Any

import pytest
from memory_fixtures import NOW, FakeClock, clock, db_url, make_store, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import select

from recommender import Recommender, parse_context
from recommender.backtest.decisions import ReplayMemory, iter_decisions, replay_context
from recommender.extras import draw
from recommender.issues import Assessment
from recommender.memory import InvalidStoreInput, Policy
from recommender.memory.models import CustomerProfileRow, Decision
from recommender.profile import Profile

PACK: dict[str, Any] = {
    "pack": "profiles",
    "version": "1",
    "gestures": [
        {"id": "loyal_thanks", "title": "Thank a loyal customer", "category": "personal_touch", "tier": "meet",
         "cost": 0, "script": "Thank you for staying with us."},
        {"id": "vip_tea", "title": "Tea for a valued customer", "category": "personal_touch", "tier": "meet",
         "cost": 0, "script": "Have a cup of tea on us."},
        {"id": "care_tip", "title": "A care tip", "category": "information", "tier": "meet", "cost": 0,
         "script": "A tip for next time."},
        {"id": "surprise", "title": "A small surprise", "category": "freebie", "tier": "exceed", "cost": 0,
         "script": "Something extra for you today."},
    ],
    "rules": [
        {"id": "loyal", "when": "customer.loyal eq true", "then": "loyal_thanks", "priority": 90,
         "because": "Loyalty noticed."},
        {"id": "valued", "when": "customer.high_value eq true", "then": "vip_tea", "priority": 80,
         "because": "Value noticed."},
        {"id": "tip", "when": "interaction.issue eq visit", "then": "care_tip", "because": "Teach something."},
        {"id": "extra", "when": "interaction.issue eq visit", "then": "surprise", "because": "The rare extra."},
    ],
}

#: Caches off (every read goes to the database), unless a test is about the caches.
FRESH = {"profile_cache_seconds": 0, "percentiles": {"refresh_seconds": 0}, "extras_steer": {"refresh_seconds": 0}}
WHEN = "2025-06-01T12:00:00Z"


def visit(customer: str | None, tenant: str = "gym", **fields: Any) -> dict[str, Any]:
    c = {"id": customer, **fields} if customer else dict(fields)
    return {"customer": c, "interaction": {"issue": "visit", "occurred_at": WHEN}, "business": {"id": tenant}}


@pytest.fixture(scope="module")
def rec() -> Recommender:
    return Recommender([], packs=[PACK], autoload=False)


def fresh(make_store: Any, **policy: Any) -> Any:
    return make_store(policy=Policy.model_validate({**FRESH, **policy}))


# -- a tenant's own profile ----------------------------------------------------------------


def test_a_stored_profile_is_validated_kept_by_revision_and_cleared(make_store: Any, clock: FakeClock) -> None:
    store = fresh(make_store)
    assert store.tenant_profile("gym") is None
    first = store.set_tenant_profile("gym", {"loyal_tenure_years": 1, "money_limits": {"genuine": 80}},
                                     updated_by="key:ops")
    assert (first.revision, first.updated_by, first.updated_at) == (1, "key:ops", NOW)
    assert first.profile == {"loyal_tenure_years": 1.0, "money_limits": {"genuine": 80.0}}  # only the keys set
    assert store.tenant_profile("gym") == first
    assert store.tenant_profile("other") is None  # per tenant
    clock.advance(hours=1)
    second = store.set_tenant_profile("gym", {"high_value": 600}, updated_by="key:ops")
    assert second.revision == 2 and second.profile == {"high_value": 600.0}  # replaces the whole layer
    assert store.tenant_profile_revision("gym", 1) == first  # earlier revisions stay
    assert store.delete_tenant_profile("gym", updated_by="cli:amy") is True
    assert store.tenant_profile("gym") is None
    assert store.delete_tenant_profile("gym", updated_by="cli:amy") is False  # nothing to clear
    assert store.set_tenant_profile("gym", {}, updated_by="x").revision == 4


@pytest.mark.parametrize(("layer", "field", "message"), [
    ({"loyal_tenur_years": 2}, "profile.loyal_tenur_years", "unknown profile key (did you mean 'loyal_tenure_years'?)"),
    ({"extras_rate": 2}, "profile.extras_rate", "less than or equal to 1"),
    ({"money_limits": {"genuin": 5}}, "profile.money_limits.genuin", "did you mean 'genuine'?"),
    ({"money_limits": {"synthetic": 500}}, "profile.money_limits", "must not fall with authority"),
    ({"currency": "usd"}, "profile.currency", "should match pattern"),
    (["loyal_tenure_years"], "profile", "a profile is a mapping"),
    ({"extras_key": "a\u0000b"}, "profile.extras_key", "NUL"),
])
def test_an_invalid_profile_names_the_key_and_stores_nothing(make_store: Any, layer: Any, field: str,
                                                            message: str) -> None:
    store = fresh(make_store)
    kept = store.set_tenant_profile("gym", {"high_value": 600}, updated_by="ops")
    with pytest.raises(InvalidStoreInput) as err:
        store.set_tenant_profile("gym", layer, updated_by="ops")
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ") and message in str(err.value)
    assert store.tenant_profile("gym") == kept  # nothing stored, nothing lost


def test_a_profile_is_checked_over_the_layers_under_it(make_store: Any) -> None:
    store = fresh(make_store)
    config = {"money_limits": {"genuine": 200, "super": 500}}
    # over the defaults alone a synthetic limit of 150 would exceed the genuine one (50) ...
    with pytest.raises(InvalidStoreInput, match="must not fall with authority"):
        store.set_tenant_profile("gym", {"money_limits": {"synthetic": 150}}, updated_by="ops")
    # ... over the service's configuration it fits
    assert store.set_tenant_profile("gym", {"money_limits": {"synthetic": 150}}, updated_by="ops",
                                    base=[config]).revision == 1


def test_the_stored_profile_is_the_last_layer_of_recommendations(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    member = visit("m-1", tenure_years=1.5)
    assert "loyal_thanks" not in rec.recommend(member, store=store).gesture_ids()  # 3 years by default
    stored = store.set_tenant_profile("gym", {"loyal_tenure_years": 1, "listing": {"meet": 1}}, updated_by="ops")
    result = rec.recommend(member, store=store)
    assert result.gesture_ids() == ["loyal_thanks"]  # loyal on the gym's scale; one meet gesture listed
    assert any(w.gesture_id == "care_tip" and w.reason == "listing_cap" for w in result.withheld)
    assert store.get_decision(result.decision_id).profile_revision == stored.revision
    assert "loyal_thanks" not in rec.recommend(member).gesture_ids()  # without a store: no stored layer
    assert "loyal_thanks" not in rec.recommend(visit("m-1", tenant="bank", tenure_years=1.5),
                                               store=store).gesture_ids()  # another tenant: its own layers
    store.delete_tenant_profile("gym", updated_by="ops")
    after = rec.recommend(member, store=store)
    assert "loyal_thanks" not in after.gesture_ids()
    assert store.get_decision(after.decision_id).profile_revision is None


def test_a_stored_layer_that_no_longer_fits_is_left_out_with_a_warning(make_store: Any) -> None:
    store = fresh(make_store)
    config = {"money_limits": {"genuine": 200, "super": 500}}
    store.set_tenant_profile("gym", {"money_limits": {"synthetic": 150}}, updated_by="ops", base=[config])
    configured = Recommender([], packs=[PACK], autoload=False, profiles={"default": config})
    assert configured.profile_for(parse_context(visit("m-1")).business,
                                  store.tenant_profile("gym"))[0].limit_for("synthetic") == 150
    plain = Recommender([], packs=[PACK], autoload=False)  # the configuration changed since
    result = plain.recommend(visit("m-1"), store=store)
    assert "care_tip" in result.gesture_ids()  # recommended on the layers under it
    warning = next(w for w in result.warnings if w.hook == "tenant_profile")
    assert "revision 1" in warning.message and "must not fall with authority" in warning.message


def test_a_write_applies_at_once_here_and_within_the_cache_time_on_another_server(
        make_store: Any, rec: Recommender) -> None:
    here = make_store(policy=Policy(profile_cache_seconds=30))
    there = make_store(policy=Policy(profile_cache_seconds=30))  # a second server on the same database
    member = visit("m-1", tenure_years=1.5)
    assert "loyal_thanks" not in rec.recommend(member, store=here).gesture_ids()
    assert "loyal_thanks" not in rec.recommend(member, store=there).gesture_ids()  # cached there now
    here.set_tenant_profile("gym", {"loyal_tenure_years": 1}, updated_by="ops")
    assert "loyal_thanks" in rec.recommend(member, store=here).gesture_ids()  # invalidated on write
    assert there.profile_layer("gym") is None  # still the cached answer ...
    expires, kept = there._cache[("profile", "gym")]
    assert 0 < expires - time.monotonic() <= 30
    there._cache[("profile", "gym")] = (time.monotonic(), kept)  # as if the 30 seconds had passed
    assert there.profile_layer("gym") is not None  # ... until the cache time has passed
    assert "loyal_thanks" in rec.recommend(member, store=there).gesture_ids()


# -- percentiles of the business's own customers -----------------------------------------------


def _population(rec: Recommender, store: Any, tenant: str, tenures: list[float], value: float = 10.0) -> None:
    """One logged visit per customer, stating their tenure and lifetime value."""
    for i, years in enumerate(tenures):
        rec.recommend(visit(f"{tenant}-{i}", tenant=tenant, tenure_years=years, lifetime_value=value * (i + 1)),
                      store=store)


def _facts(store: Any, tenant: str) -> dict[str, tuple[Any, Any]]:
    t = CustomerProfileRow.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.customer_id, t.c.lifetime_value, t.c.tenure_since)
                            .where(t.c.tenant == tenant)).all()
    return {r.customer_id: (r.lifetime_value, r.tenure_since) for r in rows}


def test_percentiles_make_a_customer_loyal_on_the_business_s_own_scale(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(25)])  # a young gym: 0.1 to 2.5 years
    _population(rec, store, "bank", [5.0 + i for i in range(25)])      # an old bank: 5 to 29 years
    assert len(_facts(store, "gym")) == 25
    veteran = visit("gym-23", tenure_years=2.4, lifetime_value=240)  # the gym's 24th of 25 by tenure and value
    enriched = store.enrich(parse_context(veteran))["customer"]
    assert enriched["tenure_percentile"] == 92.0 and enriched["value_percentile"] == 92.0
    result = rec.recommend(veteran, store=store)
    assert {"loyal_thanks", "vip_tea"} <= set(result.gesture_ids())  # loyal and high-value at the gym
    assert not {"loyal_thanks", "vip_tea"} & set(rec.recommend(veteran).gesture_ids())  # by the constants: neither
    # the same 2.4 years at the bank is the bottom of its scale
    banker = visit("b-new", tenant="bank", tenure_years=2.4, lifetime_value=5)
    standing = store.enrich(parse_context(banker))["customer"]
    assert standing["tenure_percentile"] == 0.0 and standing["value_percentile"] == 0.0
    assert "loyal_thanks" not in rec.recommend(banker, store=store).gesture_ids()
    # a newcomer at the gym is not loyal there either
    assert store.enrich(parse_context(visit("g-new", tenure_years=0.05)))["customer"]["tenure_percentile"] == 0.0


def test_stored_facts_give_percentiles_when_the_context_has_none(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(25)])
    enriched = store.enrich(parse_context(visit("gym-24")))["customer"]  # states nothing: the store's facts
    assert enriched["tenure_percentile"] == 96.0 and enriched["value_percentile"] == 96.0
    result = rec.recommend(visit("gym-24"), store=store)
    assert "loyal_thanks" in result.gesture_ids()
    # an anonymous customer stating a value is placed too; one stating nothing is not
    assert store.enrich(parse_context(visit(None, lifetime_value=125)))["customer"] == {"value_percentile": 48.0}
    assert store.enrich(parse_context(visit(None))) == {}
    # what the caller states wins
    given = store.enrich(parse_context(visit("gym-24", tenure_percentile=10)))["customer"]
    assert "tenure_percentile" not in given and given["value_percentile"] == 96.0


def test_a_small_business_gets_no_percentile_unknown_not_a_guess(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(19)])  # 19 < 20 customers
    enriched = store.enrich(parse_context(visit("gym-18", tenure_years=1.9, lifetime_value=190)))
    assert "tenure_percentile" not in enriched.get("customer", {})
    assert "value_percentile" not in enriched.get("customer", {})
    assert "loyal_thanks" not in rec.recommend(visit("gym-18", tenure_years=1.9), store=store).gesture_ids()
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(20)])  # the 20th customer arrives
    assert store.enrich(parse_context(visit("gym-18", tenure_years=1.9)))["customer"]["tenure_percentile"] == 90.0
    small = fresh(make_store, percentiles={"min_customers": 100, "refresh_seconds": 0})
    assert "tenure_percentile" not in small.enrich(parse_context(visit("gym-18", tenure_years=1.9))).get("customer", {})


def test_facts_keep_the_latest_statement_and_go_with_the_customer(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    rec.recommend(visit("m-1", lifetime_value=100, tenure_years=1), store=store)
    later = visit("m-1", lifetime_value=300)
    later["interaction"]["occurred_at"] = "2025-07-01T12:00:00Z"
    rec.recommend(later, store=store)
    value, since = _facts(store, "gym")["m-1"]
    assert value == 300 and since is not None  # the tenure stated earlier stays
    earlier = visit("m-1", lifetime_value=50, tenure_years=9)
    earlier["interaction"]["occurred_at"] = "2025-01-01T12:00:00Z"
    rec.recommend(earlier, store=store)  # a decision dated before the facts kept never overwrites them
    assert _facts(store, "gym")["m-1"][0] == 300
    assert store.customer("gym", "m-1").preferences == {}  # the profile itself is untouched
    store.forget_customer("gym", "m-1")
    assert "m-1" not in _facts(store, "gym")


def test_the_distribution_is_kept_per_process_and_refreshed_in_the_background(make_store: Any,
                                                                            rec: Recommender) -> None:
    store = make_store(policy=Policy.model_validate({"percentiles": {"refresh_seconds": 600}}))
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(19)])  # read (and kept) while small

    def placed() -> bool:
        return "tenure_percentile" in store.enrich(parse_context(visit("x", tenure_years=1))).get("customer", {})

    assert not placed()
    _population(rec, store, "gym", [0.1 * (i + 1) for i in range(25)])
    assert not placed()  # the kept sample
    key = ("percentiles", "gym")
    store._cache[key] = (0.0, store._cache[key][1])  # as if its refresh time had passed
    assert not placed()  # expired: answered from it once more while a thread reads the new one ...
    for _ in range(100):
        if not store._refreshing:
            break
        time.sleep(0.05)
    assert placed()  # ... which the next request uses


# -- the realised extras rate steers the draw --------------------------------------------------


@pytest.fixture(scope="module")
def open_rec() -> Recommender:
    """Every extra drawn: a result with ``surprise`` listed (issue visit) or none on offer (issue other)."""
    return Recommender([], packs=[PACK], autoload=False, profiles={"default": {"extras_rate": 1.0}})


def _history(store: Any, open_rec: Recommender, offered: int, listed: int, steer: float = 1.0,
             tenant: str = "gym") -> None:
    """``offered`` logged decisions with an extra on offer, ``listed`` of them with one listed."""
    for i in range(offered):
        context = visit(f"h-{tenant}-{i}", tenant=tenant)
        if i >= listed:
            context["interaction"]["issue"] = "other"
        result = open_rec.recommend(context)
        assert ("surprise" in result.gesture_ids()) == (i < listed)
        store.record_decision(parse_context(context), result, extras_steer=steer)


@pytest.mark.parametrize(("offered", "listed", "steer", "expected"), [
    (40, 2, 1.0, 1.0),     # too few decisions with an extra on offer: no steer
    (100, 20, 1.0, 0.5),   # twice the target (0.1): halve the chance
    (100, 8, 1.0, 1.25),   # a little under: a little more
    (100, 1, 1.0, 2.0),    # far under: at most double
    (100, 10, 1.6, 1.6),   # on target under a steer of 1.6: keep it (no swing back to 1.0)
])
def test_the_steer_pulls_the_realised_rate_to_the_target(make_store: Any, open_rec: Recommender, offered: int,
                                                         listed: int, steer: float, expected: float) -> None:
    store = fresh(make_store)
    _history(store, open_rec, offered, listed, steer)
    assert store.realised_extras("gym")[:2] == (offered, listed)
    assert store.extras_steer(parse_context(visit("c")), 0.1) == pytest.approx(expected)
    assert store.extras_steer(parse_context(visit("c", tenant="other")), 0.1) == 1.0  # per tenant
    decisions = Decision.__table__
    with store.engine.connect() as conn:
        logged = conn.execute(select(decisions.c.extras_offered, decisions.c.extras_listed)).all()
    assert sum(1 for r in logged if r.extras_listed) == listed and all(r.extras_offered for r in logged)


def test_the_window_is_the_last_decisions_within_its_days(make_store: Any, open_rec: Recommender,
                                                         clock: FakeClock) -> None:
    store = fresh(make_store, extras_steer={"refresh_seconds": 0, "max_decisions": 100, "window_days": 30})
    _history(store, open_rec, 100, 50)  # long ago: half listed
    clock.advance(days=31)
    assert store.realised_extras("gym") == (0, 0, 1.0)  # out of the window
    _history(store, open_rec, 60, 6, tenant="gym")
    assert store.realised_extras("gym")[:2] == (60, 6)


def _customer_between(low: float, high: float) -> str:
    """A customer id whose extras roll (default profile, the visit's day) falls in [low, high)."""
    for i in range(10_000):
        context = parse_context(visit(f"lucky-{i}"))
        if low <= draw(context, Profile(), Assessment("routine", 0), f"lucky-{i}").roll < high:
            return f"lucky-{i}"
    raise AssertionError("no such customer")


def test_the_draw_uses_the_steer_and_the_decision_logs_it(make_store: Any, open_rec: Recommender,
                                                          rec: Recommender) -> None:
    store = fresh(make_store)
    _history(store, open_rec, 100, 4)  # realised 4% against a target of 10%: steer 2.0
    assert store.extras_steer(parse_context(visit("c")), 0.1) == 2.0
    lucky = _customer_between(0.1, 0.2)  # drawn at 20%, not at 10%
    plain = rec.recommend(visit(lucky))
    assert "surprise" not in plain.gesture_ids()
    assert any(w.gesture_id == "surprise" and w.reason == "extras_rate" for w in plain.withheld)
    steered = rec.recommend(visit(lucky), store=store)
    assert "surprise" in steered.gesture_ids()
    logged = store.get_decision(steered.decision_id)
    assert (logged.extras_offered, logged.extras_listed, logged.extras_steer) == (True, True, 2.0)
    # a decision without an extra on offer logs no draw
    quiet = rec.recommend({**visit("q-1"), "interaction": {"issue": "other", "occurred_at": WHEN}}, store=store)
    assert (store.get_decision(quiet.decision_id).extras_offered, store.get_decision(quiet.decision_id).extras_steer) \
        == (False, None)


def test_replays_use_the_logged_steer_and_stored_profile(make_store: Any, open_rec: Recommender,
                                                        rec: Recommender) -> None:
    store = fresh(make_store)
    _history(store, open_rec, 100, 4)
    lucky = _customer_between(0.1, 0.2)
    steered = rec.recommend(visit(lucky), store=store)
    store.set_tenant_profile("gym", {"listing": {"meet": 0}}, updated_by="ops")
    capped = rec.recommend(visit("m-2", tenure_years=5), store=store)  # nothing of tier meet listed
    assert "care_tip" not in capped.gesture_ids()
    store.delete_tenant_profile("gym", updated_by="ops")
    _history(store, open_rec, 100, 50)  # the realised rate has moved on since: the steer now is 0.5 ...
    assert store.extras_steer(parse_context(visit("c")), 0.1) == 0.5
    logged = {d.id: d for d in iter_decisions(store, tenant="gym")}
    for result in (steered, capped):
        d = logged[result.decision_id]
        again = rec.recommend(replay_context(d), store=ReplayMemory(d))  # ... a replay uses the logged one
        assert again.gesture_ids() == result.gesture_ids()
        assert again.receipt.id == result.receipt.id
    assert logged[steered.decision_id].extras_steer == 2.0
    assert logged[capped.decision_id].stored_profile is not None
    assert logged[capped.decision_id].stored_profile.profile == {"listing": {"meet": 0}}
    # what a recomputed steer (or no stored layer) would have given instead
    d = logged[steered.decision_id]
    memory = ReplayMemory(d)
    memory.steer = 1.0
    assert "surprise" not in rec.recommend(replay_context(d), store=memory).gesture_ids()
    d = logged[capped.decision_id]
    memory = ReplayMemory(d)
    memory.stored_profile = None
    assert "care_tip" in rec.recommend(replay_context(d), store=memory).gesture_ids()


def test_the_replay_of_the_whole_log_reports_no_change(make_store: Any, open_rec: Recommender,
                                                       rec: Recommender, tmp_path: Any) -> None:
    from recommender.backtest.run import RuleSet, replay_decisions

    store = fresh(make_store)
    _history(store, open_rec, 100, 4)
    store.set_tenant_profile("gym", {"loyal_tenure_years": 1, "listing": {"meet": 1}}, updated_by="ops")
    for i in range(30):
        rec.recommend(visit(f"p-{i}", tenure_years=0.1 * i, lifetime_value=10 * i), store=store)
    pack = tmp_path / "profiles.yaml"
    import json

    pack.write_text(json.dumps(PACK))
    logged = [d for d in iter_decisions(store, tenant="gym") if d.customer_id.startswith("p-")]  # made by rec
    assert any(d.extras_steer == 2.0 for d in logged) and all(d.stored_profile for d in logged)
    tally = replay_decisions(logged, RuleSet.of([str(pack)], None, False))
    assert tally.replayed == 30 and tally.changed == 0 and tally.reordered == 0, (tally.gained, tally.lost)


def test_extras_steer_is_validated(make_store: Any, rec: Recommender) -> None:
    store = fresh(make_store)
    context = parse_context(visit("c-1"))
    result = rec.recommend(visit("c-1"))
    with pytest.raises(InvalidStoreInput, match="extras_steer"):
        store.record_decision(context, result, extras_steer=float("nan"))
