"""Approval requests in the memory store, alike on SQLite and PostgreSQL (issue 18): asked for
once per gesture, listed per tenant, decided once; the decision log and later outcomes say who
approved; another tenant's requests are not found; pruning a decision takes its requests along.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from memory_fixtures import NOW, FakeClock, clock, db_url, make_store, pg_url, store  # noqa: F401
from recommender import Recommender
from recommender.memory import InvalidStoreInput, UnknownDecision
from recommender.memory.approvals import ApprovalConflict, UnknownApproval

BILLING = {"customer": {"id": "c-1"}, "staff": {"level": "synthetic"}, "business": {"id": "acme"},
           "interaction": {"issue": "billing_error", "amount": 120, "sentiment": -0.8}}


@pytest.fixture(scope="module")
def shipped() -> Recommender:
    return Recommender(autoload=False)


def _ask(store: Any, decision_id: str, **kw: Any) -> Any:
    return store.request_approval("acme", decision_id, "goodwill_credit", requested_by="dana",
                                  script="For the trouble...", agent_reason="Because.", detail="needs genuine", **kw)


def test_request_list_decide_and_who_approved(store: Any, shipped: Recommender, clock: FakeClock) -> None:
    result = shipped.recommend(BILLING, store=store)
    assert "goodwill_credit" in [n.gesture_id for n in result.needs_approval]
    approval, created = _ask(store, result.decision_id, note="charged twice")
    assert created and approval.status == "pending" and approval.cost == 40.0 and approval.customer_id == "c-1"
    assert approval.title.startswith("Goodwill credit") and approval.request_note == "charged twice"
    again, created = _ask(store, result.decision_id)
    assert not created and again.id == approval.id
    assert [a.id for a in store.list_approvals("acme")] == [approval.id]
    assert store.list_approvals("other") == []
    with pytest.raises(UnknownApproval):
        store.get_approval("other", approval.id)

    clock.advance(minutes=5)
    decided, changed = store.decide_approval("acme", approval.id, "approved", decided_by="lee", note="fine")
    assert changed and decided.decided_by == "lee" and decided.decided_at == NOW + timedelta(minutes=5)
    assert store.decide_approval("acme", approval.id, "approved", decided_by="lee")[1] is False  # a replay
    with pytest.raises(ApprovalConflict, match="already approved by lee"):
        store.decide_approval("acme", approval.id, "declined", decided_by="kim")
    assert store.list_approvals("acme") == [] and len(store.list_approvals("acme", status=None)) == 1

    held = next(h for h in store.get_decision(result.decision_id).held if h["gesture_id"] == "goodwill_credit")
    assert held["approval"] == {"id": approval.id, "status": "approved", "by": "lee",
                                "at": (NOW + timedelta(minutes=5)).isoformat(), "note": "fine", "requested_by": "dana"}
    delivered = store.record_outcome(result.decision_id, "goodwill_credit", "delivered", "k-1")
    assert delivered.approved_by == "lee"
    other = store.record_outcome(result.decision_id, result.recommendations[0].gesture_id, "accepted", "k-2")
    assert other.approved_by is None
    assert [o.approved_by for o in store.get_decision(result.decision_id).outcomes] == ["lee", None]


def test_what_cannot_be_asked_or_decided(store: Any, shipped: Recommender) -> None:
    result = shipped.recommend(BILLING, store=store)
    with pytest.raises(InvalidStoreInput) as err:
        store.request_approval("acme", result.decision_id, result.recommendations[0].gesture_id, requested_by="dana",
                               script="", agent_reason="", detail="")
    assert err.value.field == "gesture_id"
    with pytest.raises(UnknownDecision):
        store.request_approval("other", result.decision_id, "goodwill_credit", requested_by="x", script="",
                               agent_reason="", detail="")
    approval, _ = _ask(store, result.decision_id)
    with pytest.raises(InvalidStoreInput):
        store.decide_approval("acme", approval.id, "maybe", decided_by="lee")
    with pytest.raises(InvalidStoreInput):
        _ask(store, result.decision_id, note="\x00")
    with pytest.raises(UnknownApproval):
        store.decide_approval("acme", "no-such-id", "approved", decided_by="lee")


def test_pruning_a_decision_takes_its_requests(make_store: Any, shipped: Recommender, clock: FakeClock) -> None:
    store = make_store()
    result = shipped.recommend(BILLING, store=store)
    _ask(store, result.decision_id)
    clock.advance(days=800)
    store.prune(clock() - timedelta(days=400))
    assert store.list_approvals("acme", status=None) == []
