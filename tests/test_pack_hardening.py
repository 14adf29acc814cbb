"""Hostile and careless rule packs: every one is refused at load, quickly, as file:line problems
(from the library, `rules check` and the service's reload alike), never a hang, a traceback,
a 500 or a wrong answer (issue 15 items 1, 7, 8, 12; issue 16 item 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recommender import Recommender, RulePackError, load_pack
from recommender import pack_limits
from recommender.packs import pattern_problems
from test_packs import refused, write  # the pack helpers, shared

GOOD = """\
pack: shop
version: "2.1"
gestures:
  - id: waive_fee
    title: Waive the fee
    category: fee_waiver
    tier: meet
    cost: interaction.cost
    script: "On us, {customer.name|friend}."
rules:
  - id: loyal
    when:
      all:
        - customer.tenure_years ge 2
        - {field: interaction.cost, op: le, value: 40}
    then: waive_fee
    priority: 60
    because: Don't nickel-and-dime loyal customers.
"""


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from recommender.cli import main; main()", "rules", "check", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={"RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "300"})


def assert_refused_cleanly(p: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    for text in expected:
        assert text in p.stdout, p.stdout


# -- 1. YAML alias bombs ----------------------------------------------------------------------


def alias_bomb(levels: int = 20) -> str:
    lines = [
        "pack: bomb",
        "gestures: []",
        "rules:",
        "  - id: r",
        "    then: g",
        "    because: boom.",
        "    when:",
        "      all:",
        "        - &w0 {field: interaction.cost, op: ge, value: 1}",
    ]
    lines += [f"        - &w{i} {{all: [*w{i - 1}, *w{i - 1}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_the_alias_line_in_well_under_a_second(tmp_path):
    text = alias_bomb(20)
    assert len(text) < 1100  # the reproducer: ~900 bytes that expand to 2**20 conditions
    path = write(tmp_path, text)
    start = time.perf_counter()
    out = refused([path])
    assert time.perf_counter() - start < 1.0
    assert out == [f"{path}:10: YAML alias *w0 (to the anchor &w0 at line 9) is not allowed in a rule pack: "
                   "aliases are refused (they can hide exponentially large data); write the value out"]
    p = check(path)
    assert_refused_cleanly(p, f"{path}:10: YAML alias *w0")


def test_an_alias_bomb_inside_an_in_list_is_refused_before_the_list_is_expanded(tmp_path):
    lines = ["pack: bomb", "gestures: []", "rules:", "  - id: r", "    then: g", "    because: boom.",
             "    when: {field: interaction.channel, op: in, value: &v0 [phone, chat]}", "x:"]
    lines += [f"  - &v{i} [*v{i - 1}, *v{i - 1}]" for i in range(1, 25)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    start = time.perf_counter()
    out = refused([path])
    assert time.perf_counter() - start < 1.0
    assert len(out) == 1 and out[0].startswith(f"{path}:9: YAML alias *v0")


def test_merge_keys_are_aliases_too_and_a_lone_anchor_is_harmless(tmp_path):
    merged = GOOD.replace("  - id: waive_fee\n", "  - &base\n    id: waive_fee\n").replace(
        "rules:\n", "  - <<: *base\n    id: waive_fee_two\nrules:\n")
    out = refused([write(tmp_path, merged)])
    assert len(out) == 1 and "YAML alias *base" in out[0]
    # a lone anchor on any scalar reads as the plain value (ruamel's anchored scalars are
    # subclasses: an anchored true is an int, which strict fields and pydantic 2.7's Literal refuse)
    anchored = (GOOD.replace("    tier: meet\n", "    tier: &t meet\n    contacts_customer: &c true\n")
                .replace("priority: 60", "priority: &p 60").replace("value: 40}", "value: &v 40.5}")
                .replace("    because: Don't", "    because: &b >-\n      Don't"))
    pack = load_pack(write(tmp_path, anchored, "a.yaml"))
    plain = load_pack(write(tmp_path, anchored.replace("&t ", "").replace("&c ", "").replace("&p ", "")
                            .replace("&v ", "").replace("&b ", ""), "b.yaml"))
    gesture, rule = pack.gestures[0], pack.rules[0]
    assert (gesture.tier, gesture.contacts_customer, rule.priority) == ("meet", True, 60)
    assert type(gesture.contacts_customer) is bool and type(rule.priority) is int
    assert rule.because == "Don't nickel-and-dime loyal customers." and type(rule.because) is str
    assert rule.when == plain.rules[0].when and pack.digest == plain.digest


def test_deep_yaml_nesting_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "pack: deep\nrules:\n  - id: r\n    when: " + "[" * 10_000 + "\n")
    out = refused([path])
    assert out == [f"{path}:4: YAML nested deeper than {pack_limits.MAX_YAML_DEPTH} levels"]


def test_deeply_nested_conditions_from_a_plugin_dict_are_refused_not_a_recursion_error():
    when: object = "customer.tenure_years ge 2"
    for _ in range(5_000):
        when = {"not": when}
    pack = {"pack": "deep", "gestures": [], "rules": [{"id": "r", "when": when, "then": "g", "because": "x"}]}
    with pytest.raises(RulePackError) as exc:
        Recommender([], packs=[pack], autoload=False)
    assert f"nested deeper than {pack_limits.MAX_CONDITION_DEPTH} levels" in str(exc.value)


def test_a_rule_with_too_many_tests_is_refused():
    when = [f"customer.tenure_years ge {i}" for i in range(pack_limits.MAX_CONDITION_TESTS + 50)]
    pack = {"pack": "wide", "gestures": [], "rules": [{"id": "r", "when": when, "then": "g", "because": "x"}]}
    with pytest.raises(RulePackError) as exc:
        Recommender([], packs=[pack], autoload=False)
    msgs = [p.message for p in exc.value.problems]
    assert msgs.count(f"more than {pack_limits.MAX_CONDITION_TESTS} tests in one rule; split the rule") == 1


# -- 2. thresholds the engine cannot compare exactly -------------------------------------------


@pytest.mark.parametrize("value, why", [
    (".inf", "must be a finite number, got inf"),
    ("-.inf", "must be a finite number, got -inf"),
    (".nan", "must be a finite number, got nan"),
    ("1e400", "must be a finite number, got inf"),
    ("9223372036854775808", "beyond +-(2**53 - 1)"),
    ("9007199254740992", "beyond +-(2**53 - 1)"),  # 2**53: x = 2**53 + 1 would arrive as 2**53
    ("-1.0e20", "beyond +-(2**53 - 1)"),
])
def test_non_finite_or_inexact_thresholds_are_refused_with_file_and_line(tmp_path, value, why):
    for i, when in enumerate((f"{{field: interaction.cost, op: le, value: {value}}}",
                              f"interaction.cost le {value}",
                              f"{{field: interaction.attributes.x, op: ge, value: {value}}}")):
        text = GOOD.replace("{field: interaction.cost, op: le, value: 40}", when)
        path = write(tmp_path, text, f"p{i}.yaml")
        out = refused([path])
        assert len(out) == 1 and out[0].startswith(f"{path}:15: rules[0].when.all[1]: value of "), out
        assert why in out[0]


def test_the_largest_exact_threshold_still_loads(tmp_path):
    text = GOOD.replace("value: 40}", f"value: {2**53 - 1}}}")
    assert load_pack(write(tmp_path, text)).rules[0].branches[0][1].value == 2**53 - 1


def test_non_finite_thresholds_in_an_in_list_are_refused(tmp_path):
    text = GOOD.replace("{field: interaction.cost, op: le, value: 40}",
                        "{field: interaction.cost, op: in, value: [1, .nan]}")
    out = refused([write(tmp_path, text)])
    assert len(out) == 1 and ":15:" in out[0] and "finite" in out[0]


def test_rules_check_reports_a_non_finite_threshold_without_a_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("value: 40}", "value: .inf}"))
    assert_refused_cleanly(check(path), f"{path}:15: rules[0].when.all[1]: value of interaction.cost must be a finite")


def test_reload_with_a_non_finite_threshold_is_422_and_the_old_rules_keep_serving(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules, GOOD, "shop.yaml")
    with TestClient(create_app(Settings(rules=[rules], auth="none", autoload_plugins=False))) as http:
        before = http.get("/v1/rulepacks").json()["ruleset_version"]
        for name, text in (("inf.yaml", GOOD.replace("value: 40}", "value: .inf}")),
                           ("utf8.yaml", GOOD.encode() + b"# caf\xe9\n")):
            (rules / "shop.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
            r = http.post("/v1/admin/reload")
            assert r.status_code == 422, (name, r.text)
            body = r.json()
            assert body["error"] == "invalid_rule_pack"
            (problem,) = body["problems"]
            assert problem["path"] == str(rules / "shop.yaml")  # whoever fixes the pack gets its real path
            assert problem["line"] == (15 if name == "inf.yaml" else 19), problem
            assert http.get("/v1/rulepacks").json()["ruleset_version"] == before


# -- 3. invalid UTF-8 -------------------------------------------------------------------------


def test_a_pack_with_invalid_utf8_is_one_problem_with_line_and_offset(tmp_path):
    raw = GOOD.encode().replace(b"Waive the fee", b"Waive the f\xe9e")
    path = write(tmp_path, raw)
    offset = raw.index(b"\xe9")
    assert refused([path]) == [f"{path}:5: not valid UTF-8: byte 0xe9 at offset {offset}; save the file as UTF-8"]
    assert_refused_cleanly(check(path), f"{path}:5: not valid UTF-8")


def test_characters_yaml_refuses_are_one_problem_with_their_line(tmp_path):
    path = write(tmp_path, GOOD.encode().replace(b"Waive the fee", b"Waive\x00the fee"))
    assert refused([path]) == [f"{path}:5: invalid YAML: unacceptable character #x0000 "
                                "(special characters are not allowed)"]


def test_a_control_character_in_a_condition_value_is_refused(tmp_path):
    text = GOOD.replace("customer.tenure_years ge 2", "{field: interaction.issue, op: eq, value: \"flat\\ttire\"}")
    out = refused([write(tmp_path, text)])
    assert len(out) == 1 and ":14: rules[0].when.all[0]: value of interaction.issue contains a control character" in out[0]


def test_an_empty_pack_file_says_so(tmp_path):
    path = write(tmp_path, "\n\n")
    assert refused([path]) == [f"{path}: the file is empty"]


# -- 4. strict typing, ids, caps ---------------------------------------------------------------


@pytest.mark.parametrize("priority", ["true", "'90'", "60.0"])
def test_priority_must_be_an_integer(tmp_path, priority):
    out = refused([write(tmp_path, GOOD.replace("priority: 60", f"priority: {priority}"))])
    assert len(out) == 1 and out[0].startswith(f"{tmp_path / 'p.yaml'}:17: rules[0].priority: "), out
    assert "valid integer" in out[0]


def test_a_rule_must_recommend_something(tmp_path):
    out = refused([write(tmp_path, GOOD.replace("then: waive_fee", "then: []"))])
    assert out == [f"{tmp_path / 'p.yaml'}:16: rules[0].then: Value error, a rule must recommend at least one "
                   "gesture: 'then' is empty"]


def test_other_fields_are_strict_too(tmp_path):
    text = GOOD.replace("    script:", "    follow_up_days: '3'\n    script:")
    out = refused([write(tmp_path, text)])
    assert len(out) == 1 and ":9: gestures[0].follow_up_days:" in out[0]
    out = refused([write(tmp_path, GOOD.replace("    tier: meet", "    tier: meet\n    cost: true").replace(
        "    cost: interaction.cost\n", ""))])
    assert len(out) >= 1 and all(":8: gestures[0].cost" in p for p in out), out


@pytest.mark.parametrize("pattern", ["café", "naïve", "日本"])
def test_a_non_ascii_contains_pattern_on_text_is_refused_as_the_docs_say(tmp_path, pattern):
    text = GOOD.replace("customer.tenure_years ge 2", f"customer.preferences.drink contains {pattern}")
    out = refused([write(tmp_path, text)])
    assert len(out) == 1 and ":14: rules[0].when.all[0]:" in out[0] and "takes an ASCII text" in out[0]
    # list items are compared whole, not as patterns: any text is fine there
    text = GOOD.replace("customer.tenure_years ge 2", f"customer.interests contains {pattern}")
    assert load_pack(write(tmp_path, text, "ok.yaml")).rules[0].branches[0][0].value == pattern
    assert "ASCII text" in Path(__file__).parent.parent.joinpath("docs/engine.md").read_text()


def test_contains_patterns_the_engine_cannot_run_are_refused_at_load(tmp_path):
    # durable-rules refuses this 16-character pattern (error 503 for the whole ruleset) ...
    pattern = "abaaaaabaaabaaab"
    assert "refuses this pattern" in pattern_problems([pattern])[pattern]
    text = GOOD.replace("customer.tenure_years ge 2", f"customer.preferences.drink contains {pattern}")
    out = refused([write(tmp_path, text)])
    assert len(out) == 1 and ":14: rules[0].when: 'contains' 'abaaaaabaaabaaab' on customer.preferences.drink: " \
        "durable-rules refuses this pattern" in out[0]
    # ... and past a length it would silently never match; the cap is well below that
    long = "oatmilk" * 20
    assert len(long) > pack_limits.MAX_PATTERN_CHARS
    out = refused([write(tmp_path, GOOD.replace("customer.tenure_years ge 2",
                                                 f"customer.preferences.drink contains {long}"))])
    assert len(out) == 1 and f"at most {pack_limits.MAX_PATTERN_CHARS} characters" in out[0]
    assert pattern_problems(["oat milk", "(oat)", "x" * pack_limits.MAX_PATTERN_CHARS]) == {}


def test_not_contains_on_text_is_a_load_error_not_a_compiler_crash(tmp_path):
    for when in ("customer.preferences.drink not_contains oat", "{not: customer.preferences.drink contains oat}"):
        out = refused([write(tmp_path, GOOD.replace("customer.tenure_years ge 2", when))])
        assert len(out) == 1 and ":14:" in out[0] and "cannot negate a pattern match on text" in out[0], out


def test_duplicate_ids_report_both_lines(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("pack: shop", "pack: shop2"), "b.yaml")
    out = refused([tmp_path])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert f"{b}:4: gestures.waive_fee: gesture id 'waive_fee' is defined twice: in {a}:4 and in {b}:4" in out
    assert f"{b}:11: rules.loyal: rule id 'loyal' is defined twice: in {a}:11 and in {b}:11" in out


def test_duplicate_ids_in_one_file_report_both_lines(tmp_path):
    text = GOOD + textwrap.indent(GOOD.split("rules:\n")[1], "")
    path = write(tmp_path, text)
    out = refused([path])
    assert out == [f"{path}:19: rules.loyal: rule id 'loyal' is defined twice: in {path}:11 and in {path}:19"]


def test_a_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path):
    rule = "  - id: r{i}\n    when: customer.tenure_years ge {i}\n    then: waive_fee\n    because: x.\n"
    text = GOOD + "".join(rule.format(i=i) for i in range(60_000))
    path = write(tmp_path, text)
    assert path.stat().st_size > pack_limits.MAX_PACK_BYTES
    start = time.perf_counter()
    out = refused([path])
    assert time.perf_counter() - start < 1.0
    assert out == [f"{path}: the file is larger than {pack_limits.MAX_PACK_BYTES // 1024} KiB, the cap for one pack; "
                   "split it into several packs"]


def test_the_rule_cap_stops_reading_at_the_rule_that_crosses_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pack_limits, "MAX_RULES_PER_PACK", 3)
    rule = "  - id: r{i}\n    when: customer.tenure_years ge {i}\n    then: waive_fee\n    because: x.\n"
    path = write(tmp_path, GOOD + "".join(rule.format(i=i) for i in range(10)))
    assert refused([path]) == [f"{path}:27: rules: more than 3 rules in one pack; split it into several packs"]
    # the same cap for a plugin's in-memory pack
    pack = {"pack": "mem", "gestures": [], "rules": [{"id": f"r{i}"} for i in range(5)]}
    with pytest.raises(RulePackError, match="rules: more than 3 rules in one pack"):
        Recommender([], packs=[pack], autoload=False)


def test_the_rulebook_cap_names_the_pack_and_line_that_cross_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pack_limits, "MAX_RULES_PER_BOOK", 1)
    write(tmp_path, GOOD, "a.yaml")
    b = write(tmp_path, GOOD.replace("pack: shop", "pack: b").replace("id: waive_fee", "id: b_fee")
              .replace("then: waive_fee", "then: b_fee").replace("id: loyal", "id: b_loyal"), "b.yaml")
    out = refused([tmp_path])
    assert out == [f"{b}:11: rules: more than 1 rules in force for one business (at 'b_loyal'); "
                   "split the business's packs or select fewer plugins"]


# -- 6. one pass finds everything ----------------------------------------------------------------

FIVE_MISTAKES = """\
version: "1"
gestures:
  - id: waive_fee
    title: Waive the fee
    category: fee_waiver
    tier: amazing
    script: "On us."
