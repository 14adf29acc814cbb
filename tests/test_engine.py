"""durable-rules' sharp edges, pinned: each raw fact we rely on, and our layer avoiding it.

Scenarios that would hang or crash the interpreter run in a subprocess with a timeout, so
a regression fails the test instead of blocking or killing the run.
"""

import gc
import json
import subprocess
import sys
import textwrap
import threading

import durable_rules_engine as dre
import pytest

from recommender.compiler import LIMITS, compile_branches, encode_value
from recommender.conditions import Atom
from recommender.engine import Matcher
from recommender.errors import ContextError, EngineError, RulePackError

from helpers import ctx, gesture, make, rule


def raw_fired(handle, fact):
    res = dre.assert_fact(handle, json.dumps(fact))
    out = []
    if res[0] == 0:
        started = dre.start_action_for_state(handle, res[1])
        msg = started[1] if started else None
        while msg:
            out.append(msg[2:msg.index('"', 2)])
            msg = dre.complete_and_start_action(handle, res[1])
    dre.retract_fact(handle, json.dumps(fact))
    return out


def run_isolated(code, timeout=60):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


# -- raw facts about durable-rules 2.0.28 that the adapter is built on ---------------

def test_raw_assert_fact_fires_every_matching_rule():
    h = dre.create_ruleset("pin_all", json.dumps({
        "a": {"all": [{"m": {"$gt": {"x": 1}}}]}, "b": {"all": [{"m": {"$gt": {"x": 2}}}]}}))
    assert sorted(raw_fired(h, {"sid": "1", "x": 5})) == ["a", "b"]
    dre.delete_ruleset(h)


def test_raw_exponent_floats_without_a_dot_are_rejected_and_our_encoding_is_read():
    with pytest.raises(dre.error, match="204"):
        dre.create_ruleset("pin_exp", '{"a": {"all": [{"m": {"$gte": {"x": 1e-05}}}]}}')
    assert encode_value(1e-05) == "1.0e-05" and encode_value(1e16) == "1.0e+16"
    rec = make([gesture("g")], [rule("r", "interaction.attributes.tiny ge 0.00001", "g")])
    assert rec.recommend(ctx(interaction={"attributes": {"tiny": 1e-05}})).gesture_ids() == ["g"]
    assert rec.recommend(ctx(interaction={"attributes": {"tiny": 9e-06}})).gesture_ids() == []


def test_raw_int64_saturates_so_we_refuse_numbers_beyond_exact_comparison():
    h = dre.create_ruleset("pin_int", json.dumps({"a": {"all": [{"m": {"$gt": {"x": 10**19}}}]}}))
    assert raw_fired(h, {"sid": "1", "x": 10**20}) == []  # silently wrong in the engine
    dre.delete_ruleset(h)
    # so neither a rule threshold nor a context value beyond +-2**53 gets that far
    with pytest.raises(RulePackError, match="2\\*\\*53"):
        make([gesture("g")], [rule("r", f"interaction.attributes.big gt {10**19}", "g")])
    rec = make([gesture("g")], [rule("r", "interaction.attributes.big gt 1000", "g")])
    with pytest.raises(ContextError, match="interaction.attributes.big"):
        rec.recommend(ctx(interaction={"attributes": {"big": 2**63 - 1}}))
    assert rec.recommend(ctx(interaction={"attributes": {"big": 2**53}})).gesture_ids() == ["g"]


def test_raw_unknown_operator_is_accepted_and_never_matches():
    h = dre.create_ruleset("pin_op", json.dumps({"a": {"all": [{"m": {"$contains": {"x": "a"}}}]}}))
    assert raw_fired(h, {"sid": "1", "x": "a"}) == []
    assert raw_fired(h, {"sid": "1", "x": ["a"]}) == []
    dre.delete_ruleset(h)
    # ours: 'contains' compiles to $iany / $mt and does match
    rec = make([gesture("g")], [rule("r", "customer.interests contains golf", "g")])
    assert rec.recommend(ctx(customer={"interests": ["golf"]})).gesture_ids() == ["g"]


def test_raw_more_than_64_true_siblings_fail_and_our_packing_avoids_it():
    defs = {f"r{i}": {"all": [{"m": {"$gte": {"x": i}}}]} for i in range(70)}
    h = dre.create_ruleset("pin_303", json.dumps(defs))
    with pytest.raises(dre.error, match="303"):
        dre.assert_fact(h, json.dumps({"sid": "1", "x": 100}))
    rules = [rule(f"r{i}", f"interaction.cost ge {i}", "g") for i in range(300)]
    rec = make([gesture("g")], rules)
    res = rec.explain(ctx(interaction={"cost": 1000}))
    assert len(res.rules_matched) == 300


