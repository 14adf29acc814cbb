"""Plugins: discovery from all three sources, tenant selection, isolation, conflicts."""

import importlib.metadata
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from recommender import PluginError, Recommender, RulePackError, hookimpl
from recommender.hookspecs import __all__ as HOOKS
from recommender.context import parse_context
from recommender.plugins import ENTRY_POINT_GROUP
from recommender.profile import ProfileError
from recommender.testing import sqlite_store as sqlite_store_for

from helpers import ctx, gesture, pack, rule

BASE = pack([gesture("core_thanks", "meet")], [rule("core", "interaction.issue exists", "core_thanks")], "core")


class Coffee:
    """A plugin object contributing a gesture and a rule."""

    __name__ = "coffee"

    @hookimpl
    def recommender_register_gestures(self, register):
        register(gesture("free_coffee", "meet", 2))

    @hookimpl
    def recommender_register_rule_packs(self, register):
        register(pack([], [rule("coffee-wait", "interaction.wait_minutes ge 10", "free_coffee")], "coffee"))


def build(*plugins, **kw):
    return Recommender([], packs=[BASE], plugins=plugins, autoload=False, **kw)


WAIT = ctx("x", interaction={"wait_minutes": 15})


def test_every_hook_has_a_test():
    names = set(globals())
    for hook in HOOKS:
        assert any(n.startswith("test_hook_") and hook.removeprefix("recommender_") in n for n in names), hook


def test_hook_arguments_are_the_public_contract():
    import inspect

    from recommender import hookspecs

    args = {h: list(inspect.signature(getattr(hookspecs, h)).parameters) for h in HOOKS}
    assert args == {
        "recommender_declare_verticals": [],
        "recommender_register_issue_codes": ["register", "business"],
        "recommender_business_profile": ["business"],
        "recommender_register_gestures": ["register", "business"],
        "recommender_register_rule_packs": ["register", "business"],
        "recommender_enrich_context": ["context", "business"],
        "recommender_adjust_recommendations": ["recommendations", "context"],
        "recommender_record_outcome": ["outcome"],
    }


def test_hook_names_are_the_public_contract():
    assert HOOKS == ["recommender_declare_verticals", "recommender_register_issue_codes",
                     "recommender_business_profile", "recommender_register_gestures", "recommender_register_rule_packs",
                     "recommender_enrich_context", "recommender_adjust_recommendations", "recommender_record_outcome"]


def test_hook_recommender_declare_verticals():
    class Garage:
        __name__ = "garage"

        @hookimpl
        def recommender_declare_verticals(self):
            return ["auto_repair"]

        @hookimpl
        def recommender_register_gestures(self, register):
            register(gesture("garage_g", "meet", 0))

        @hookimpl
        def recommender_register_rule_packs(self, register):
            register(pack([], [rule("garage-r", "interaction.issue exists", "garage_g")], "garage"))

    class Bad:
        __name__ = "bad"

        @hookimpl
        def recommender_declare_verticals(self):
            return "auto_repair"  # not a list

    rec = build(Garage(), Bad())
    assert rec.host.infos["garage"].verticals == ["auto_repair"]
    assert "garage_g" in rec.recommend({**WAIT, "business": {"vertical": "auto_repair"}}).gesture_ids()
    assert "garage_g" not in rec.recommend({**WAIT, "business": {"vertical": "bank"}}).gesture_ids()
    assert "garage_g" not in rec.recommend(WAIT).gesture_ids()  # no vertical: not a garage
    assert any(w.plugin == "bad" and "list of vertical names" in w.message for w in rec.host.load_warnings)
    assert rec.host.infos["bad"].verticals is None  # malformed: serves everyone, as if undeclared
    # configuration still decides: it can select the plugin for any business
    wide = build(Garage(), plugin_config={"default": ["garage"]})
    assert "garage_g" in wide.recommend(WAIT).gesture_ids()


