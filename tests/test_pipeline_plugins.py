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


# -- the choice run again after a veto ------------------------------------------------------
# (the pipeline's own functions, called as its chain calls them: no function of it is
# replaced, so these hold for the compiled build too)


class _Veto:
    """An adjuster that vetoes, in every round it reviews, the recommendations ``pick`` names."""

    def __init__(self, name, pick):
        self.__name__, self.pick = name, pick

    @hookimpl
    def recommender_adjust_recommendations(self, recommendations):
        out = self.pick(recommendations)
        return [r for r in recommendations if r.gesture_id not in out] if out else None


VETOES = {
    "first": lambda rs: {rs[0].gesture_id} if rs else set(),
    "last": lambda rs: {rs[-1].gesture_id} if len(rs) > 1 else set(),
    "costliest": lambda rs: {max(rs, key=lambda r: (r.cost or 0, r.gesture_id)).gesture_id} if rs else set(),
    "extras": lambda rs: {r.gesture_id for r in rs if r.tier == "exceed"},
    "all but one": lambda rs: {r.gesture_id for r in rs[1:]},
}


def _contexts():
    from pathlib import Path

    from recommender.examples import load_examples
    from recommender.scenarios import load_books

    out = [c for _, _, c in load_examples()]
    for book in load_books([Path(__file__).resolve().parent.parent / "scenarios"]):
        out.extend(sc.run_context for sc in book.scenarios)
    return out


def _the_long_way(rec, c, budget=None, store=None, handed=None):
    """``rec.recommend(c)``'s answer with the choice always run again in full after a veto
    (the steps folded here, as the chain folds them); where a veto frees nothing, the quick
    way (:func:`_drop_vetoed`) is checked against it on the spot: the same decision (chosen,
    withheld with reasons and details, what blocked what), recommendations and state for the
    next round. With the number of quick ways taken and refused.
    ``handed`` collects every rendering an adjuster is handed."""
    from recommender.pipeline import _choose, _drop_vetoed, _finish, _steps_for

    d = _start(rec, parse_context(c), store)
    d.host, d.budget, d.max_extras = rec.host, budget, rec.max_extras
    taken = {True: 0, False: 0}
    for step in _steps_for(d.tenant):
        if step.when is not None and not step.when(d):
            continue
        name = getattr(step.run, "__name__", None) or step.run.func.__name__
        if name == "_adjust_with" and handed is not None:
            handed.extend(d.recs)
        if name == "_choose_again" and d.adjust and len(d.vetoed) > d.round_start:
            quick = _copy(d)
            took = _drop_vetoed(quick)
            taken[took] += 1
            d = _copy(d)
            _choose(d, budget, rec.max_extras)
            if took:
                assert (quick.decision, quick.recs, quick.adjust, quick.round_start) == \
                       (d.decision, d.recs, d.adjust, d.round_start)
            continue
        d = step.run(d, d.warnings)
    return _finish([d], store, False)[0], taken


def test_a_choice_run_again_after_a_veto_that_frees_nothing_is_the_full_run():
    """The examples and the scenario book, each under several budgets and adjusters that veto
    (the shipped plugins, and ones that veto the first, last, costliest, the extras, all but
    one): the answer (withheld reasons and details, order, receipt) is the full run's, and
    both ways are taken often (a veto that frees a capped, over-budget, grouped or
    conflicting gesture runs the choice in full)."""
    contexts = _contexts()
    assert len(contexts) >= 150
    recs = [Recommender()] + [Recommender(plugins=[_Veto(f"veto_{n}", pick)]) for n, pick in VETOES.items()]
    taken = {True: 0, False: 0}
    vetoed = 0
    for rec in recs:
        for c in contexts:
            if not (rec._tenant(parse_context(c).business).adjusters):
                continue
            for budget in (None, 12, 60):
                full, ways = _the_long_way(rec, c, budget)
                assert rec.recommend(c, budget=budget).model_dump() == full.model_dump()
                taken[True] += ways[True]
                taken[False] += ways[False]
                vetoed += any(w.reason == "vetoed" for w in full.withheld)
    assert taken[True] >= 100 and taken[False] >= 100, taken
    assert vetoed >= 500


def test_a_choice_run_again_after_a_veto_with_a_store_is_the_full_run(tmp_path):
    """With a memory store (learning traces, choice probabilities, receipts, the logged
    decision): the same both ways, each on a fresh store of its own, the second time with the
    first decisions in the history."""
    from recommender.examples import load_examples
    from recommender.memory import open_store

    contexts = [c for _, _, c in load_examples()] * 2
    recs = [Recommender()] + [Recommender(plugins=[_Veto(f"veto_{n}", pick)]) for n, pick in VETOES.items()]
    quick_store = open_store(f"sqlite:///{tmp_path / 'quick.db'}", upgrade=True)
    full_store = open_store(f"sqlite:///{tmp_path / 'full.db'}", upgrade=True)
    taken = {True: 0, False: 0}
    try:
        for rec in recs:
            for c in contexts:
                if not (rec._tenant(parse_context(c).business).adjusters):
                    continue
                quick = rec.recommend(c, store=quick_store).model_dump()
                full, ways = _the_long_way(rec, c, store=full_store)
                full = full.model_dump()
                assert quick.pop("decision_id") and full.pop("decision_id")
                assert quick == full and quick["learning"] is not None
                taken[True] += ways[True]
                taken[False] += ways[False]
    finally:
        quick_store.close()
        full_store.close()
    assert taken[True] >= 10 and taken[False] >= 5, taken


def test_an_adjuster_is_handed_what_validating_each_rendering_gives():
    """Every recommendation rendered for the examples and the scenario book: the model an
    adjuster is handed (built directly) equals the validated one, field by field and type by
    type, owns its rule list, and keeps none of ours; a rendering with a value of another
    type, or evidence, is validated."""
    from recommender.pipeline import _handed
    from recommender.results import Recommendation

    seen = []
    rec = Recommender(plugins=[_Veto("veto_none", lambda rs: set())])
    for c in _contexts():
        _the_long_way(rec, c, handed=seen)
    assert len(seen) >= 300
    for r in seen:
        quick, valid = _handed(r), Recommendation.model_validate(r)
        assert quick.__dict__ == valid.__dict__
        assert [type(v) for v in quick.__dict__.values()] == [type(v) for v in valid.__dict__.values()]
        assert list(quick.__dict__) == list(valid.__dict__)
        assert quick.model_fields_set == valid.model_fields_set
        assert quick.rules is not r["rules"] and quick.model_dump() == valid.model_dump()
    r = seen[0]
    for odd in ({**r, "cost": 5}, {**r, "score": 3}, {**r, "evidence": None}):
        handed = _handed(odd)
        assert handed == Recommendation.model_validate(odd) and type(handed.cost) is float is type(handed.score)
