"""Scale: large generated packs stay correct, pathological packs compile, memory stays flat.

Expected matches come from ``bench/reference.py``, a plain-Python interpreter of the pack
that shares no code with the recommender. Builds that could hang run in a subprocess with a
timeout, so a regression fails instead of blocking the run.
"""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import durable_rules_engine as dre
import pytest

from recommender import Recommender
from recommender.batch import recommend_many
from recommender.compiler import LIMITS, compile_branches
from recommender.conditions import Atom
from recommender.context import parse_context
from recommender.engine import Matcher
from recommender.errors import ContextError

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench/; an installed recommender comes first

from bench.gen import generate  # noqa: E402
from bench.reference import build_floor, expected  # noqa: E402

pytestmark = pytest.mark.slow


def rule_ids(res) -> set[str]:
    ids = {m.rule_id for r in res.recommendations for m in r.rules}
    for w in (*res.withheld, *res.needs_approval):
        ids.update(w.rules)
    return ids


@pytest.fixture(scope="module")
def big():
    pack, contexts = generate(10_000, 200, seed=7)
    rec = Recommender([], packs=[pack], autoload=False)
    yield pack, contexts, rec
    rec.rulebook.retire()


def test_ten_thousand_rules_match_the_reference(big):
    pack, contexts, rec = big
    book = rec.rulebook
    exp = expected(pack, contexts)
    assert 0.01 < sum(map(len, exp)) / len(exp) / 10_000 < 0.04  # the generator's ~2% match rate
    floor = build_floor(pack)
    ids = [r.id for r in book.rules]
    for raw, want in zip(contexts, exp):
        ctx = parse_context(raw)
        fired, mismatched = book.matcher.match(lambda p: book.getters[p](ctx))
        assert {ids[ri] for ri, _ in fired} == want
        assert mismatched == []
        assert set(floor(raw)) == want
    for raw, want in list(zip(contexts, exp))[:15]:  # end to end: every matched rule is accounted for
        assert rule_ids(rec.recommend(raw)) == want
    assert book.matcher.unit_count > 1


def test_two_thousand_thresholds_on_one_field_compile_and_evaluate():
    code = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, "tests")
        from helpers import make, gesture, rule, ctx
        rules = [rule(f"r{i}", f"interaction.cost {'ge' if i % 3 else 'lt'} {i / 4}", "g") for i in range(2400)]
        rec = make([gesture("g")], rules)
        out = {"units": rec.rulebook.matcher.unit_count, "counts": {}}
        for cost in (0, 0.25, 17.5, 299.9, 450, 599.75, 1000):
            res = rec.explain(ctx(interaction={"cost": cost}))
            out["counts"][str(cost)] = len(res.rules_matched)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    for cost, n in out["counts"].items():
        c = float(cost)
        want = sum(1 for i in range(2400) if (c >= i / 4 if i % 3 else c < i / 4))
        assert n == want, (cost, n, want)
    assert out["units"] >= 2400 // LIMITS["unit_rules"]


def test_siblings_waiting_up_the_path_count_towards_the_stack_limit():
    # 40 true tests under the root, and 40 more under one of them: each node is within the
    # engine's 64, but the assert's depth-first stack holds up to 79 and fails with 303.
    # (Equality tests: no guard tests can be inserted, the packing alone must split.)
    items = [(("a", i), (Atom("interaction.attributes.n", "ne", float(i), "number"),)) for i in range(40)]
    items += [(("c", i), (Atom("interaction.attributes.n", "ne", 39.0, "number"),
                          Atom("interaction.cost", "ne", float(i), "number"))) for i in range(40)]
    units = compile_branches(items)
    assert len(units) >= 2
    m = Matcher(units)
    try:
        fired, _ = m.match({"interaction.attributes.n": 100.0, "interaction.cost": 100.0}.get)
        assert len(fired) == 80
    finally:
        m.retire()


def test_many_thresholds_under_one_node_share_a_unit_through_guard_tests():
    # 300 `cost ge i` can all hold at once: without guards each unit could take 56 of them.
    items = [(i, (Atom("interaction.cost", "ge", float(i), "number"),)) for i in range(300)]
    units = compile_branches(items)
    assert len(units) == 300 // LIMITS["unit_rules"] + 1
    m = Matcher(units)
    try:
        for cost in (-1.0, 0.0, 17.0, 150.5, 299.0, 1000.0):
            fired, _ = m.match({"interaction.cost": cost}.get)
            assert sorted(fired) == [i for i in range(300) if cost >= i]
    finally:
        m.retire()


