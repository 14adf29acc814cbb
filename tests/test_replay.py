"""A decision can be cited on a ticket and replayed exactly from the decision log."""

from datetime import date

from memory_fixtures import *  # noqa: F401,F403  (db_url, store, clock fixtures on SQLite and PostgreSQL)

from helpers import OPEN_PROFILE, gesture, pack, rule
from recommender import Recommender, hookimpl

PACK = pack([gesture("waive_fee", "exceed", "interaction.cost", category="fee_waiver")],
            [rule("loyal", {"all": ["customer.tenure_years ge 2", "interaction.cost le 40"]}, "waive_fee")])


def test_logged_context_replays_to_the_same_receipt_and_gestures(store):
    rec = Recommender([], packs=[PACK], autoload=False, profiles={"default": OPEN_PROFILE})
    first = rec.recommend({"customer": {"id": "c-77", "tenure_years": 3}, "interaction": {"issue": "flat_tire", "cost": 25}},
                          store=store)
    logged = store.get_decision(first.decision_id)
    assert logged.context_hash == first.receipt.context_hash
    assert logged.ruleset_version == first.ruleset_version
    again = rec.recommend(logged.context)  # replay without the store: the context is already enriched
    assert again.receipt == first.receipt
    assert again.gesture_ids() == first.gesture_ids() == ["waive_fee"]


def test_record_outcome_counts_a_retry_once_and_reaches_observers(store):
    seen = []

    class Observer:
        __name__ = "observer"

        @hookimpl
        def recommender_record_outcome(self, outcome):
            seen.append((outcome.gesture_id, outcome.outcome, outcome.customer_id))

    rec = Recommender([], packs=[PACK], plugins=[Observer()], autoload=False, profiles={"default": OPEN_PROFILE})
    res = rec.recommend({"customer": {"id": "c-78", "tenure_years": 3}, "interaction": {"issue": "x", "cost": 10}},
                        store=store)
    rec.record_outcome(store, res.decision_id, "waive_fee", "accepted", idempotency_key="k-1")
    rec.record_outcome(store, res.decision_id, "waive_fee", "accepted", idempotency_key="k-1")  # a retry
    assert seen[0] == ("waive_fee", "accepted", "c-78")
    report = store.report("default", since=date(2000, 1, 1), until=date(2100, 1, 1))
    assert [(g.key, g.accepted) for g in report.gestures] == [("waive_fee", 1)]  # the retry counted once


def test_a_decision_ranked_by_learned_evidence_replays_to_the_same_receipt_answer_and_scores(store):
    """Issue 19: with learning, the same context, store state and day give the same receipt and
    answer; from the log, the evidence logged with the decision reproduces its ranking."""
    from recommender.backtest.decisions import ReplayMemory, iter_decisions, replay_context
    from recommender.learning import LearningConfig

    store.learning_config = LearningConfig(min_evidence=2)
    two = pack([gesture("waive_fee", "recover", 10, category="fee_waiver", exclusive_group="g"),
                gesture("credit", "recover", 5, category="loyalty_reward", exclusive_group="g")],
               [rule("waive", "interaction.issue eq late", "waive_fee", priority=80),
                rule("credit", "interaction.issue eq late", "credit", priority=40)])
    rec = Recommender([], packs=[two], autoload=False, profiles={"default": OPEN_PROFILE})
    ctx = {"customer": {"id": "c-79"}, "interaction": {"issue": "late", "occurred_at": "2025-06-01T10:00:00Z"}}
    for i in range(3):  # the top gesture is declined three times: the other takes its place
        r = rec.recommend({**ctx, "customer": {"id": f"c-{i}"}}, store=store)
        store.record_outcome(r.decision_id, r.gesture_ids()[0], "declined", idempotency_key=f"k-{i}")
    first = rec.recommend(ctx, store=store)
    assert first.gesture_ids() == ["credit"] and rec.recommend(ctx, store=store).receipt == first.receipt
    logged = next(d for d in iter_decisions(store) if d.id == first.decision_id)
    again = rec.recommend(replay_context(logged), store=ReplayMemory(logged))
    assert again.receipt == first.receipt and again.gesture_ids() == first.gesture_ids()
    assert [r.score for r in again.recommendations] == [r.score for r in first.recommendations]
