"""No server path in any response (issue 15 item 11): a pack is named by its plugin (or
``core``) and its path under the folder it was loaded from; only error messages, for whoever
edits the pack, carry the real path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender, RulePackError

PACK = """\
pack: shop
gestures:
  - id: waive_fee
    title: Waive the fee
    category: fee_waiver
    tier: meet
    cost: 5
    script: "On us, {customer.name|friend}."
  - id: tire_check
    title: Free tire check
    category: freebie
    tier: meet
    cost: 5
    script: "We'll check your tires."
rules:
  - id: loyal
    when: [customer.tenure_years ge 2, interaction.issue eq flat_tire]
    then: waive_fee
    because: Loyal customers.
  - id: veteran
    when: customer.tenure_years ge 10
    then: tire_check
    because: Veterans.
"""
CTX = {"customer": {"tenure_years": 3}, "interaction": {"issue": "flat_tire", "cost": 20}}
CHECKOUT = str(Path(__file__).resolve().parent.parent)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "shop_rules" / "nested"
    folder.mkdir(parents=True)
    (folder / "shop.yaml").write_text(PACK)
    return tmp_path / "shop_rules"


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def assert_no_server_path(body: str, tmp_path: Path) -> None:
    assert str(tmp_path) not in body and CHECKOUT not in body
    assert not [s for s in strings(json.loads(body)) if s.startswith("/")], body


def test_recommendations_and_explanations_name_packs_by_origin_and_relative_path(rules, tmp_path):
    rec = Recommender([rules], autoload=False)
    result = rec.explain(CTX)
    (shown,) = result.recommendations
    assert shown.source == "core:shop_rules/nested/shop.yaml"
    assert [m.pack for m in shown.rules] == ["core:shop_rules/nested/shop.yaml"]
    assert [(n.rule_id, n.pack) for n in result.near_misses] == [("veteran", "core:shop_rules/nested/shop.yaml")]
    assert_no_server_path(result.model_dump_json(), tmp_path)
    assert_no_server_path(rec.recommend(CTX).model_dump_json(), tmp_path)
    # a file given directly is named by its file name
    rec = Recommender([rules / "nested" / "shop.yaml"], autoload=False)
    assert rec.explain(CTX).recommendations[0].rules[0].pack == "core:shop.yaml"


def test_errors_keep_the_real_path_for_whoever_fixes_the_pack(rules):
    (rules / "nested" / "shop.yaml").write_text(PACK.replace("then: tire_check", "then: nope"))
    with pytest.raises(RulePackError) as exc:
        Recommender([rules], autoload=False)
    assert exc.value.problems[0].path == str(rules / "nested" / "shop.yaml")


def test_plugin_packs_are_named_by_their_plugin():
    pytest.importorskip("recommender_auto_repair")
    rec = Recommender()
    labels = {p.label for p in rec.rulebook_for(_business("auto_repair")).packs}
    assert "plugin:auto_repair:auto_repair.yaml" in labels
    assert "core:rules/loyalty.yaml" in labels
    assert not [label for label in labels if label.startswith("/") or CHECKOUT in label]


def _business(vertical: str) -> Any:
    from recommender.context import Business

    return Business(id="b", vertical=vertical)


def test_the_service_shows_no_server_path(rules, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.service import Settings, create_app

    dropins = tmp_path / "dropins"
    dropins.mkdir()
    (dropins / "hello.py").write_text(
        "from recommender import hookimpl\n@hookimpl\ndef recommender_enrich_context(context):\n    return None\n")
    settings = Settings(rules=[rules], plugins_dir=dropins, auth="none", autoload_plugins=False)
    with TestClient(create_app(settings)) as http:
        for method, path in (("post", "/v1/recommendations"), ("post", "/v1/explain"), ("get", "/v1/rulepacks"),
                             ("get", "/v1/gestures"), ("get", "/v1/plugins")):
            r = http.post(path, json=CTX) if method == "post" else http.get(path)
            assert r.status_code == 200, r.text
            assert_no_server_path(r.text, tmp_path)
        packs = http.get("/v1/rulepacks").json()["packs"]
        assert [p["source"] for p in packs] == ["core:shop_rules/nested/shop.yaml"]
        gestures = http.get("/v1/gestures").json()["gestures"]
        assert {g["source"] for g in gestures} == {"core:shop_rules/nested/shop.yaml"}
        explained = http.post("/v1/explain", json=CTX).json()
        assert explained["recommendations"] and explained["near_misses"]
        hello = [p for p in http.get("/v1/plugins").json()["plugins"] if p["name"] == "hello"]
        assert hello and hello[0]["path"] == "hello.py"
