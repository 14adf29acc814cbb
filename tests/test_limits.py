"""One set of limits (issue 15): each number is defined once (``recommender/context.py`` for
contexts, ``recommender/pack_limits.py`` for rule packs) and imported everywhere else; the
library, the CLI and the service refuse the same oversized context; the tables in
docs/http.md and docs/engine.md cite the constants and say the numbers they hold."""

from __future__ import annotations

import json
import re
import tokenize
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recommender import ContextError, Recommender, context, pack_limits, parse_context
from recommender.cli import app, commands  # noqa: F401  (commands registers recommend)

DOCS = Path(__file__).resolve().parent.parent / "docs"
ROOT = Path(__file__).resolve().parent.parent / "recommender"
LIMIT = context.MAX_CONTEXT_BYTES

PACK = """\
pack: lim
gestures:
  - id: say_sorry
    title: Say sorry
    category: personal_touch
    tier: meet
    cost: 0
    script: "Sorry."
rules:
  - id: sorry
    when: interaction.issue eq flat_tire
    then: say_sorry
    because: x.
"""


# -- the docs cite the constants -------------------------------------------------------------


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after ``heading``."""
    text = markdown[markdown.index(heading):]
    rows = []
    for line in text.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            break
    return [r for r in rows[2:]]  # past the header and the |---| line


def _renderings(value: Any) -> set[str]:
    """How a limit may be written in the docs: 1,000,000 / 1000000 / 2 MiB / 2^53 / 1e12."""
    out = {str(value)}
    if isinstance(value, float) and value.is_integer():
        mantissa, exponent = f"{value:e}".split("e")
        out |= {f"{int(value):,}", f"{float(mantissa):g}e{int(exponent)}"}
    if isinstance(value, int):
        out.add(f"{value:,}")
        if value >= 1024 and value % (1024 * 1024) == 0:
            out.add(f"{value // (1024 * 1024)} MiB")
        for offset in (0, 1, -1):
            power = value + offset
            if power > 2 and power & (power - 1) == 0:
                written = {0: "", 1: " - 1", -1: " + 1"}[offset]
                out |= {f"2^{power.bit_length() - 1}{written}", f"2**{power.bit_length() - 1}{written}"}
    return out


def _field_bounds(model: type, name: str) -> list[Any]:
    info = model.model_fields[name]  # type: ignore[attr-defined]
    found = []
    for meta in info.metadata:
        for bound in ("ge", "le"):
            if getattr(meta, bound, None) is not None:
                found.append(getattr(meta, bound))
    return found


def _cited(name: str) -> list[Any]:
    """The value(s) a "defined in" entry stands for."""
    owner, _, attr = name.partition(".")
    if owner == "context":
        return [getattr(context, attr)]
    if owner == "pack_limits":
        return [getattr(pack_limits, attr)]
    if owner == "Settings":
        from recommender.service import Settings

        return [Settings.model_fields[attr].default]
    return _field_bounds(getattr(context, owner), attr)


def test_the_http_limits_table_says_the_numbers_its_constants_hold():
    rows = _table((DOCS / "http.md").read_text(encoding="utf-8"), "### Limits")
    assert len(rows) >= 20 and all(len(r) == 4 for r in rows), rows
    cited = 0
    for what, limit, defined_in, _ in rows:
        for name in re.findall(r"`([A-Za-z_]+\.[A-Za-z_]+)`", defined_in):
            for value in _cited(name):
                # a negative lower bound is written "-1 to 1"; the others as they are
                shown = _renderings(abs(value)) if value < 0 else _renderings(value)
                assert any(s in limit for s in shown), f"{what}: {name} = {value!r}, but the table says {limit!r}"
                cited += 1
    assert cited >= 20
    every = {name for _, _, d, _ in rows for name in re.findall(r"`context\.([A-Z_]+)`", d)}
    assert every >= {"MAX_CONTEXT_BYTES", "MAX_TEXT_CHARS", "MAX_NAME_CHARS", "MAX_ITEMS", "MAX_ID_CHARS",
                     "MAX_KEY_CHARS", "MAX_EXACT_INT", "MAX_NUMBER", "MAX_COUNT", "MIN_YEAR", "MAX_YEAR"}


def test_the_engine_caps_table_says_the_numbers_pack_limits_hold():
    rows = _table((DOCS / "engine.md").read_text(encoding="utf-8"), "**Caps**")
    named = {}
    for what, value, constant, _ in rows:
        name = re.match(r"`([A-Z_]+)`", constant)
        assert name, (what, constant)
        named[name.group(1)] = value
        assert any(s in value for s in _renderings(getattr(pack_limits, name.group(1)))), (what, value)
    assert set(named) == set(pack_limits.__all__)  # every cap is in the table


def test_each_number_lives_in_one_place():
    from recommender.memory import values
    from recommender.service import Settings

    assert (values.MIN_YEAR, values.MAX_YEAR) == (context.MIN_YEAR, context.MAX_YEAR)
    assert values.MIN_TIME.year == context.MIN_YEAR and values.MAX_TIME.year == context.MAX_YEAR
    assert pack_limits.MAX_EXACT_NUMBER == context.MAX_EXACT_INT - 1
    assert Settings().max_body_bytes == context.MAX_CONTEXT_BYTES
    # and no module writes them out again (in code: messages may say "2**53")
    for path in ROOT.rglob("*.py"):
        found = _written_limits(path)
        allowed = {"context.py"} if path.parent == ROOT else set()
        assert path.name in allowed or not found, \
            f"{path.relative_to(ROOT)} writes {found} itself: import it from recommender.context"


def _written_limits(path: Path) -> set[str]:
    """Limits a module spells out in code: ``2**53``, the year window, the money bound."""
    tokens = [t for t in tokenize.generate_tokens(path.open(encoding="utf-8").readline)
              if t.type in (tokenize.NUMBER, tokenize.OP, tokenize.NAME)]
    found = set()
    for a, b, c in zip(tokens, tokens[1:], tokens[2:]):
        if (a.string, b.string, c.string) == ("2", "**", "53"):
            found.add("2**53")
        if a.type == tokenize.NUMBER and a.string.replace("_", "") in ("1900", "2200"):
            found.add("the year window")
        if a.type == tokenize.NUMBER and a.string.lower().replace("_", "") in ("1e12", "1e+12", "1000000000000"):
            found.add("the money bound (MAX_NUMBER)")
    return found


# -- one context size bound: library, CLI, service ------------------------------------------


def _padded(size: int) -> str:
    """A valid context of exactly ``size`` bytes (padded with spaces)."""
    text = '{"interaction": {"issue": "flat_tire"}}'
    return text + " " * (size - len(text))


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rules")
    (d / "p.yaml").write_text(PACK)
    return d


def _cli(rules: Path, source: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(app, ["recommend", source, "--rules", str(rules), "--json"], input=stdin)


def test_a_context_of_exactly_the_bound_is_read_and_one_byte_more_is_refused_everywhere(rules, tmp_path):
    fastapi = pytest.importorskip("fastapi")  # noqa: F841
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    rec = Recommender([rules], autoload=False)
    http = TestClient(create_app(Settings(rules=[rules], auth="none", autoload_plugins=False)))
    headers = {"Content-Type": "application/json"}
    at, over = _padded(LIMIT), _padded(LIMIT + 1)
    assert rec.recommend(at).gesture_ids() == rec.recommend(at.encode()).gesture_ids() == ["say_sorry"]
    assert http.post("/v1/recommendations", content=at, headers=headers).status_code == 200
    (tmp_path / "at.json").write_text(at)
    assert _cli(rules, str(tmp_path / "at.json")).exit_code == 0
    for data in (over, over.encode()):
        with pytest.raises(ContextError) as err:
            parse_context(data)
        assert err.value.errors == [("<context>", f"a context is at most {LIMIT} bytes of JSON")]
    r = http.post("/v1/recommendations", content=over, headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    (tmp_path / "over.json").write_text(over)
    result = _cli(rules, str(tmp_path / "over.json"))
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'over.json'}: the context is larger than {LIMIT} bytes" in result.output
    result = _cli(rules, "-", stdin=over.encode())
    assert result.exit_code == 2 and f"<stdin>: the context is larger than {LIMIT} bytes" in result.output


def test_the_library_counts_bytes_not_characters(rules):
    # 600,000 characters, most of them two bytes: 1.2 MB as the CLI and the service count it
    text = '{"interaction": {"issue": "flat_tire"}, "x": "' + "é" * 600_000 + '"}'
    assert len(text) < LIMIT < len(text.encode())
    with pytest.raises(ContextError) as err:
        parse_context(text)
    assert err.value.errors == [("<context>", f"a context is at most {LIMIT} bytes of JSON")]
    # under the bound in bytes, the text is read (and refused for what it says)
    with pytest.raises(ContextError) as err:
        parse_context(text[:400_000] + '"}')
    assert [p for p, _ in err.value.errors] == ["x"]


def test_the_cli_reads_no_further_than_the_bound(rules, tmp_path):
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:  # 100 MB, sparse: only what is read costs anything
        f.write(b'{"interaction": {"issue": "flat_tire"}, "pad": "')
        f.truncate(100 * 1024 * 1024)
    result = _cli(rules, str(huge))
    assert result.exit_code == 2 and f"{huge}: the context is larger than {LIMIT} bytes" in result.output
    assert "Traceback" not in result.output


def test_the_service_holds_contexts_to_the_bound_whatever_max_body_bytes_allows(rules):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    app_ = create_app(Settings(rules=[rules], auth="none", autoload_plugins=False, max_body_bytes=5_000_000))
    with TestClient(app_) as http:
        body = _padded(LIMIT + 500_000)
        r = http.post("/v1/recommendations", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and f"at most {LIMIT} bytes" in r.json()["message"]
        r = http.post("/v1/explain", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        ok = http.post("/v1/recommendations", content=_padded(LIMIT), headers={"Content-Type": "application/json"})
        assert ok.status_code == 200, ok.text


def test_the_documented_body_limit_is_the_settings_default():
    from recommender.service import Settings

    text = (DOCS / "http.md").read_text(encoding="utf-8")
    assert f"| `max_body_bytes` | `--max-body-bytes` | `{Settings().max_body_bytes}` |" in text
    assert json.loads(json.dumps(Settings().max_body_bytes)) == LIMIT