def test_a_fact_that_reached_no_rule_is_not_stored():
    rec = Recommender([], packs=[generate(50, 1, seed=3)[0]], autoload=False)
    m = rec.rulebook.matcher
    rec.recommend({"interaction": {"issue": "billing", "channel": "pos"}})
    for live in m._units:
        for sid in m._free:
            try:
                assert json.loads(dre.get_facts(live.handle, sid)) == []
            except dre.error:
                pass  # a state that was never created
    rec.rulebook.retire()


def test_recommend_many_equals_the_loop():
    pack, contexts = generate(300, 60, seed=11)
    rec = Recommender([], packs=[pack], autoload=False)
    batch = contexts + contexts[:20] + [json.dumps(contexts[3]), parse_context(contexts[4])]
    loop = [rec.recommend(c).model_dump() for c in batch]
    many = recommend_many(rec, batch)
    assert [r.model_dump() for r in many] == loop
    assert many[0] is not many[60]  # repeated contexts get separate, equal results
    shipped = Recommender(autoload=False)
    rng = random.Random(2)
    ctxs = [{"customer": {"tenure_years": rng.choice([0.1, 3, 12]), "lifetime_value": rng.choice([0.0, 900.0]),
                          "is_vip": rng.random() < 0.3},
             "interaction": {"issue": rng.choice(["flat_tire", "oil_change", "late_delivery", "billing_error"]),
                             "cost": rng.choice([5, 40, 250]), "wait_minutes": rng.choice([0, 25, 60])},
             "staff": {"level": rng.choice(["synthetic", "genuine", "super"])}} for _ in range(80)]
    assert [r.model_dump() for r in recommend_many(shipped, ctxs)] == [shipped.recommend(c).model_dump() for c in ctxs]
    assert [r.model_dump() for r in recommend_many(shipped, ctxs, budget=30, max_extras=1)] == \
        [shipped.recommend(c, budget=30, max_extras=1).model_dump() for c in ctxs]
    with pytest.raises(ContextError, match=r"2\.interaction"):
        recommend_many(shipped, [ctxs[0], ctxs[1], {"interaction": {}}])
    with pytest.raises(ContextError, match=r"1\.interaction"):
        recommend_many(shipped, [parse_context(ctxs[0]), {"interaction": {"issue": 5}}])
    rec.rulebook.retire()


def test_recommend_many_keeps_order_across_stage_chunks_plugins_and_repeats(monkeypatch):
    """Contexts of a business with an adjusting plugin run one by one, the rest in staged
    chunks; the answers come back in input order, equal to the loop's."""
    from recommender import batch, hookimpl

    calls: list[str] = []

    class Tag:
        __name__ = "tag"

        @hookimpl
        def recommender_adjust_recommendations(self, recommendations, context):
            calls.append(context.interaction.issue)
            for r in recommendations:
                r.agent_reason += " (tagged)"
            return recommendations

    monkeypatch.setattr(batch, "_STAGE", 7)
    pack, contexts = generate(200, 40, seed=4)
    rec = Recommender([], packs=[pack], plugins=[Tag()], autoload=False,
                      plugin_config={"businesses": {"cafe": ["tag"]}, "default": []})
    mixed = [{**c, "business": {"id": "cafe"}} if i % 3 == 0 else c for i, c in enumerate(contexts)]
    mixed += mixed[:5]
    loop = [rec.recommend(c).model_dump() for c in mixed]
    loop_calls, calls[:] = list(calls), []
    many = recommend_many(rec, mixed)
    assert [r.model_dump() for r in many] == loop
    assert calls == loop_calls  # the plugin ran once per context, in input order
    assert any(r.business == "cafe" and r.recommendations and r.recommendations[0].agent_reason.endswith("(tagged)")
               for r in many)
    rec.rulebook.retire()


def test_rss_stays_flat_over_fifty_thousand_calls():
    pack, contexts = generate(50, 200, seed=5)
    rec = Recommender([], packs=[pack], autoload=False)
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096  # noqa: E731
    for c in contexts * 10:
        rec.recommend(c)
    gc.collect()
    start = rss()
    for i in range(50_000):
        rec.recommend(contexts[i % len(contexts)])
    gc.collect()
    assert rss() - start < 8 * 1024 * 1024
    rec.rulebook.retire()