def test_hook_recommender_register_issue_codes():
    class Trade:
        __name__ = "trade"

        @hookimpl
        def recommender_register_issue_codes(self, register):
            register({"code": "flat_tyre", "family": "routine", "aliases": ["puncture"]})
            register({"code": "comeback_repair", "family": "service_failure"})

    class Clash:
        __name__ = "clash"

        @hookimpl
        def recommender_register_issue_codes(self, register):
            register({"code": "fraud", "family": "routine"})  # the core says fraud is fraud

    class Typo:
        __name__ = "typo"

        @hookimpl
        def recommender_register_issue_codes(self, register):
            register({"code": "x_issue", "family": "servce_failure"})

    res = build(Trade(), Clash(), Typo()).recommend({"interaction": {"issue": "puncture"}})
    assert res.assessment.family == "routine" and not res.notes
    redo = build(Trade()).recommend({"interaction": {"issue": "comeback_repair"}})
    assert redo.assessment.family == "service_failure" and redo.assessment.severity == 2
    warned = {w.plugin: w.message for w in res.warnings}
    assert "already in family 'fraud'" in warned["clash"]
    assert "did you mean 'service_failure'" in warned["typo"]
    assert build().recommend({"interaction": {"issue": "fraud"}}).assessment.family == "fraud"
    unknown = build().recommend({"interaction": {"issue": "puncture"}})
    assert unknown.assessment.family is None and "Unknown issue code 'puncture'" in unknown.notes[0]


def test_hook_recommender_business_profile():
    class Gym:
        __name__ = "gym"

        @hookimpl
        def recommender_business_profile(self, business):
            return {"loyal_tenure_years": 1} if business.vertical == "fitness" else None

    class Broken:
        __name__ = "broken"

        @hookimpl
        def recommender_business_profile(self):
            return {"loyal_tenur_years": 1}

    rec = build(Gym(), Broken(), profiles={"acme": {"currency": "EUR"}})
    gym, warnings = rec.profile_for(parse_context({"interaction": {"issue": "x"},
                                                   "business": {"id": "acme", "vertical": "fitness"}}).business)
    assert gym.loyal_tenure_years == 1 and gym.currency == "EUR"  # the trade's default, then configuration
    assert any(w.plugin == "broken" and "loyal_tenur_years" in w.message for w in warnings)
    other, _ = rec.profile_for(parse_context({"interaction": {"issue": "x"}}).business)
    assert other.loyal_tenure_years == 3 and other.currency == "USD"
    over = build(Gym(), profiles={"default": {"loyal_tenure_years": 4}})
    fit, _ = over.profile_for(parse_context({"interaction": {"issue": "x"}, "business": {"vertical": "fitness"}}).business)
    assert fit.loyal_tenure_years == 4  # configuration overrides a plugin
    with pytest.raises(ProfileError, match="profiles.default.money_limits"):
        build(profiles={"default": {"money_limits": {"synthetic": 100, "genuine": 50}}})


def test_hook_recommender_register_gestures_and_register_rule_packs():
    res = build(Coffee()).recommend(WAIT)
    assert set(res.gesture_ids()) == {"core_thanks", "free_coffee"}
    assert res.warnings == []


def test_core_packs_are_a_builtin_plugin():
    info = {i["name"]: i for i in build().plugin_info()}
    assert info["core_packs"]["source"] == "builtin"
    assert info["core_packs"]["gestures"] == ["core_thanks"]


