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
