"""Issue 19, item 6: the model's state over HTTP (GET /v1/learning, admin scope), the service's
learning switch, and the CLI's learning commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from helpers import OPEN_PROFILE  # noqa: E402
from recommender.service import Settings, create_app  # noqa: E402
from service_fixtures import TIRE_PACK as PACK  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _app(tmp_path: Path, **kw: Any) -> Any:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "p.yaml").write_text(PACK)
    settings = Settings(rules=[rules], store_url=f"sqlite:///{tmp_path / 'mem.db'}", profiles={"default": OPEN_PROFILE},
                        autoload_plugins=False, key_cache_seconds=0, **kw)
    return create_app(settings)


def _flat(i: int) -> dict[str, Any]:
    return {"customer": {"id": f"c-{i}"}, "interaction": {"issue": "flat_tire"}, "business": {"id": "acme"}}


def test_get_learning_shows_the_state_to_an_admin_key_only(tmp_path: Path) -> None:
    from recommender.memory import KeyStore

    app = _app(tmp_path)
    keys = KeyStore(app.state.service.store)
    pos = keys.create("acme", ["recommend", "outcome"], "pos")[1]
    admin = keys.create("acme", ["admin"], "ops")[1]
    with TestClient(app) as http:
        for i in range(3):
            r = http.post("/v1/recommendations", json=_flat(i), headers={"X-API-Key": pos}).json()
            assert r["recommendations"][0]["evidence"]["outcomes"] == i
            for g in ("apology", "tire_check"):
                resp = http.post(f"/v1/decisions/{r['decision_id']}/outcomes",
                                 json={"gesture_id": g, "outcome": "accepted"},
                                 headers={"X-API-Key": pos, "Idempotency-Key": f"{r['decision_id']}:{g}"})
                assert resp.status_code == 201, resp.text
        assert http.get("/v1/learning", headers={"X-API-Key": pos}).status_code == 403
        got = http.get("/v1/learning", headers={"X-API-Key": admin})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["tenant"] == "acme" and body["enabled"] is True and body["frozen"] is False
        assert {s["gesture_id"]: s["outcomes"] for s in body["segments"]} == {"apology": 3, "tire_check": 3}
        assert body["config"]["min_evidence"] == 30
        one = http.get("/v1/learning?gesture=apology", headers={"X-API-Key": admin}).json()
        assert [s["gesture_id"] for s in one["segments"]] == ["apology"]


def test_the_learning_switch_in_the_service_settings(tmp_path: Path) -> None:
    app = _app(tmp_path, learning=False)
    assert app.state.service.recommender.learning is False
    from recommender.memory import KeyStore

    admin = KeyStore(app.state.service.store).create("acme", ["admin", "recommend"], "ops")[1]
    with TestClient(app) as http:
        r = http.post("/v1/recommendations", json=_flat(1), headers={"X-API-Key": admin}).json()
        assert all(rec["evidence"] is None for rec in r["recommendations"])
        assert http.get("/v1/learning", headers={"X-API-Key": admin}).json()["enabled"] is False


def test_learning_show_freeze_reset_from_the_cli(tmp_path: Path) -> None:
    from recommender import Recommender
    from recommender.cli.app import app, load_command_groups
    from recommender.memory import open_store
    from service_fixtures import TIRE_PACK
    from ruamel.yaml import YAML

    pack = YAML(typ="safe").load(TIRE_PACK)
    url = f"sqlite:///{tmp_path / 'mem.db'}"
    rec = Recommender([], packs=[pack], autoload=False, profiles={"default": OPEN_PROFILE})
    with open_store(url) as store:
        r = rec.recommend(_flat(1), store=store)
        store.record_outcome(r.decision_id, "apology", "declined", idempotency_key="k")
    load_command_groups()
    runner = CliRunner()
    shown = runner.invoke(app, ["learning", "show", "--tenant", "acme", "--url", url, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["segments"][0]["declined"] == 1.0
    table = runner.invoke(app, ["learning", "show", "--tenant", "acme", "--url", url, "--limit", "1"])
    assert table.exit_code == 0 and "tenant acme: learning on" in table.output
    low, high = json.loads(shown.stdout)["segments"][0]["interval"]
    assert 0 <= low < high <= 1 and f"{low:.0%}-{high:.0%}" in table.output  # the 95% range, as served
    assert runner.invoke(app, ["learning", "freeze", "--tenant", "acme", "--url", url]).exit_code == 0
    assert "FROZEN" in runner.invoke(app, ["learning", "show", "--tenant", "acme", "--url", url]).output
    assert runner.invoke(app, ["learning", "reset", "--tenant", "acme", "--url", url, "--yes"]).exit_code == 0
    assert "nothing learned yet" in runner.invoke(app, ["learning", "show", "-t", "acme", "--url", url]).output
    missing = runner.invoke(app, ["learning", "show", "--url", f"sqlite:///{tmp_path / 'nope.db'}"])
    assert missing.exit_code == 2
    # the CLI flag: recommend --no-learning
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(_flat(2)))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text(TIRE_PACK)
    on = runner.invoke(app, ["explain", str(ctx), "--rules", str(rules), "--url", url, "--json"])
    off = runner.invoke(app, ["explain", str(ctx), "--rules", str(rules), "--url", url, "--json", "--no-learning"])
    assert on.exit_code == off.exit_code == 0, on.output + off.output
    assert json.loads(on.stdout)["recommendations"][0]["evidence"] is not None
    assert json.loads(off.stdout)["recommendations"][0]["evidence"] is None
    text = runner.invoke(app, ["explain", str(ctx), "--rules", str(rules), "--url", url])
    assert "evidence" in text.output and "Beta(" in text.output


def test_the_learning_model_in_the_service_settings(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from recommender.learning import LearningConfig

    app = _app(tmp_path, learning_model={"segments": ["family", "tier"], "min_evidence": 10})
    assert app.state.service.store.learning_config == LearningConfig(segments=("family", "tier"), min_evidence=10)
    with pytest.raises(ValidationError, match="unknown dimension"):
        Settings(learning_model={"segments": ["colour"]})
