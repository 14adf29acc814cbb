"""What the console's insights show of learning (issue 19, item 6), over HTTP, alike on SQLite
and PostgreSQL: the state ``GET /v1/learning`` serves (the page reads it as it comes), with
each segment's 95% credible interval; learning on, off (configuration) or frozen; and who may
see it: an admin key of the business (a non-admin key is 403 ``forbidden_scope``, which the
page shows as "needs admin"; another business's admin sees only its own).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from helpers import OPEN_PROFILE  # noqa: E402
from memory_fixtures import db_url, pg_url  # noqa: E402,F401  (fixtures)
from recommender.learning import LearningConfig  # noqa: E402
from recommender.memory import KeyStore, open_store  # noqa: E402
from recommender.service import Settings, create_app  # noqa: E402
from service_fixtures import TIRE_PACK  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = LearningConfig(segments=("family", "tier"), min_evidence=5)


def _app(db: str, tmp_path: Path, store: Any, **kw: Any) -> Any:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "tires.yaml").write_text(TIRE_PACK)
    settings = Settings(rules=[rules], store_url=db, profiles={"default": OPEN_PROFILE}, autoload_plugins=False,
                        key_cache_seconds=0, **kw)
    return create_app(settings, store=store)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    store = open_store(db_url, upgrade=True)
    store.learning_config = MODEL  # as the service's learning_model setting does for a store it opens
    keys = KeyStore(store)
    plain = {"pos": keys.create("acme", ["recommend", "outcome"], "pos")[1],
             "admin": keys.create("acme", ["admin"], "ops")[1],
             "rival": keys.create("globex", ["admin"], "globex ops")[1]}
    with TestClient(_app(db_url, tmp_path, store)) as http:
        yield http, plain, store
    store.close()


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _outcomes(http: TestClient, key: str, answers: dict[str, list[str]]) -> None:
    """One decision per position; at position i, each gesture gets its answers[g][i] (if any)."""
    for i in range(max(len(a) for a in answers.values())):
        ctx = {"customer": {"id": f"c-{i}"}, "interaction": {"issue": "flat_tire"}}
        r = http.post("/v1/recommendations", json=ctx, headers=_h(key))
        assert r.status_code == 200, r.text
        decision = r.json()["decision_id"]
        for g, said in answers.items():
            if i < len(said):
                resp = http.post(f"/v1/decisions/{decision}/outcomes", json={"gesture_id": g, "outcome": said[i]},
                                 headers={**_h(key), "Idempotency-Key": f"{decision}:{g}"})
                assert resp.status_code == 201, resp.text


def _beta_mass(lo: float, hi: float, a: float, b: float, steps: int = 4000) -> float:
    """The probability of [lo, hi] under Beta(a, b), by Simpson's rule (a check independent of
    the incomplete beta function the service uses)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    h = (hi - lo) / steps

    def f(x: float) -> float:
        return 0.0 if x <= 0 or x >= 1 else math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x))

    return h / 3 * (f(lo) + f(hi) + sum((4 if k % 2 else 2) * f(lo + k * h) for k in range(1, steps)))


def test_the_state_the_insights_show_with_credible_intervals(env: Any) -> None:
    http, keys, _ = env
    _outcomes(http, keys["pos"], {"apology": ["accepted"] * 6 + ["declined"] * 2,
                                  "tire_check": ["declined", "accepted", "declined"]})
    got = http.get("/v1/learning", headers=_h(keys["admin"]))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["tenant"] == "acme" and body["enabled"] is True and body["frozen"] is False
    assert body["config"] == {"segments": ["family", "tier"], "half_life_days": 90.0, "min_evidence": 5,
                              "prior_strength": 4.0}
    rows = {r["gesture_id"]: r for r in body["segments"]}
    assert [r["gesture_id"] for r in body["segments"]] == ["apology", "tire_check"]  # most outcomes first
    apology, check = rows["apology"], rows["tire_check"]
    assert apology["segment"] == "family=routine|tier=meet" and check["segment"] == "family=routine|tier=exceed"
    assert (apology["outcomes"], apology["learned"]) == (8, True)  # 8 >= the minimum of 5
    assert (check["outcomes"], check["learned"]) == (3, False)
    assert apology["text"] == "accepted by 67% of similar customers (8 outcomes)"
    assert re.fullmatch(r"accepted by \d+% of similar customers \(3 outcomes\): too few to change the order yet",
                        check["text"])
    for r in (apology, check):
        lo, hi = r["interval"]
        assert 0 < lo < r["acceptance"] < hi < 1
        assert abs(_beta_mass(lo, hi, r["alpha"], r["beta"]) - 0.95) < 0.002, r
        assert r["updated_at"].startswith("20")
    # more evidence, a narrower interval
    assert apology["interval"][1] - apology["interval"][0] < check["interval"][1] - check["interval"][0]


def test_frozen_and_switched_off(env: Any, db_url: str, tmp_path: Path) -> None:
    http, keys, store = env
    _outcomes(http, keys["pos"], {"apology": ["accepted"] * 3})
    store.freeze_learning("acme")
    frozen = http.get("/v1/learning", headers=_h(keys["admin"])).json()
    assert frozen["frozen"] is True and frozen["enabled"] is True
    _outcomes(http, keys["pos"], {"apology": ["declined"] * 2})
    assert http.get("/v1/learning", headers=_h(keys["admin"])).json()["segments"] == frozen["segments"]
    with TestClient(_app(db_url, tmp_path, store, learning=False)) as off:
        state = off.get("/v1/learning", headers=_h(keys["admin"])).json()
    assert state["enabled"] is False and state["segments"] == frozen["segments"]  # kept, not used


def test_who_sees_it(env: Any) -> None:
    http, keys, _ = env
    _outcomes(http, keys["pos"], {"apology": ["accepted"]})
    refused = http.get("/v1/learning", headers=_h(keys["pos"]))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden_scope"  # the page: "needs admin"
    assert http.get("/v1/learning").status_code == 401
    other = http.get("/v1/learning?tenant=acme", headers=_h(keys["rival"]))
    assert other.status_code == 403 and other.json()["error"] == "forbidden_tenant"
    rival = http.get("/v1/learning", headers=_h(keys["rival"])).json()
    assert rival["tenant"] == "globex" and rival["segments"] == []
    assert len(http.get("/v1/learning", headers=_h(keys["admin"])).json()["segments"]) == 1


def test_the_insights_page_has_the_learning_panel(env: Any) -> None:
    http, _, _ = env
    page = http.get("/console/insights").text
    for hook in ('id="learning"', 'id="learning-state"', 'id="learning-rows"', "<th scope=\"col\">Changes the order?"):
        assert hook in page
    script = http.get("/console/static/insights.js").text
    assert "/v1/learning?limit=" in script and "forbidden_scope" in script
