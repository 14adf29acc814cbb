"""The two pack readers agree: libyaml's fast reader (``yaml_fast``) gives exactly what ruamel's
bounded reader (``yaml_ruamel``) gives (values, their types, every line) for what it reads, and
declines everything else, which ruamel then reads or refuses with its own message (issue 17,
item 6: a 10,000-rule pack loads in seconds)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from recommender import load_pack, pack_limits, yaml_fast, yaml_ruamel
from recommender.errors import RulePackError
from recommender.pack_yaml import parse_pack_text
from test_pack_hardening import GOOD
from test_packs import write

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("rules/*.yaml"), *ROOT.glob("scenarios/*.yaml"), *ROOT.glob("plugins/*/*/*.yaml")])

pytestmark = pytest.mark.skipif(not yaml_fast.available(), reason="PyYAML without libyaml: ruamel reads every file")


def same(fast: Any, slow: Any, path: tuple[Any, ...] = ()) -> None:
    """Equal values of the same types, and the same line and column for every key and item."""
    assert type(fast) in (yaml_fast.YamlMap, yaml_fast.YamlSeq) or type(fast) is type(slow), (path, fast, slow)
    if isinstance(fast, dict):
        assert isinstance(slow, dict) and list(fast) == list(slow), path
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        for key in fast:
            assert tuple(fast.lc.key(key)) == tuple(slow.lc.key(key))[:2], (path, key)
            same(fast[key], slow[key], (*path, key))
    elif isinstance(fast, list):
        assert isinstance(slow, list) and len(fast) == len(slow), path
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        for i, item in enumerate(fast):
            assert tuple(fast.lc.item(i)) == tuple(slow.lc.item(i))[:2], (path, i)
            same(item, slow[i], (*path, i))
    else:
        assert fast == slow, (path, fast, slow)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_pack_and_scenario_file_reads_the_same_and_fast(path):
    text = path.read_text(encoding="utf-8")
    same(yaml_fast.load(text), yaml_ruamel.parse(text, str(path), scenario="scenarios" in path.parts))


@pytest.mark.parametrize("variant", ["crlf", "bom", "bom+crlf"])
def test_windows_line_ends_and_a_byte_order_mark_read_the_same(variant):
    text = (ROOT / "rules" / "loyalty.yaml").read_text(encoding="utf-8")
    text = ("\ufeff" if "bom" in variant else "") + (text.replace("\n", "\r\n") if "crlf" in variant else text)
    same(yaml_fast.load(text), yaml_ruamel.parse(text, "loyalty.yaml"))


def test_scalars_are_typed_as_ruamel_types_them():
    text = ("a: 1\nb: -7\nc: 2.50\nd: .5\ne: true\nf: False\ng: ~\nh:\ni: yes\nj: 'on'\nk: \"1\"\nl: 1.5e3\n"
            "m: [x, 2, 3.0, null]\nn: {p: q}\no: >-\n  folded\n  text\np: |\n  literal\n")
    fast = yaml_fast.load(text)
    same(fast, yaml_ruamel.parse(text, "x"))
    assert fast["i"] == "yes" and fast["h"] is None and fast["c"] == 2.5 and fast["o"] == "folded text"


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n",  # an alias (ruamel refuses it)
    "a: &x 1\n",  # an anchor
    "a: !!str 1\n", "a: !custom x\n",  # tags
    "%YAML 1.1\n---\na: yes\n",  # a directive
    "a: 1\n---\nb: 2\n",  # two documents
    "a: 1\na: 2\n",  # a duplicate key
    "? [a]\n: 1\n",  # a key that is not a scalar
    "a: 0o17\n", "a: 0x1f\n", "a: 1_000\n", "a: 012\n", "a: .inf\n", "a: 1e5\n", "a: 2024-01-01\n",
    "<<: {a: 1}\n",  # a merge key
    "a:\tb\n",  # a tab
    "a: >\n\n   x\n", "a: >#-\n  x\n",  # block scalars ruamel may read otherwise
    "a: [\"b\": , c]\n",  # a single-pair mapping in a flow list
    "a: [b\n",  # a syntax error
    "a: \x07\n",  # a character YAML refuses
])
def test_anything_but_the_common_case_is_left_to_ruamel(text):
    with pytest.raises(yaml_fast.NotCommon):
        yaml_fast.load(text)
    try:
        expected: Any = yaml_ruamel.parse(text, "x.yaml")
    except RulePackError as exc:
        with pytest.raises(RulePackError) as got:
            parse_pack_text(text, "x.yaml")
        assert [str(p) for p in got.value.problems] == [str(p) for p in exc.problems]
    else:
        assert repr(parse_pack_text(text, "x.yaml")) == repr(expected)  # ruamel's tagged values compare by identity


def test_the_caps_are_left_to_ruamel_which_names_the_line(monkeypatch):
    monkeypatch.setattr(pack_limits, "MAX_RULES_PER_PACK", 2)
    text = "pack: p\nrules:\n  - a\n  - b\n  - c\n"
    with pytest.raises(yaml_fast.NotCommon):
        yaml_fast.load(text)
    with pytest.raises(RulePackError) as exc:
        parse_pack_text(text, "p.yaml")
    assert str(exc.value.problems[0]) == "p.yaml:5: rules: more than 2 rules in one pack; split it into several packs"
    monkeypatch.setattr(pack_limits, "MAX_YAML_DEPTH", 3)
    with pytest.raises(yaml_fast.NotCommon):
        yaml_fast.load("a: {b: {c: {d: 1}}}\n")
    monkeypatch.setattr(pack_limits, "MAX_YAML_NODES", 4)
    with pytest.raises(yaml_fast.NotCommon):
        yaml_fast.load("a: [1, 2]\n")


def test_careless_edits_read_the_same_with_either_reader():
    """Seeded random edits of a shipped pack: whenever the fast reader reads one, ruamel reads
    it too, to the same values and lines (the fast reader never accepts what ruamel refuses)."""
    base = (ROOT / "rules" / "loyalty.yaml").read_text(encoding="utf-8")[:3000]
    chars = list(" \n-:#'\"{}[],&*!|>%@`?0123456789.eE+_xyzTtrue~nul")
    rnd = random.Random(17)
    read = 0
    for _ in range(400):
        text = list(base)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randrange(len(text))
            choice = rnd.random()
            if choice < 0.4:
                text.insert(at, rnd.choice(chars))
            elif choice < 0.7:
                del text[at]
            else:
                text[at] = rnd.choice(chars)
        edited = "".join(text)
        try:
            fast = yaml_fast.load(edited)
        except yaml_fast.NotCommon:
            continue
        read += 1
        same(fast, yaml_ruamel.parse(edited, "x.yaml"))
    assert read > 100  # most edits still read as YAML: the comparison was made


def test_generated_scale_packs_take_the_fast_reader_and_load_as_their_dicts(tmp_path, monkeypatch):
    """The packs the scale benchmark writes (bench/targets.py) never fall back to ruamel."""
    sys.path.append(str(ROOT))  # for bench/
    from bench import targets
    from recommender.packs import pack_from_data

    pack = targets.scale_packs(2_000)[0]
    path = tmp_path / "gen.yaml"
    path.write_text(targets.pack_yaml(pack), encoding="utf-8")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("ruamel was asked to read a plain pack")

    monkeypatch.setattr(yaml_ruamel, "parse", refuse)
    loaded = load_pack(path)
    plain = pack_from_data(pack, str(path), "gen.yaml")
    assert len(loaded.rules) == 2_000
    assert [(r.id, r.branches) for r in loaded.rules] == [(r.id, r.branches) for r in plain.rules]
    assert loaded.rules[0].line == pack_yaml_line(path, f"  - id: {pack['rules'][0]['id']}")


def pack_yaml_line(path: Path, text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines().index(text) + 1


def test_a_pack_loads_the_same_without_the_fast_reader(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.replace("because: Don't", "because: >-\n      Don't"))
    fast = load_pack(path)

    def decline(text: str) -> Any:
        raise yaml_fast.NotCommon("off")

    monkeypatch.setattr(yaml_fast, "load", decline)
    slow = load_pack(path)
    assert fast == slow and fast.digest == slow.digest
    assert (fast.rules[0].line, fast.rules[0].then_line) == (slow.rules[0].line, slow.rules[0].then_line) == (11, 16)
