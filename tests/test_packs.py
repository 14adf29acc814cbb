"""Rule pack loading: every problem reported as file:line: field: message, never half-loaded."""

import textwrap
from pathlib import Path

import pytest

from recommender import Recommender, RulePackError, load_pack
from recommender.packs import pack_json_schema

GOOD = """\
pack: shop
version: "2.1"
gestures:
  - id: waive_fee
    title: Waive the fee
    category: fee_waiver
    tier: exceed
    cost: interaction.cost
    authority: genuine
    script: "Thanks for {customer.tenure_years} years, {customer.name|friend}."
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


def write(folder: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    """A pack file: text dedented, bytes as they are (tests/test_pack_hardening.py uses it too)."""
    p = folder / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(textwrap.dedent(text))
    return p


def refused(paths: list[Path]) -> list[str]:
    """What Recommender(paths) reports; it must refuse."""
    with pytest.raises(RulePackError) as exc:
        Recommender(paths, autoload=False)
    return [str(p) for p in exc.value.problems]


def problems(tmp_path, text):
    return refused([write(tmp_path, text)])


def test_good_pack_loads_with_both_condition_forms(tmp_path):
    pack = load_pack(write(tmp_path, GOOD))
    assert pack.name == "shop" and pack.version == "2.1"
    assert [a.op for a in pack.rules[0].branches[0]] == ["ge", "le"]


def test_bad_yaml_names_file_and_line(tmp_path):
    out = problems(tmp_path, "pack: x\ngestures:\n  - id: a\n    title: [unclosed\n")
    assert out[0].startswith(f"{tmp_path / 'p.yaml'}:")
    assert "invalid YAML" in out[0]


def test_unknown_gesture_is_reported_at_the_rule_line(tmp_path):
    out = problems(tmp_path, GOOD.replace("then: waive_fee", "then: waive_feee"))
    assert out == [f"{tmp_path / 'p.yaml'}:17: rules.loyal.then: unknown gesture 'waive_feee' (did you mean 'waive_fee'?)"]


def test_unknown_field_suggests_the_right_one(tmp_path):
    out = problems(tmp_path, GOOD.replace("customer.tenure_years ge 2", "customer.tenure_yaers ge 2"))
    assert len(out) == 1
    assert ":15:" in out[0] and "unknown field 'customer.tenure_yaers'" in out[0]
    assert "did you mean 'customer.tenure_years'" in out[0]


def test_unknown_operator_is_an_error_not_a_silent_non_match(tmp_path):
    out = problems(tmp_path, GOOD.replace("customer.tenure_years ge 2", "customer.tenure_years bigger 2"))
    assert ":15:" in out[0] and "unknown operator 'bigger'" in out[0]


def test_wrong_value_type_is_an_error(tmp_path):
    out = problems(tmp_path, GOOD.replace("customer.tenure_years ge 2", "customer.tenure_years ge two"))
    assert "customer.tenure_years is a number, but the value 'two' is a string" in out[0]
    out = problems(tmp_path, GOOD.replace("customer.tenure_years ge 2", "customer.is_new eq 1"))
    assert "customer.is_new is a bool" in out[0]


def test_operator_must_fit_the_field(tmp_path):
    out = problems(tmp_path, GOOD.replace("customer.tenure_years ge 2", "customer.life_events ge 2"))
    assert "operator 'ge' does not apply to customer.life_events (list)" in out[0]


def test_schema_errors_carry_the_field_path_and_line(tmp_path):
    out = problems(tmp_path, GOOD.replace("tier: exceed", "tier: amazing").replace("priority: 60", "priority: 600"))
    assert any(":7: gestures[0].tier:" in p for p in out)
    assert any(":18: rules[0].priority:" in p for p in out)


def test_unknown_keys_and_placeholders_are_rejected(tmp_path):
    out = problems(tmp_path, GOOD.replace("{customer.name|friend}", "{customer.__class__}"))
    assert any("gestures[0].script" in p and "not a context field" in p for p in out)
    out = problems(tmp_path, GOOD.replace("    priority: 60\n", "    priority: 60\n    colour: red\n"))
    assert any("rules[0].colour: Extra inputs are not permitted" in p for p in out)


def test_an_invalid_pack_never_half_loads(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("pack: shop", "pack: other").replace("id: waive_fee", "id: other_fee")
          .replace("then: waive_fee", "then: nope").replace("id: loyal", "id: other"), "b.yaml")
    with pytest.raises(RulePackError):
        Recommender([tmp_path], autoload=False)


def test_duplicate_gesture_names_both_files(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("pack: shop", "pack: shop2").replace("id: loyal", "id: loyal2"), "b.yaml")
    with pytest.raises(RulePackError) as exc:
        Recommender([tmp_path], autoload=False)
    msg = str(exc.value)
    assert "gesture id 'waive_fee' is defined twice" in msg and "a.yaml" in msg and "b.yaml" in msg


def test_open_field_used_with_two_types_is_an_error(tmp_path):
    text = GOOD.replace("customer.tenure_years ge 2", "interaction.attributes.bay eq front") + (
        "  - id: second\n    when: interaction.attributes.bay gt 3\n    then: waive_fee\n    because: x.\n")
    out = problems(tmp_path, text)
    assert any("interaction.attributes.bay is compared as a number here but as a string" in p for p in out)


def test_json_schema_describes_the_format():
    schema = pack_json_schema()
    assert schema["required"] == ["pack"]
    assert "when" in schema["$defs"]
    assert "tier" in schema["properties"]["gestures"]["items"]["properties"]