def test_plugins_dir_loads_modules_and_reports_broken_ones(tmp_path):
    (tmp_path / "good.py").write_text(textwrap.dedent("""
        from recommender import hookimpl
        @hookimpl
        def recommender_register_gestures(register):
            register({"id": "dropin_g", "title": "T", "category": "freebie", "tier": "meet", "script": "Hi."})
        @hookimpl
        def recommender_register_rule_packs(register):
            register({"pack": "d", "rules": [{"id": "d1", "when": "interaction.issue eq x", "then": "dropin_g", "because": "b."}]})
    """))
    (tmp_path / "broken.py").write_text("def oops(:\n")
    (tmp_path / "typo.py").write_text("from recommender import hookimpl\n@hookimpl\ndef recommender_enrich_contxt(context):\n    pass\n")
    (tmp_path / "badargs.py").write_text("from recommender import hookimpl\n@hookimpl\ndef recommender_enrich_context(ctx, nope):\n    pass\n")
    rec = Recommender([], packs=[BASE], plugins_dir=tmp_path, autoload=False)
    res = rec.recommend(ctx("x"))
    assert "dropin_g" in res.gesture_ids()
    by_plugin = {w.plugin: w.message for w in res.warnings}
    assert "broken.py:1" in by_plugin["broken"] and "syntax error" in by_plugin["broken"]
    assert "recommender_enrich_contxt" in by_plugin["typo"] and "typo.py" in by_plugin["typo"]
    assert "badargs" in by_plugin
    with pytest.raises(Exception):
        Recommender([], packs=[BASE], plugins_dir=tmp_path, autoload=False, strict=True)


def test_entry_points_are_discovered_and_a_failing_one_is_isolated(monkeypatch):
    mod = types.ModuleType("fake_ep_plugin")
    mod.recommender_register_gestures = Coffee().recommender_register_gestures
    mod.recommender_register_rule_packs = Coffee().recommender_register_rule_packs
    monkeypatch.setitem(sys.modules, "fake_ep_plugin", mod)
    eps = [importlib.metadata.EntryPoint("coffee", "fake_ep_plugin", ENTRY_POINT_GROUP),
           importlib.metadata.EntryPoint("broken", "no_such_module_xyz", ENTRY_POINT_GROUP)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [e for e in eps if e.group == group])
    rec = Recommender([], packs=[BASE])
    res = rec.recommend(WAIT)
    assert "free_coffee" in res.gesture_ids()
    assert any(w.plugin == "broken" and 'Error importing plugin "broken"' in w.message for w in res.warnings)
    monkeypatch.setenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "free_coffee" not in Recommender([], packs=[BASE]).recommend(WAIT).gesture_ids()
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("RECOMMENDER_DISABLED_PLUGINS", "coffee")
    assert "free_coffee" not in Recommender([], packs=[BASE]).recommend(WAIT).gesture_ids()


def test_tenants_only_see_their_own_plugins():
    class Gym:
        __name__ = "gym"

        @hookimpl
        def recommender_register_gestures(self, register):
            register(gesture("gym_session", "meet", 0))

        @hookimpl
        def recommender_register_rule_packs(self, register):
            register(pack([], [rule("gym-wait", "interaction.wait_minutes ge 10", "gym_session")], "gym"))

    config = {"businesses": {"cafe-1": ["coffee"]}, "verticals": {"fitness": ["gym"]}, "default": []}
    rec = build(Coffee(), Gym(), plugin_config=config)
    cafe = rec.recommend({**WAIT, "business": {"id": "cafe-1"}}).gesture_ids()
    gym = rec.recommend({**WAIT, "business": {"id": "gym-9", "vertical": "fitness"}}).gesture_ids()
    other = rec.recommend({**WAIT, "business": {"id": "other"}}).gesture_ids()
    assert "free_coffee" in cafe and "gym_session" not in cafe
    assert "gym_session" in gym and "free_coffee" not in gym
    assert other == ["core_thanks"]
    assert rec.rulebook_for({"id": "cafe-1"}).version != rec.rulebook_for({"id": "other"}).version


def test_hook_recommender_enrich_context():
    seen = []

    class VIP:
        __name__ = "vip"

        @hookimpl
        def recommender_enrich_context(self, context):
            seen.append(context.customer.is_vip)
            return {"customer": {"is_vip": context.customer.lifetime_value > 1000}}

    class Broken:
        __name__ = "broken"

        @hookimpl
        def recommender_enrich_context(self, context):
            return {"customer": {"tenure_years": "lots"}}

    rec = Recommender([], packs=[pack([gesture("vip_g")], [rule("vip", "customer.is_vip eq true", "vip_g")])],
                      plugins=[VIP(), Broken()], autoload=False)
    res = rec.recommend(ctx(customer={"lifetime_value": 5000}))
    assert res.gesture_ids() == ["vip_g"]
    assert [w.plugin for w in res.warnings] == ["broken"] and "customer.tenure_years" in res.warnings[0].message
    assert seen[-1] is None  # the plugin saw the caller's context, not its own output
    # the caller's own value wins over a plugin's
    assert rec.recommend(ctx(customer={"lifetime_value": 5000, "is_vip": False})).gesture_ids() == []


