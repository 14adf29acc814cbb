"""Bugs the hardening property test (tests/test_hardening_properties.py) found, each pinned
by the smallest input that showed it (issue 15).

* A lone UTF-16 surrogate in an open map's string value passed the context model and failed
  in the engine (``EngineError``, exit 1 from the CLI): it is refused naming the field.
* An object with a million bad keys cost 2.5 GB and 14 s before its refusal (one error per
  key): any object of the context is refused beyond 100 keys before its entries are read.
* The library's size bound counted characters, not bytes, and its refusal was re-wrapped as
  "unreadable context: ContextError" (see tests/test_limits.py).
* The CLI read contexts with Python's json module, the library and the service with
  pydantic's parser: a lone surrogate escape or 300 levels of nesting were accepted (or
  refused at a field) by the CLI and refused as invalid JSON by the others. It now reads
  them with the same parser.
* The CLI printed error messages as Rich markup: a context with an unknown field named
  ``[/x]`` crashed it (a traceback, exit 1) and ``[bold]`` vanished from the message.
* A blank ``staff.id`` or ``customer.id`` (``""``, ``"   "``) passed the context and was
  refused by the store when the decision was logged: ``InvalidStoreInput`` from the library,
  exit 1 from the CLI, while the same context without a store was accepted. The context
  refuses it, naming the field, with or without a store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recommender import ContextError, Recommender, parse_context
from recommender.cli import app, commands  # noqa: F401  (registers the commands)

PACK = """\
pack: reg
gestures:
  - id: note_it
    title: Note it
    category: personal_touch
    tier: meet
    cost: 0
    script: "Noted."
rules:
  - id: noted
    when: customer.preferences.note contains abc
    then: note_it
    because: x.
  - id: said
    when: interaction.attributes.said eq abc
    then: note_it
    because: y.
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rules")
    (d / "reg.yaml").write_text(PACK)
    return d


@pytest.fixture(scope="module")
def rec(rules: Path) -> Recommender:
    return Recommender([rules], autoload=False)


def cli(rules: Path, path: Path) -> Any:
    result = CliRunner().invoke(app, ["recommend", str(path), "--rules", str(rules), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("value", ["a\ud800bc", "abc\udfff", "\udc00"])
@pytest.mark.parametrize("path", ["customer.preferences.note", "interaction.attributes.said",
                                  "customer.attributes.x"])
def test_a_lone_surrogate_in_an_open_map_is_refused_naming_the_field(rec, value, path):
    section, name, key = path.split(".")
    data: dict[str, Any] = {"interaction": {"issue": "x"}}
    data.setdefault(section, {})[name] = {key: value}
    with pytest.raises(ContextError) as err:
        rec.recommend(data)
    assert err.value.errors == [(path, f"Value error, must be valid Unicode text (a lone surrogate at position "
                                       f"{value.index(next(c for c in value if 0xD800 <= ord(c) <= 0xDFFF))})")]
    # a valid surrogate pair is one character, and fine
    assert rec.recommend({"customer": {"preferences": {"note": "abc \U0001f6de"}},
                          "interaction": {"issue": "x"}}).gesture_ids() == ["note_it"]


@pytest.mark.parametrize("where", ["interaction.attributes", "customer.preferences", "customer", "staff"])
def test_an_object_with_a_million_bad_keys_is_refused_at_once(where):
    section, _, name = where.partition(".")
    bad = {f"-{i}": i for i in range(1_000_000)}
    data: dict[str, Any] = {"interaction": {"issue": "x"}}
    data.setdefault(section, {})
    if name:
        data[section][name] = bad
    else:
        data[section] = bad
    start = time.perf_counter()
    with pytest.raises(ContextError) as err:
        parse_context(data)
    assert time.perf_counter() - start < 0.5
    assert err.value.errors == [(where, "Value error, at most 100 keys, got 1000000")]


def test_an_object_of_up_to_100_keys_is_read_as_before():
    attrs = {f"k{i}": i for i in range(100)}
    assert len(parse_context({"interaction": {"issue": "x", "attributes": attrs}}).interaction.attributes) == 100
    with pytest.raises(ContextError) as err:
        parse_context({"customer": {"bogus": 1, "tenure_years": "5"}, "interaction": {"issue": "x"}})
    assert {p for p, _ in err.value.errors} == {"customer.bogus", "customer.tenure_years"}  # one error per field


def _http_verdict(body: bytes) -> tuple[int, list[str]]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    global _HTTP
    if _HTTP is None:
        _HTTP = TestClient(create_app(Settings(rules=[], auth="none", autoload_plugins=False)))
    r = _HTTP.post("/v1/explain", content=body, headers={"Content-Type": "application/json"})
    return r.status_code, [e["field"] for e in r.json().get("errors", [])]


_HTTP: Any = None


@pytest.mark.parametrize("text, reason", [
    ('{"interaction": {"issue": "x", "attributes": {"s": "a\\ud800b"}}}', "invalid JSON: unexpected end of hex escape"),
    ('{"customer": {"name": "\\udc00"}, "interaction": {"issue": "x"}}', "invalid JSON: lone leading surrogate"),
    ('{"interaction": {"issue": "x", "attributes": {"a": ' + "[" * 300 + "]" * 300 + "}}}",
     "invalid JSON: nested too deeply"),
])
def test_the_cli_reads_json_as_the_library_and_the_service_do(rules, tmp_path, text, reason):
    with pytest.raises(ContextError) as err:
        parse_context(text)
    assert [p for p, _ in err.value.errors] == [""]  # the text itself, no field
    assert _http_verdict(text.encode()) == (400, [""])
    f = tmp_path / "ctx.json"
    f.write_text(text)
    result = cli(rules, f)
    assert result.exit_code == 2 and f"error: {f}" in result.output and reason in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("key", ["[/x]", "[bold]", "[red]x[/red]", "[link=http://e.x]y"])
def test_cli_errors_show_what_the_user_wrote_and_never_crash(rules, tmp_path, key):
    f = tmp_path / "ctx.json"
    f.write_text(json.dumps({"customer": {key: 1}, "interaction": {"issue": "x"}}))
    result = cli(rules, f)
    assert result.exit_code == 2, result.output
    assert f"customer.{key}: Extra inputs are not permitted" in result.output


@pytest.mark.parametrize("field, blank", [("staff.id", ""), ("customer.id", "   "), ("customer.id", "\t\n")])
def test_a_blank_id_is_refused_by_the_context_with_or_without_a_store(rec, rules, tmp_path, field, blank):
    from recommender.memory import open_store

    section, name = field.split(".")
    data: dict[str, Any] = {"interaction": {"issue": "x"}, section: {name: blank}}
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url, upgrade=True) as store:
        for kwargs in ({}, {"store": store}):
            with pytest.raises(ContextError) as err:
                rec.recommend(data, **kwargs)
            assert [p for p, _ in err.value.errors] == [field]
    f = tmp_path / "ctx.json"
    f.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["recommend", str(f), "--rules", str(rules), "--url", url])
    assert result.exit_code == 2 and f"  {field}: Value error, must not be empty" in result.output, result.output
    assert _http_verdict(json.dumps(data).encode()) == (422, [field])
