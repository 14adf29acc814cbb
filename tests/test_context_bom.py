"""A UTF-8 byte order mark before a context's JSON: the library, the CLI and the service all
accept one (Windows editors save UTF-8 with it; RFC 8259 lets a parser ignore it), with the
same answer as without it, and refuse what follows it alike."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recommender import ContextError, Recommender, parse_context
from recommender.cli import app, commands  # noqa: F401  (registers the commands)
from recommender.context import without_bom
from recommender.core import default_rules_dir

BOM = b"\xef\xbb\xbf"
CTX = json.dumps({"customer": {"tenure_years": 4, "name": "Ada"},
                  "interaction": {"issue": "billing_error", "amount": 40, "repeat_count": 1, "channel": "phone"}}).encode()


def _gestures(result: dict) -> list[str]:
    return [g["gesture_id"] for g in result["recommendations"]]


def test_only_one_leading_mark_is_dropped() -> None:
    assert without_bom(BOM + CTX) == CTX and without_bom(BOM.decode() + CTX.decode()) == CTX.decode()
    assert without_bom(CTX) == CTX and without_bom(BOM + BOM + CTX) == BOM + CTX  # a second is the text's
    assert without_bom(CTX + BOM) == CTX + BOM


@pytest.fixture(scope="module")
def shipped() -> Recommender:
    return Recommender([default_rules_dir()], autoload=False)


def test_the_library_the_cli_and_the_service_accept_a_bom_with_the_same_answer(shipped, tmp_path) -> None:
    plain = _gestures(shipped.recommend(CTX).model_dump(mode="json"))
    assert plain  # a context with gestures to compare
    for given in (BOM + CTX, (BOM + CTX).decode()):  # bytes, and text read without utf-8-sig
        assert parse_context(given) == parse_context(CTX)
        assert _gestures(shipped.recommend(given).model_dump(mode="json")) == plain
    f = tmp_path / "ctx.json"
    f.write_bytes(BOM + CTX)
    for source, stdin in ((str(f), None), ("-", BOM + CTX)):
        out = CliRunner().invoke(app, ["recommend", source, "--rules", str(default_rules_dir()), "--json"],
                                 input=stdin)
        assert out.exit_code == 0, out.output
        assert _gestures(json.loads(out.stdout)) == plain
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    with TestClient(create_app(Settings(rules=[default_rules_dir()], auth="none", autoload_plugins=False))) as http:
        for path in ("/v1/recommendations", "/v1/explain"):
            r = http.post(path, content=BOM + CTX, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            assert _gestures(r.json()) == plain


def test_what_follows_a_bom_is_refused_alike(shipped, tmp_path) -> None:
    text = BOM + b'{"interaction": {"issue": "billing_error", "amount": "lots"}}'
    with pytest.raises(ContextError) as err:
        shipped.recommend(text)
    assert [p for p, _ in err.value.errors] == ["interaction.amount"]
    f = tmp_path / "ctx.json"
    f.write_bytes(text)
    out = CliRunner().invoke(app, ["recommend", str(f), "--rules", str(default_rules_dir())])
    assert out.exit_code == 2 and "interaction.amount" in out.output, out.output
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    with TestClient(create_app(Settings(rules=[default_rules_dir()], auth="none", autoload_plugins=False))) as http:
        r = http.post("/v1/recommendations", content=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["interaction.amount"], r.text
