"""Issue 19: the store learns inside the outcome transaction (SQLite and PostgreSQL), shares
what it learned between processes, can be frozen and reset, and replays stay exact."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import NOW, FakeClock, clock, db_url, make_store, pg_url, store  # noqa: F401  (fixtures)

from bench.learning import PACK, PROFILE
from recommender import Recommender
from recommender.backtest.decisions import ReplayMemory, iter_decisions, replay_context
from recommender.learning import LearningConfig

ROOT = Path(__file__).resolve().parent.parent


def _rec(learning: bool = True) -> Recommender:
    return Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE}, learning=learning)


def _ctx(i: int, band: str = "high", day: int = 0) -> dict[str, Any]:
    return {"customer": {"id": f"c-{i}", "lifetime_value": 5000 if band == "high" else 500},
            "interaction": {"issue": "late_delivery", "delay_days": 1,
                            "occurred_at": (NOW + timedelta(days=day, minutes=i)).isoformat()},
            "business": {"id": "acme"}}


def _teach(rec: Recommender, store: Any, n: int, taken: dict[str, bool], start: int = 0) -> None:
    for i in range(start, start + n):
        result = rec.recommend(_ctx(i), store=store)
        for g in result.gesture_ids():
            store.record_outcome(result.decision_id, g, "accepted" if taken.get(g) else "declined",
                                 idempotency_key=f"{result.decision_id}:{g}")


def _evidence(store: Any, gesture: str) -> dict[str, Any]:
    rows = [r for r in store.learning_state("acme")["segments"] if r["gesture_id"] == gesture]
    return rows[0] if rows else {}


def test_outcomes_update_the_evidence_once_inside_their_transaction(store: Any) -> None:
    rec = _rec()
    result = rec.recommend(_ctx(1), store=store)
    assert result.learning is not None and result.learning.evidence  # logged with the decision
    top = result.recommendations[0]
    assert top.gesture_id == "credit" and top.evidence is not None and top.evidence.outcomes == 0
    store.record_outcome(result.decision_id, "credit", "accepted", idempotency_key="k1")
    store.record_outcome(result.decision_id, "credit", "accepted", idempotency_key="k1")  # replayed: nothing
    store.record_outcome(result.decision_id, "credit", "delivered", idempotency_key="k2")  # the same acceptance
    row = _evidence(store, "credit")
    assert (row["outcomes"], row["accepted"], row["delivered"]) == (1, 1.0, 1.0)
    assert row["segment"] == "family=delay|tier=recover|value=high|staff=genuine"
    store.record_outcome(result.decision_id, "credit", "offered", idempotency_key="k3")
    assert _evidence(store, "credit")["outcomes"] == 1


def test_enough_evidence_reorders_within_the_tier_and_learning_off_ignores_it(make_store: Any) -> None:
    store = make_store()
    store.learning_config = LearningConfig(min_evidence=5)
    rec = _rec()
    before = rec.recommend(_ctx(0), store=store)
    assert before.recommendations[0].gesture_id == "credit"  # the rules' order (priority 80)
    _teach(rec, store, 14, {"credit": False, "callback": True, "voucher": False}, start=1)
    after = rec.recommend(_ctx(100), store=store)
    assert after.recommendations[0].gesture_id == "callback"
    ev = after.recommendations[0].evidence
    assert ev is not None and ev.learned and "similar customers" in ev.text
    assert [r.tier for r in after.recommendations] == sorted((r.tier for r in after.recommendations),
                                                             key=["recover", "meet", "exceed"].index)
    # rules stay the guardrails: learning never adds a gesture the rules did not match
    assert set(after.gesture_ids()) | {w.gesture_id for w in after.withheld} <= {g["id"] for g in PACK["gestures"]}
    off = _rec(learning=False).recommend(_ctx(100), store=store)
    assert off.recommendations[0].gesture_id == "credit"
    assert all(r.evidence is None for r in off.recommendations)


def test_freeze_keeps_the_evidence_and_reset_forgets_it(store: Any) -> None:
    rec = _rec()
    _teach(rec, store, 2, {"credit": True})
    n = _evidence(store, "credit")["outcomes"]
    assert store.freeze_learning("acme") is True
    _teach(rec, store, 2, {"credit": True}, start=10)
    assert _evidence(store, "credit")["outcomes"] == n and store.learning_state("acme")["frozen"]
    store.freeze_learning("acme", False)
    _teach(rec, store, 1, {"credit": True}, start=20)
    assert _evidence(store, "credit")["outcomes"] == n + 1
    assert store.reset_learning("acme") > 0
    assert store.learning_state("acme")["segments"] == []


def test_the_same_context_store_state_and_day_give_the_same_receipt_and_answer(make_store: Any) -> None:
    """Replays stay exact with learning: twice with the same store state, and from the log
    (with the logged evidence and the keyed Thompson choice of the extra)."""
    store = make_store()
    store.learning_config = LearningConfig(min_evidence=3)
    rec = _rec()
    _teach(rec, store, 12, {"callback": True, "tasting": True, "upgrade": False, "thank_you": False})
    one = rec.explain(_ctx(500), store=store)  # a what-if: nothing logged, the state unchanged
    two = rec.recommend(_ctx(500), store=store)
    assert one.receipt == two.receipt and one.gesture_ids() == two.gesture_ids()
    assert [r.score for r in one.recommendations] == [r.score for r in two.recommendations]
    extra = [r for r in two.recommendations if r.tier == "exceed"]
    assert extra and extra[0].evidence is not None and extra[0].evidence.choice_probability is not None
    assert two.learning is not None and two.learning.choices and two.learning.extras_chance == 1.0
    logged = list(iter_decisions(store, tenant="acme"))
    assert all(d.learning for d in logged)
    for d in logged:  # every decision, replayed with the evidence it was ranked with
        again = rec.recommend(replay_context(d), store=ReplayMemory(d))
        assert again.receipt.id == d.receipt_id and again.gesture_ids() == d.gestures
        assert [r.score for r in again.recommendations] == _logged_scores(store, d.id)


def _logged_scores(store: Any, decision_id: str) -> list[float]:
    return [g.score for g in store.get_decision(decision_id).gestures if g.status == "recommended"]


def test_two_server_processes_on_one_postgresql_share_what_they_learn(pg_url: str) -> None:
    from recommender.memory import open_store

    with open_store(pg_url, upgrade=True) as store:
        store.learning_config = LearningConfig(min_evidence=4)
        rec = _rec()
        ids = [rec.recommend(_ctx(i), store=store).decision_id for i in range(8)]  # credit listed first
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from recommender.memory import open_store
ids = json.loads(sys.argv[1])
with open_store({pg_url!r}) as store:
    for d in ids:
        store.record_outcome(d, "credit", "declined", idempotency_key="p:" + d)
        store.record_outcome(d, "credit", "declined", idempotency_key="p:" + d)
"""
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(ids[k::2])]) for k in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with open_store(pg_url) as other:  # a third process's view: the same state
        other.learning_config = LearningConfig(min_evidence=4)
        row = [r for r in other.learning_state("acme")["segments"] if r["gesture_id"] == "credit"][0]
        assert row["outcomes"] == 8 and row["declined"] == 8.0
        result = _rec().recommend(_ctx(99), store=other)
        assert result.recommendations[0].gesture_id == "callback"  # credit, learned poor, gave way