rules:
  - id: loyal
    when:
      all:
        - customer.tenure_yaers ge 2
        - interaction.cost lte 40
        - customer.is_new eq 1
    then: waive_fee
    priority: '90'
    because: x.
  - id: second
    when: interaction.issue eq flat_tire
    then: wave_fee
    because: y.
    colour: red
"""


def test_rules_check_reports_every_mistake_of_a_file_in_one_run(tmp_path):
    path = write(tmp_path, FIVE_MISTAKES)
    p = check(path)
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    expected = [  # in file order, whatever stage of checking found them
        f"{path}: pack: Field required",
        f"{path}:6: gestures[0].tier: Input should be 'recover', 'meet' or 'exceed'",
        f"{path}:12: rules[0].when.all[0]: unknown field 'customer.tenure_yaers' (did you mean 'customer.tenure_years'?)",
        f"{path}:13: rules[0].when.all[1]: unknown operator 'lte' (did you mean 'le'?); use one of eq, ne,",
        f"{path}:14: rules[0].when.all[2]: customer.is_new is a bool, but the value 1 is a number",
        f"{path}:16: rules[0].priority: Input should be a valid integer",
        f"{path}:20: rules.second.then: unknown gesture 'wave_fee' (did you mean 'waive_fee'?)",
        f"{path}:22: rules[1].colour: Extra inputs are not permitted",
    ]
    assert len(lines) == len(expected), lines
    for want, line in zip(expected, lines):
        assert line.startswith(want), (want, line)
    assert f"{len(expected)} problem(s)" in p.stderr


def test_keys_the_loader_sets_cannot_be_written_in_a_pack(tmp_path):
    text = GOOD.replace("    tier: meet\n", "    tier: meet\n    source: /etc/passwd\n").replace(
        "    priority: 60\n", "    priority: 60\n    label: core:x.yaml\n")
    out = refused([write(tmp_path, text)])
    assert out == [f"{tmp_path / 'p.yaml'}:8: gestures[0].source: Extra inputs are not permitted (set by the loader)",
                   f"{tmp_path / 'p.yaml'}:19: rules[0].label: Extra inputs are not permitted (set by the loader)"]


def test_unknown_keys_get_a_suggestion(tmp_path):
    out = refused([write(tmp_path, GOOD.replace("    priority: 60", "    prority: 60"))])
    assert out == [f"{tmp_path / 'p.yaml'}:17: rules[0].prority: Extra inputs are not permitted "
                   "(did you mean 'priority'?)"]


def test_rules_check_collects_problems_across_files(tmp_path):
    write(tmp_path, GOOD.replace("pack: shop\n", ""), "a.yaml")  # a problem of its own ...
    b = write(tmp_path, GOOD.replace("pack: shop", "pack: b").replace("id: waive_fee", "id: b_fee")
              .replace("id: loyal", "id: b_loyal"), "b.yaml")  # ... and b's rule uses a's gesture: fine
    c = write(tmp_path, GOOD.replace("pack: shop", "pack: c").replace("id: waive_fee", "id: c_fee")
              .replace("id: loyal", "id: loyal"), "c.yaml")  # a rule id a.yaml already has
    p = check(tmp_path)
    lines = p.stdout.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'a.yaml'}: pack: Field required"
    assert f"{c}:11: rules.loyal: rule id 'loyal' is defined twice: in {tmp_path / 'a.yaml'}:10 and in {c}:11" in lines
    assert not any(str(b) in line for line in lines), lines
    assert len(lines) == 2


def test_json_schema_says_priority_is_an_integer_and_then_is_not_empty():
    from recommender.packs import pack_json_schema

    rule = pack_json_schema()["properties"]["rules"]["items"]
    assert rule["properties"]["priority"]["type"] == "integer"
    assert not {"source", "label", "line", "then_line"} & set(rule["properties"])
    then_list = [s for s in rule["properties"]["then"]["anyOf"] if s.get("type") == "array"]
    assert then_list and then_list[0]["minItems"] == 1
    gesture = pack_json_schema()["properties"]["gestures"]["items"]
    assert not {"source", "label", "line"} & set(gesture["properties"])
    json.dumps(pack_json_schema())