def test_raising_and_slow_plugins_do_not_break_recommend():
    class Raises:
        __name__ = "raises"

        @hookimpl
        def recommender_enrich_context(self, context):
            raise RuntimeError("CRM down")

    class Slow:
        __name__ = "slow"

        @hookimpl
        def recommender_enrich_context(self, context):
            time.sleep(0.5)
            return {"customer": {"is_vip": True}}

    rec = build(Raises(), Slow(), plugin_timeout=0.05)
    res = rec.recommend(ctx("x"))
    assert res.gesture_ids() == ["core_thanks"]
    msgs = {w.plugin: w.message for w in res.warnings}
    assert "CRM down" in msgs["raises"] and "took longer than 0.05 s" in msgs["slow"]
    assert all(w.hook == "recommender_enrich_context" for w in res.warnings)
    with pytest.raises(PluginError, match="raises"):
        build(Raises(), strict=True).recommend(ctx("x"))
    import asyncio

    with pytest.raises(PluginError, match="raises"):  # from the worker thread, through the event loop
        asyncio.run(build(Raises(), strict=True).arecommend(ctx("x")))
    assert asyncio.run(build(Raises(), plugin_timeout=0.05).arecommend(ctx("x"))).gesture_ids() == ["core_thanks"]


def test_timed_hooks_of_a_request_share_one_worker_and_a_late_one_is_skipped():
    """A request's hooks run one after another on one worker thread (one hand-off); one that
    runs past the limit is reported, the others' updates still apply, and its own update,
    when it finally comes, is dropped."""
    import threading

    threads: dict[str, int] = {}
    release = threading.Event()

    def enricher(name, updates, wait=False):
        class P:
            __name__ = name

            @hookimpl
            def recommender_enrich_context(self, context):
                threads[name] = threading.get_ident()
                if wait:
                    release.wait(10)  # far past the limit; released at the end of the test
                return updates
        return P()

    first = enricher("first", {"customer": {"tenure_years": 7}})
    late = enricher("late", {"customer": {"is_vip": True}}, wait=True)
    last = enricher("last", {"interaction": {"wait_minutes": 15}})
    gestures = [gesture("loyal_g"), gesture("vip_g"), gesture("free_coffee", "meet", 2)]
    rules = [rule("loyal", "customer.tenure_years ge 5", "loyal_g"), rule("vip", "customer.is_vip eq true", "vip_g"),
             rule("wait", "interaction.wait_minutes ge 10", "free_coffee")]
    rec = Recommender([], packs=[pack(gestures, rules)], plugins=[first, late, last], autoload=False,
                      plugin_timeout=0.2)
    try:
        res = rec.recommend(ctx("x"))
        assert sorted(res.gesture_ids()) == ["free_coffee", "loyal_g"]  # first and last applied, late skipped
        assert [(w.plugin, w.hook) for w in res.warnings] == [("late", "recommender_enrich_context")]
        assert "took longer than 0.2 s" in res.warnings[0].message
        before, _, after = [n for n, _, _ in rec.host.impls("recommender_enrich_context", ["first", "late", "last"])]
        assert threads[before] == threads["late"] != threading.get_ident()  # one worker for the chain
        assert threads[after] != threads["late"]  # the chain went on, on a fresh worker
    finally:
        release.set()

    class Adjuster:
        __name__ = "adjuster"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            threads["adjuster"] = threading.get_ident()
            return [r for r in recommendations if r.gesture_id != "free_coffee"]

    fast = Recommender([], packs=[pack(gestures, rules)], plugins=[first, last, Adjuster()], autoload=False)
    threads.clear()
    res = fast.recommend(ctx("x"))
    assert res.gesture_ids() == ["loyal_g"] and [w.gesture_id for w in res.withheld] == ["free_coffee"]
    # enrichers, our stages and adjusters: one worker, one hand-off for the whole request
    assert threads["first"] == threads["last"] == threads["adjuster"] != threading.get_ident()


