"""Issue 19, item 5: off-policy estimators (recommender/backtest/offpolicy.py) and their use on
a decision log."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pytest
from memory_fixtures import NOW, clock, db_url, make_store, pg_url, store  # noqa: F401  (fixtures)

from bench.learning import PACK, PROFILE, TRUTH
from recommender import Recommender
from recommender.backtest.decisions import iter_decisions
from recommender.backtest.offpolicy import (
    Estimate,
    difference,
    doubly_robust,
    evaluate_log,
    ips,
    mean_interval,
    on_policy,
    snips,
    worse,
)
from recommender.learning import LearningConfig


def test_estimators_on_numbers_worked_by_hand() -> None:
    r, mu, pi = [1.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.25, 1.0], [1.0, 0.0, 0.5, 1.0]
    e = ips(r, mu, pi)
    assert e.value == pytest.approx((2 + 0 + 2 + 1) / 4) and e.low < e.value < e.high and e.n == 4
    dr = doubly_robust(r, mu, pi, model_logged=[0.5] * 4, model_target=[0.5] * 4)
    assert dr.value == pytest.approx(0.5 + (2 * 0.5 + 0 + 2 * 0.5 + 1 * 0.5) / 4)
    perfect = doubly_robust(r, mu, pi, model_logged=r, model_target=[0.7] * 4)  # the model is the reward
    assert perfect.value == pytest.approx(0.7) and perfect.high - perfect.low == pytest.approx(0)
    assert snips(r, mu, pi).value == pytest.approx(1.0)  # sum(w r) / sum(w) = 5 / 5
    assert on_policy(r).value == 0.75
    assert difference([1, 1], [0, 1]).value == 0.5
    with pytest.raises(ValueError, match="> 0"):
        ips([1.0], [0.0], [1.0])
    assert math.isnan(mean_interval([]).value)


def test_worse_means_beyond_the_interval() -> None:
    assert worse(Estimate(-0.2, -0.3, -0.1, 50), higher_is_better=True)
    assert not worse(Estimate(-0.2, -0.4, 0.1, 50), higher_is_better=True)
    assert worse(Estimate(3.0, 1.0, 5.0, 50), higher_is_better=False)
    assert not worse(Estimate(3.0, -1.0, 5.0, 50), higher_is_better=True)


# -- coverage on simulated logs ---------------------------------------------------------------

K, A = 4, 3
P = [[0.2, 0.5, 0.7], [0.6, 0.3, 0.4], [0.1, 0.8, 0.3], [0.5, 0.5, 0.9]]  # true acceptance by context, action
MU = [[0.6, 0.3, 0.1], [0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.7, 0.2, 0.1]]  # the logging policy (known)
PI = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]  # the new policy
TRUE = sum(sum(PI[x][a] * P[x][a] for a in range(A)) for x in range(K)) / K


def _trial(seed: int, n: int) -> tuple[Estimate, Estimate]:
    rng = random.Random(seed)
    xs, acts, rs = [], [], []
    for _ in range(n):
        x = rng.randrange(K)
        a = rng.choices(range(A), MU[x])[0]
        xs.append(x), acts.append(a), rs.append(1.0 if rng.random() < P[x][a] else 0.0)
    logged = [MU[x][a] for x, a in zip(xs, acts)]
    target = [PI[x][a] for x, a in zip(xs, acts)]
    # a rough reward model: each action's mean over every context (biased per context)
    q = [sum(r for r, a2 in zip(rs, acts) if a2 == a) / max(1, sum(1 for a2 in acts if a2 == a)) for a in range(A)]
    model_logged = [q[a] for a in acts]
    model_target = [sum(PI[x][a] * q[a] for a in range(A)) for x in xs]
    return ips(rs, logged, target), doubly_robust(rs, logged, target, model_logged, model_target)


def test_the_estimate_falls_within_its_interval_of_the_true_value_in_at_least_90_percent_of_trials() -> None:
    trials, n = 60, 400
    hits_ips = hits_dr = 0
    widths = []
    for seed in range(trials):
        e_ips, e_dr = _trial(seed, n)
        hits_ips += e_ips.contains(TRUE)
        hits_dr += e_dr.contains(TRUE)
        widths.append((e_ips.high - e_ips.low, e_dr.high - e_dr.low))
    assert hits_ips / trials >= 0.9, hits_ips
    assert hits_dr / trials >= 0.9, hits_dr
    # doubly robust is the tighter of the two on average
    assert sum(w[1] for w in widths) < sum(w[0] for w in widths)


# -- the decision log -------------------------------------------------------------------------


def _ctx(i: int, band: str) -> dict[str, Any]:
    return {"customer": {"id": f"c-{i}", "lifetime_value": 5000 if band == "high" else 500},
            "interaction": {"issue": "late_delivery", "delay_days": 1,
                            "occurred_at": (NOW + timedelta(minutes=i)).isoformat()},
            "business": {"id": "acme"}}


def _log(store: Any, n: int, seed: int = 3) -> None:
    """Decisions by a learning recommender, with outcomes drawn from the true rates."""
    rng = random.Random(seed)
    rec = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE})
    for i in range(n):
        band = "high" if i % 2 else "standard"
        result = rec.recommend(_ctx(i, band), store=store)
        for g in result.gesture_ids():
            taken = rng.random() < TRUTH[band][g]
            store.record_outcome(result.decision_id, g, "accepted" if taken else "declined",
                                 idempotency_key=f"{result.decision_id}:{g}")


def test_the_same_policy_estimates_no_change_and_a_worse_one_is_caught(make_store: Any) -> None:
    store = make_store()
    store.learning_config = LearningConfig(min_evidence=5)
    _log(store, 160)
    same = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE})
    est = evaluate_log(iter_decisions(store, tenant="acme"), same, store)
    assert est.evaluated == est.decisions == 160 and est.supported == 160
    assert est.change["acceptance"].contains(0.0) and est.worse == []
    assert est.dr["acceptance"].contains(est.logged["acceptance"].value)
    assert est.ips["acceptance"].value == pytest.approx(est.logged["acceptance"].value)  # every weight is 1
    assert est.dr["coverage"].value == 1.0  # every late delivery gets a recover gesture
    fixed = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE}, learning=False)
    est_fixed = evaluate_log(iter_decisions(store, tenant="acme"), fixed, store)
    assert est_fixed.dr["acceptance"].value < est.logged["acceptance"].value
    assert "acceptance" in est_fixed.worse, est_fixed.as_dict()["change"]


def test_the_cli_exits_1_when_the_new_policy_would_do_worse(tmp_path: Any) -> None:
    """``backtest --decisions --policy NEW_RULES/``: learning off on a log that learned is worse
    (exit 1); the same rules with learning on are not (exit 0)."""
    import json as _json

    from typer.testing import CliRunner

    from recommender.cli.app import app, load_command_groups
    from recommender.memory import open_store

    pack = tmp_path / "rules" / "sim.yaml"
    pack.parent.mkdir()
    pack.write_text(_json.dumps(PACK), encoding="utf-8")  # JSON is YAML
    url = f"sqlite:///{tmp_path / 'log.db'}"
    rng = random.Random(9)
    rec = Recommender([pack.parent], autoload=False)
    with open_store(url) as store:
        store.learning_config = LearningConfig(min_evidence=5)
        for i in range(200):
            band = "high" if i % 2 else "standard"
            result = rec.recommend(_ctx(i, band), store=store)
            for g in result.gesture_ids():
                store.record_outcome(result.decision_id, g,
                                     "accepted" if rng.random() < TRUTH[band][g] else "declined",
                                     idempotency_key=f"{result.decision_id}:{g}")
    load_command_groups()
    runner = CliRunner()
    base = ["backtest", "--decisions", "--url", url, "--policy", str(pack.parent)]
    same = runner.invoke(app, [*base, "--json"])
    assert same.exit_code == 0, same.output
    report = _json.loads(same.stdout)
    assert report["evaluated"] == 200 and report["worse"] == []
    off = runner.invoke(app, [*base, "--policy-no-learning"])
    assert off.exit_code == 1, off.output
    assert "acceptance" in off.output and "worse" in off.output
    bad = runner.invoke(app, [*base, "--fail-on", "smiles"])
    assert bad.exit_code == 2 and "unknown metric" in bad.output
