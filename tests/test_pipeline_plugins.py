"""The pipeline around plugin hooks: what an enricher or an adjuster hands back is checked
where it crosses into our data (only what it changed, for speed), and refused with the plugin
and the field path when it is wrong; steps with nothing to do are passed over."""

import gc
import weakref
from dataclasses import fields
from datetime import date

import pytest

from recommender import ContextError, Recommender, hookimpl
from recommender.context import parse_context
from recommender.pipeline import _copy, _merge_changed, _merge_whole, _start, merge_unset
from recommender.plugins import PluginHost, Step

from helpers import ctx, gesture, pack, rule

CALLER = parse_context({
    "customer": {"name": "Ann", "visits": 3, "attributes": {"kept": "caller's", "n": 1}},
    "interaction": {"issue": "flat_tire", "channel": "pos", "attributes": {"seen": True}},
    "business": {"vertical": "auto_repair"},
})


def _sections(c):
    return {name: (getattr(c, name), getattr(c, name).model_fields_set) for name in ("customer", "interaction",
                                                                                     "staff", "business")}


@pytest.mark.parametrize("updates", [
    {"interaction": {"attributes": {"service_category": "tires", "seen": False}}},  # the caller's key wins
    {"customer": {"attributes": {"kept": "plugin's", "new": 2.5}}, "interaction": {"attributes": {"a": "b"}}},
    {"customer": {"tenure_years": 0.1}},  # is_new is derived from it, as for a caller's context
    {"customer": {"name": "Bob", "visits": 9, "lifetime_value": 1200}},  # set by the caller: left as they are
    {"customer": {"prior_issues": ["late"], "last_visit_days": 12}, "interaction": {"cost": 40}},
    {"interaction": {"attributes": {}}},
])
def test_merge_unset_checks_only_what_changes_and_agrees_with_a_whole_validation(updates):
    fast, whole = _merge_changed(CALLER, updates), _merge_whole(CALLER, updates)
    assert fast == whole and _sections(fast) == _sections(whole)
    assert fast.model_fields_set == whole.model_fields_set
    assert CALLER.customer.attributes == {"kept": "caller's", "n": 1}  # the caller's context is left alone


def test_merge_unset_returns_the_context_itself_when_nothing_changes():
    assert merge_unset(CALLER, {"customer": {"name": "Bob"}}) is CALLER
    assert merge_unset(CALLER, {}) is CALLER


@pytest.mark.parametrize("updates, path", [
    ({"customer": {"is_vip": "yes"}}, "customer.is_vip"),
    ({"interaction": {"attributes": {"x": [1]}}}, "interaction.attributes.x"),
    ({"interaction": {"attributes": {"1bad": 1}}}, "interaction.attributes.1bad.[key]"),
    ({"interaction": {"attributes": {"s": "\x00"}}}, "interaction.attributes.s"),
    ({"interaction": {"attributes": "tires"}}, None),  # the caller's map is kept: not an error
    ({"interaction": {"channel": "fax"}}, None),  # the caller's channel is kept
    ({"interaction": {"cost": "40"}}, "interaction.cost"),  # strict: a number sent as a string
    ({"customer": {"attributes": {f"k{i}": i for i in range(101)}}}, "customer.attributes"),
    ({"customer": {"nope": 1}}, "customer.nope"),
    ({"shop": {"x": 1}}, "shop"),
    ({"customer": 5}, "customer"),
])
def test_a_wrong_update_is_refused_with_its_field_path(updates, path):
    if path is None:
        assert merge_unset(CALLER, updates) == CALLER
        return
    with pytest.raises(ContextError) as err:
        merge_unset(CALLER, updates)
    assert path in [p for p, _ in err.value.errors]