def test_arecommend_waits_for_timed_hooks_without_blocking_the_event_loop():
    """The asyncio entry point gives recommend()'s answer; while a hook works (on a worker
    thread) the loop goes on, and a late hook is skipped as in recommend()."""
    import asyncio
    import threading

    release = threading.Event()

    class Slow:
        __name__ = "slow"

        @hookimpl
        def recommender_enrich_context(self, context):
            time.sleep(0.15)  # inside the limit
            return {"interaction": {"wait_minutes": 15}}

    class Stuck:
        __name__ = "stuck"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            release.wait(10)
            return []

    rec = build(Coffee(), Slow(), plugin_timeout=0.5)

    async def ticking(coro):
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            return await coro, ticks
        finally:
            ticker.cancel()

    res, ticks = asyncio.run(ticking(rec.arecommend(ctx("x"))))
    assert res.gesture_ids() == ["core_thanks", "free_coffee"]  # the enricher's wait applied
    assert res.model_dump() == rec.recommend(ctx("x")).model_dump()
    assert ticks >= 5  # the loop ran on while the hook slept
    explained = asyncio.run(rec.aexplain(ctx("x")))
    assert explained.model_dump() == rec.explain(ctx("x")).model_dump()
    try:
        late = asyncio.run(build(Coffee(), Stuck(), plugin_timeout=0.1).arecommend(WAIT))
        assert late.gesture_ids() == ["core_thanks", "free_coffee"]
        assert [(w.plugin, w.hook) for w in late.warnings] == [("stuck", "recommender_adjust_recommendations")]
    finally:
        release.set()


def test_when_every_plugin_worker_is_busy_the_hooks_are_skipped_not_waited_for():
    """Hung hooks keep their worker threads; once none is free, a request does not queue
    without bound: after the time limit it is answered without its plugins' hooks."""
    import concurrent.futures
    import threading

    release = threading.Event()
    rec = build(Coffee(), Adds3(), plugin_timeout=0.1)
    rec.host._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    rec.host._pool.submit(release.wait, 10)  # the only worker, busy
    try:
        res = rec.recommend(WAIT)
        assert res.gesture_ids() == ["core_thanks", "free_coffee"]  # our stages ran; no wait added
        assert [(w.plugin, w.hook) for w in res.warnings] == [("adds3", "recommender_enrich_context"),
                                                              ("adds3", "recommender_adjust_recommendations")]
        assert all("no plugin worker was free within 0.1 s" in w.message for w in res.warnings)
    finally:
        release.set()
        rec.host._pool.shutdown()


class Adds3:
    """Adds three minutes of waiting, and keeps every recommendation."""

    __name__ = "adds3"

    @hookimpl
    def recommender_enrich_context(self, context):
        return {"interaction": {"wait_minutes": 3}}

    @hookimpl
    def recommender_adjust_recommendations(self, recommendations, context):
        return recommendations


def test_a_late_adjuster_is_skipped_and_the_others_vetoes_still_apply():
    """Our own stages between hooks have no time limit; a late adjuster is skipped and the
    chain goes on from the recommendations it was given."""
    import threading

    release = threading.Event()

    class Late:
        __name__ = "late_adjuster"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            release.wait(10)
            return []  # would veto everything, had it been on time

    class Veto:
        __name__ = "veto"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            return [r for r in recommendations if r.gesture_id != "free_coffee"]

    try:
        res = build(Coffee(), Late(), Veto(), plugin_timeout=0.1).recommend(WAIT)
        assert res.gesture_ids() == ["core_thanks"]
        assert [(w.gesture_id, w.reason) for w in res.withheld] == [("free_coffee", "vetoed")]
        assert {(w.plugin, w.hook) for w in res.warnings} == {("late_adjuster", "recommender_adjust_recommendations")}
        assert "took longer than 0.1 s" in res.warnings[0].message
    finally:
        release.set()