def test_more_than_4095_rules_are_split_across_rulesets():
    rules = [rule(f"r{i}", {"all": [f"interaction.issue eq i{i % 50}", f"interaction.cost ge {i // 50}"]}, "g")
             for i in range(5000)]
    rec = make([gesture("g")], rules)
    assert rec.rulebook.matcher.unit_count >= 2
    res = rec.explain(ctx("i7", interaction={"cost": 3}))
    assert sorted(res.rules_matched) == sorted(f"r{i}" for i in range(5000) if i % 50 == 7 and i // 50 <= 3)


def test_many_fields_stay_under_the_property_limit():
    rules = [rule(f"r{i}", f"interaction.attributes.k{i} eq on", "g") for i in range(300)]
    rec = make([gesture("g")], rules)
    assert all(len(u.unit.fields) <= LIMITS["fields"] for u in rec.rulebook.matcher._units)
    res = rec.explain(ctx(interaction={"attributes": {"k7": "on", "k250": "on"}}))
    assert res.rules_matched == ["r250", "r7"]


def test_over_512_distinct_tests_under_one_node_do_not_hang():
    proc = run_isolated("""
        import sys; sys.path.insert(0, "tests")
        from helpers import make, gesture, rule, ctx
        rules = [rule(f"r{i}", f"interaction.attributes.seg eq x{i}", "g") for i in range(2000)]
        rules += [rule(f"t{i}", f"customer.lifetime_value gt {i}", "g") for i in range(600)]
        rec = make([gesture("g")], rules)
        res = rec.explain(ctx(interaction={"attributes": {"seg": "x1999"}}, customer={"lifetime_value": 10.5}))
        print(len(res.rules_matched))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(1 + 11)


def test_a_rule_of_only_absence_tests_does_not_refire_forever():
    # Raw durable: a rule whose only test is $nex matches the engine's own state fact.
    proc = run_isolated("""
        import sys; sys.path.insert(0, "tests")
        from helpers import make, gesture, rule, ctx
        rec = make([gesture("g")], [rule("r", "customer.tenure_years exists false", "g")])
        for _ in range(100):
            assert rec.explain(ctx()).rules_matched == ["r"]
        print("ok")
    """, timeout=30)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_retiring_states_that_never_fired_does_not_crash():
    # delete_state on a state in which no action ran frees garbage; retire() uses a janitor.
    proc = run_isolated("""
        import sys; sys.path.insert(0, "tests")
        from helpers import make, gesture, rule, ctx
        for i in range(200):
            rec = make([gesture("g")], [rule("r", "interaction.issue eq never", "g")])
            rec.recommend(ctx())
            rec.rulebook.retire()
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_no_engine_threads_are_started():
    before = threading.active_count()
    for _ in range(20):
        make([gesture("g")], [rule("r", "interaction.issue eq x", "g")]).recommend(ctx("x"))
    assert threading.active_count() == before


def test_nothing_survives_a_call():
    rec = make([gesture("g")], [rule("r", "interaction.cost ge 1", "g")])
    rec.recommend(ctx(interaction={"cost": 5}))
    live = rec.rulebook.matcher._units[0]
    for sid in rec.rulebook.matcher._free:
        assert json.loads(dre.get_facts(live.handle, sid)) == []
    # and the next call is not influenced by the previous one
    assert rec.recommend(ctx(interaction={"cost": 0})).gesture_ids() == []


def test_threads_get_the_same_answers_as_a_single_thread():
    rules = [rule(f"r{i}", {"all": [f"interaction.cost ge {i}", f"customer.tenure_years le {i % 7}"]}, f"g{i % 5}")
             for i in range(60)]
    rec = make([gesture(f"g{i}", tier="meet") for i in range(5)], rules)
    contexts = [ctx(interaction={"cost": c}, customer={"tenure_years": t}) for c in range(0, 70, 3) for t in range(8)]
    expected = [rec.explain(c).rules_matched for c in contexts]
    errors = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def worker(offset):
        for i in range(300):
            k = (i + offset) % len(contexts)
            got = rec.explain(contexts[k]).rules_matched
            if got != expected[k]:
                errors.append((k, got))

    try:
        threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        sys.setswitchinterval(old)
    assert errors == []


def test_memory_stays_flat_over_many_calls():
    rec = make([gesture("g")], [rule("r", {"all": ["interaction.cost ge 1", "customer.tenure_years ge 1"]}, "g")])
    c = ctx(interaction={"cost": 5}, customer={"tenure_years": 2})
    for _ in range(2000):
        rec.recommend(c)
    gc.collect()
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096  # noqa: E731
    start = rss()
    for _ in range(10000):
        rec.recommend(c)
    gc.collect()
    assert rss() - start < 4 * 1024 * 1024


def test_reload_frees_engine_memory():
    proc = run_isolated("""
        import sys, gc; sys.path.insert(0, "tests")
        from helpers import make, gesture, rule, ctx
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
        rec = make([gesture("g")], [rule(f"r{i}", f"interaction.cost ge {i}", "g") for i in range(50)])
        for _ in range(20): rec.reload(); rec.recommend(ctx(interaction={"cost": 20}))
        gc.collect(); start = rss()
        for _ in range(300): rec.reload(); rec.recommend(ctx(interaction={"cost": 20}))
        gc.collect(); print((rss() - start) // 1024 // 1024)
    """, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) < 40


def test_a_dropped_matcher_frees_its_rulesets_except_while_the_interpreter_exits(monkeypatch):
    units = compile_branches([("a", (Atom("interaction.issue", "eq", "x", "string"),))])
    values = {"interaction.issue": "x"}
    m = Matcher(units)
    # During interpreter shutdown __del__ does nothing: calls made then can abort the process
    # (the compiled build's final garbage collection did), and its memory goes with it.
    monkeypatch.setattr(sys, "is_finalizing", lambda: True)
    m.__del__()
    assert m.match(values.get) == (["a"], [])  # still live
    monkeypatch.undo()
    m.__del__()  # an ordinary drop: the rulesets are retired
    with pytest.raises(EngineError, match="retired"):
        m.match(values.get)


def test_matcher_direct_payloads():
    units = compile_branches([("a", (Atom("interaction.issue", "eq", "x", "string"),)),
                              ("b", (Atom("interaction.cost", "gt", 1, "number"),))])
    m = Matcher(units)
    values = {"interaction.issue": "x", "interaction.cost": 2.0}
    fired, mismatched = m.match(values.get)
    assert sorted(fired) == ["a", "b"] and mismatched == []
    m.retire()