def test_an_enricher_returning_a_wrong_type_is_refused_naming_the_plugin_and_the_field():
    class Bad:
        __name__ = "bad"

        @hookimpl
        def recommender_enrich_context(self, context):
            return {"interaction": {"attributes": {"segment": ["a", "b"]}}}

    class NotASection:
        __name__ = "flat"

        @hookimpl
        def recommender_enrich_context(self, context):
            return {"customer": "vip"}

    base = pack([gesture("g")], [rule("r", "interaction.issue exists", "g")])
    rec = Recommender([], packs=[base], plugins=[Bad(), NotASection()], autoload=False)
    res = rec.recommend(ctx("x"))
    assert res.gesture_ids() == ["g"]
    msgs = {w.plugin: w.message for w in res.warnings}
    assert "interaction.attributes.segment" in msgs["bad"] and msgs["bad"].startswith("malformed data")
    assert "customer: expected a dict of field updates" in msgs["flat"]


def test_an_adjuster_leaving_a_wrong_value_is_refused_naming_the_plugin_and_the_field():
    class Score:
        __name__ = "score"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations):
            recommendations[0].score = "high"  # in place, unchecked by the model
            return recommendations

    class Rules:
        __name__ = "rules"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations):
            recommendations[0].rules.append("junk")  # a list changed in place is seen too
            return recommendations

    class Fine:
        __name__ = "fine"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations):
            for r in recommendations:
                r.agent_reason += " (checked)"
            return recommendations

    base = pack([gesture("g")], [rule("r", "interaction.issue exists", "g")])
    for plugin, path in ((Score(), "recommendations[0].score"), (Rules(), "recommendations[0].rules.1")):
        res = Recommender([], packs=[base], plugins=[plugin], autoload=False).recommend(ctx("x"))
        assert res.gesture_ids() == ["g"] and res.recommendations[0].score != "high"
        assert len(res.recommendations[0].rules) == 1
        [warning] = res.warnings
        assert warning.plugin == plugin.__name__ and warning.hook == "recommender_adjust_recommendations"
        assert warning.message.startswith(f"malformed data: {path}: ")
    res = Recommender([], packs=[base], plugins=[Fine()], autoload=False).recommend(ctx("x"))
    assert res.recommendations[0].agent_reason.endswith(" (checked)") and res.warnings == []


def test_a_copy_of_a_draft_has_every_field():
    rec = Recommender([], packs=[pack([gesture("g")], [rule("r", "interaction.issue exists", "g")])], autoload=False)
    d = _start(rec, parse_context(ctx("x")))
    # distinct values for fields of one type, so that two fields swapped would show
    d.day, d.adjust, d.learn, d.round_start, d.customer_key = date(2026, 1, 2), True, False, 3, "k"
    d.budget, d.max_extras, d.memory, d.host = 12.5, 7, object(), rec.host
    copy = _copy(d)
    assert copy is not d
    for f in fields(d):
        assert getattr(copy, f.name) is getattr(d, f.name), f.name


def test_a_step_passed_over_is_neither_run_nor_timed():
    host = PluginHost(timeout=0.5)
    ran = []

    def run(state, warnings):
        ran.append(state)
        return state + 1

    def never(state, warnings):
        raise AssertionError("a step passed over ran")

    steps = [Step("p", "h", run), Step("p", "h2", never, lambda s: s > 100), Step(None, "", never, lambda s: False),
             Step("p", "h", run, lambda s: s == 1)]
    assert host.chain(steps, 0, []) == 2  # on a worker (not yet trusted), then inline
    assert host.chain(steps, 0, []) == 2
    assert ("p", "h2") not in host._streak  # never timed, so never trusted either
    host.trusted = lambda steps: False  # type: ignore[method-assign]
    assert host.chain(steps, 0, []) == 2  # every time on a worker
    assert PluginHost(timeout=0).chain(steps, 0, []) == 2  # no limit: folded here
    assert ran == [0, 1] * 4


def test_the_steps_made_once_per_business_keep_no_recommender_alive():
    class Note:
        __name__ = "note"

        @hookimpl
        def recommender_enrich_context(self, context):
            return {"interaction": {"attributes": {"seen": True}}}

    base = pack([gesture("g")], [rule("r", "interaction.attributes.seen eq true", "g")])
    rec = Recommender([], packs=[base], plugins=[Note()], autoload=False)
    assert [rec.recommend(ctx("x")).gesture_ids() for _ in range(3)] == [["g"]] * 3  # on a worker, then inline
    gone = weakref.ref(rec.host)
    del rec
    gc.collect()
    assert gone() is None  # nor its plugin worker threads