def test_learning_never_adds_a_gesture_nor_lifts_one_past_its_guardrails(make_store: Any) -> None:
    """Learned evidence reorders only what the rules matched; a gesture above the serving
    person's authority still needs approval however well it is taken."""
    import copy

    store = make_store()
    store.learning_config = LearningConfig(min_evidence=5)
    _teach(_rec(), store, 14, {"credit": False, "callback": True, "voucher": False}, start=1)
    ctx = _ctx(300)
    on, off = _rec().recommend(ctx, store=store), _rec(learning=False).explain(ctx, store=store)

    def matched(r: Any) -> set[str]:
        return {*r.gesture_ids(), *(w.gesture_id for w in r.withheld), *(w.gesture_id for w in r.needs_approval)}

    assert matched(on) == matched(off) and on.recommendations[0].gesture_id == "callback"
    guarded = copy.deepcopy(PACK)
    next(g for g in guarded["gestures"] if g["id"] == "callback")["authority"] = "super"
    rec = Recommender([], packs=[guarded], autoload=False, profiles={"default": PROFILE})
    result = rec.recommend(ctx, store=store)
    assert "callback" not in result.gesture_ids()
    assert [w.gesture_id for w in result.needs_approval] == ["callback"]
    assert result.recommendations[0].gesture_id == "voucher"  # credit, learned poor, ranks below voucher's prior


def test_kept_choice_probabilities_log_what_the_computation_gives(make_store: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The extras' choice probabilities are kept between requests (``learning.CHOICE_MEMO``): a
    decision answered from the memo has the receipt, listed probabilities and logged trace of
    one computed afresh."""
    import recommender.learning as learning

    store = make_store()
    store.learning_config = LearningConfig(min_evidence=3)
    rec = _rec()
    _teach(rec, store, 12, {"callback": True, "tasting": True, "upgrade": False, "thank_you": False})
    monkeypatch.setattr(learning, "_CHOICES", {})
    monkeypatch.setattr(learning, "CHOICE_MEMO", 0)  # nothing kept: computed
    computed = rec.explain(_ctx(500), store=store)
    assert not learning._CHOICES
    monkeypatch.setattr(learning, "CHOICE_MEMO", 16)
    rec.explain(_ctx(500), store=store)
    assert len(learning._CHOICES) == 1
    kept = rec.recommend(_ctx(500), store=store)  # answered from the memo
    assert computed.learning is not None and kept.learning is not None and len(kept.learning.choices) > 1
    assert kept.receipt == computed.receipt and kept.learning.choices == computed.learning.choices
    assert ([r.evidence.choice_probability for r in kept.recommendations if r.evidence]
            == [r.evidence.choice_probability for r in computed.recommendations if r.evidence])
    logged = [d for d in iter_decisions(store, tenant="acme") if d.id == kept.decision_id]
    assert logged and logged[0].learning["choices"] == computed.learning.choices