def test_hook_recommender_adjust_recommendations():
    class Adjust:
        __name__ = "adjust"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            out = []
            for r in recommendations:
                if r.gesture_id == "free_coffee":
                    continue  # veto
                r.agent_reason += " (checked by adjust)"
                r.score = 1.0
                out.append(r)
            return out

    res = build(Coffee(), Adjust()).recommend(WAIT)
    assert res.gesture_ids() == ["core_thanks"]
    assert res.recommendations[0].agent_reason.endswith("(checked by adjust)")
    assert [(w.gesture_id, w.reason) for w in res.withheld] == [("free_coffee", "vetoed")]

    class Adds:
        __name__ = "adds"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            extra = recommendations[0].model_copy(update={"gesture_id": "made_up"})
            return recommendations + [extra]

    res = build(Adds()).recommend(ctx("x"))
    assert res.gesture_ids() == ["core_thanks"] and "made_up" in res.warnings[0].message


def test_adjusters_chain_and_cannot_change_shared_explanations_of_later_results():
    seen: list[int] = []
    handed: list[int] = []  # ids of the rule matches the plugin was handed

    class Scribble:
        """Tries to change the (shared) rule matches it is given in place."""

        __name__ = "scribble"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            for r in recommendations:
                seen.append(len(r.rules[0].conditions))
                handed.append(id(r.rules[0]))
                r.rules[0].conditions.clear()  # a tuple: AttributeError
            return recommendations

    class Rewrite:
        """Changes them the supported way: a copy with its own tests."""

        __name__ = "rewrite"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            return [r.model_copy(update={"rules": [m.model_copy(update={"conditions": ()}) for m in r.rules]})
                    for r in recommendations]

    class Veto:
        __name__ = "veto"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            return [r for r in recommendations if r.gesture_id != "free_coffee"]

    rec = build(Coffee(), Rewrite(), Scribble(), Veto())
    for _ in range(2):
        res = rec.recommend(WAIT)
        assert res.gesture_ids() == ["core_thanks"]
        assert [(w.gesture_id, w.reason, w.rules) for w in res.withheld] == [("free_coffee", "vetoed", ["coffee-wait"])]
        assert res.recommendations[0].rules[0].conditions == ()  # what the rewriting plugin returned
        assert {(w.plugin, w.hook) for w in res.warnings} == {("scribble", "recommender_adjust_recommendations")}
        assert "AttributeError" in res.warnings[0].message
    # Rule matches are shared between results, for businesses with plugins too (the same
    # objects on both calls), and each call's plugins still saw them whole.
    assert seen == [1, 1, 1, 1] and handed[:2] == handed[2:]
    plain = build(Coffee()).recommend(WAIT)
    assert all(m.conditions for r in plain.recommendations for m in r.rules)


def test_two_plugins_defining_the_same_gesture_is_an_error_naming_both():
    class Other(Coffee):
        __name__ = "other_coffee"

    with pytest.raises(RulePackError, match="free_coffee.*plugin:coffee.*plugin:other_coffee|free_coffee.*plugin:other_coffee.*plugin:coffee"):
        build(Coffee(), Other())


def test_a_plugin_pack_with_an_unknown_gesture_is_left_out_and_others_keep_working():
    class Bad:
        __name__ = "bad"

        @hookimpl
        def recommender_register_rule_packs(self, register):
            register(pack([], [rule("bad-rule", "interaction.issue eq x", "no_such_gesture")], "bad"))

    res = build(Bad(), Coffee()).recommend(WAIT)
    assert "free_coffee" in res.gesture_ids()
    (w,) = res.warnings
    assert w.plugin == "bad" and "unknown gesture 'no_such_gesture'" in w.message


def test_hook_recommender_record_outcome(tmp_path):
    from recommender.memory import open_store

    seen = []

    class Observer:
        __name__ = "observer"

        @hookimpl
        def recommender_record_outcome(self, outcome):
            seen.append((outcome.decision_id, outcome.gesture_id, outcome.outcome, outcome.customer_id))

    class Raises:
        __name__ = "raises"

        @hookimpl
        def recommender_record_outcome(self, outcome):
            raise RuntimeError("reporting down")

    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    rec = build(Observer(), Raises())
    res = rec.recommend({"customer": {"id": "c1"}, "interaction": {"issue": "x"}}, store=store)
    rec.record_outcome(store, res.decision_id, "core_thanks", "accepted", idempotency_key="k1")
    assert seen == [(res.decision_id, "core_thanks", "accepted", "c1")]


def test_outcome_observers_selected_by_vertical_hear_outcomes_without_the_vertical_given(tmp_path):
    seen = []

    class CafeLedger:
        __name__ = "cafe_ledger"

        @hookimpl
        def recommender_record_outcome(self, outcome):
            seen.append((outcome.tenant, outcome.gesture_id))

    rec = build(CafeLedger(), plugin_config={"verticals": {"cafe": ["cafe_ledger"]}, "default": []})
    with sqlite_store_for(tmp_path) as store:
        cafe = rec.recommend({"interaction": {"issue": "x"}, "business": {"id": "shop1", "vertical": "cafe"}}, store=store)
        gym = rec.recommend({"interaction": {"issue": "x"}, "business": {"id": "shop2", "vertical": "gym"}}, store=store)
        rec.record_outcome(store, cafe.decision_id, "core_thanks", "accepted", idempotency_key="k1", tenant="shop1")
        rec.record_outcome(store, gym.decision_id, "core_thanks", "accepted", idempotency_key="k2", tenant="shop2")
    assert seen == [("shop1", "core_thanks")]


def test_a_veto_frees_its_place_for_the_next_extra():
    gs = [gesture(f"x{i}", "exceed", i) for i in range(4)]
    certain = {"default": {"extras_rate": 1.0}}  # the extras draw always falls: this is about the cap
    extras = Recommender([], packs=[pack(gs, [rule("all", "interaction.issue exists", [g["id"] for g in gs])])],
                         autoload=False, max_extras=2, profiles=certain)
    assert extras.recommend(ctx("x")).gesture_ids() == ["x0", "x1"]

    class VetoCheapest:
        __name__ = "veto"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations):
            return [r for r in recommendations if r.gesture_id != "x0"]

    rec = Recommender([], packs=[pack(gs, [rule("all", "interaction.issue exists", [g["id"] for g in gs])])],
                      plugins=[VetoCheapest()], autoload=False, max_extras=2, profiles=certain)
    res = rec.recommend(ctx("x"))
    assert res.gesture_ids() == ["x1", "x2"]
    assert [(w.gesture_id, w.reason) for w in res.withheld if w.reason == "vetoed"] == [("x0", "vetoed")]


def test_the_same_plugin_object_under_two_names_warns_instead_of_crashing():
    coffee = Coffee()
    rec = Recommender([], packs=[BASE], plugins=[coffee], autoload=False)
    rec.host.register(coffee, "coffee_again", "explicit")
    assert any(w.plugin == "coffee_again" for w in rec.host.load_warnings)
    assert "free_coffee" in rec.recommend(WAIT).gesture_ids()


def test_a_plugin_using_a_core_field_with_another_type_is_left_out_not_the_core():
    core = pack([gesture("core_bay")], [rule("core-bay", "interaction.attributes.bay eq front", "core_bay")], "core")

    class Clash:
        __name__ = "clash"

        @hookimpl
        def recommender_register_rule_packs(self, register):
            register(pack([gesture("clash_g")], [rule("clash-bay", "interaction.attributes.bay gt 3", "clash_g")], "clash"))

    rec = Recommender([], packs=[core], plugins=[Clash()], autoload=False)
    res = rec.recommend(ctx("x", interaction={"attributes": {"bay": "front"}}))
    assert res.gesture_ids() == ["core_bay"]
    (w,) = res.warnings
    assert w.plugin == "clash" and "interaction.attributes.bay is compared as a number" in w.message


def test_new_businesses_share_a_rulebook_unless_a_plugin_builds_per_business():
    rec = build(Coffee())
    books = {rec.rulebook_for({"id": f"shop-{i}", "vertical": f"v{i}"}).version for i in range(20)}
    assert len(books) == 1 and len(rec._builds) == 1  # one compile serves them all

    class PerBusiness:
        __name__ = "per_business"

        @hookimpl
        def recommender_register_gestures(self, register, business):
            register(gesture(f"hello_{business.id.replace('-', '_')}"))

    rec = build(PerBusiness())
    a, b = rec.rulebook_for({"id": "shop-a"}), rec.rulebook_for({"id": "shop-b"})
    assert "hello_shop_a" in a.gestures and "hello_shop_a" not in b.gestures


def test_reload_keeps_every_business_and_swaps_versions():
    rec = build(Coffee(), plugin_config={"businesses": {"cafe": ["coffee"]}, "default": []})
    cafe_before = rec.rulebook_for({"id": "cafe"})
    rec.rulebook_for({"id": "other"})
    rec.reload()
    assert "free_coffee" in rec.rulebook_for({"id": "cafe"}).gestures
    assert "free_coffee" not in rec.rulebook_for({"id": "other"}).gestures
    assert rec.rulebook_for({"id": "cafe"}) is not cafe_before
    rec.reload(plugin_config={"default": ["coffee"]})
    assert "free_coffee" in rec.rulebook_for({"id": "other"}).gestures


def test_testing_helpers_import_an_uninstalled_plugin_from_its_source_folder(tmp_path, monkeypatch):
    from recommender.testing import import_plugin, plugin_recommender, sqlite_store, withheld_reasons

    pkg = tmp_path / "my_plugin" / "recommender_tmp_trade"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from recommender import hookimpl
        @hookimpl
        def recommender_register_gestures(register):
            register({"id": "tmp_thanks", "title": "Thanks", "tier": "meet", "category": "information",
                      "cost": 0, "script": "Thanks."})
        @hookimpl
        def recommender_register_rule_packs(register):
            register({"pack": "tmp", "rules": [{"id": "tmp-r", "when": "interaction.issue exists",
                                                "then": "tmp_thanks", "because": "Say thanks."}]})
    """))
    test_file = tmp_path / "my_plugin" / "tests" / "test_tmp.py"
    monkeypatch.setattr(sys, "path", list(sys.path))  # the helper adds the source folder
    monkeypatch.delitem(sys.modules, "recommender_tmp_trade", raising=False)
    plugin = import_plugin("recommender_tmp_trade", test_file)
    assert Path(plugin.__file__).parent == pkg
    with pytest.raises(ModuleNotFoundError):
        import_plugin("recommender_no_such_trade", test_file)
    alone = plugin_recommender(plugin)
    assert alone.recommend(ctx("x")).gesture_ids() == ["tmp_thanks"]
    assert len(plugin_recommender(plugin, core_packs=True).rulebook.rules) > len(alone.rulebook.rules)
    with sqlite_store(tmp_path) as store:
        result = alone.recommend(ctx("x", customer={"id": "c-1"}), store=store)
        assert store.get_decision(result.decision_id).gestures[0].gesture_id == "tmp_thanks"
    extra = plugin_recommender(plugin, packs=[pack([gesture("tmp_extra", "exceed")],
                                                   [rule("tmp-e", "interaction.issue exists", "tmp_extra")])],
                               profiles={"default": {"extras_rate": 1.0}})
    assert withheld_reasons(extra.recommend(ctx("x"), max_extras=0)) == {"tmp_extra": "listing_cap"}
