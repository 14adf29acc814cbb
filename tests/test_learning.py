"""Issue 19: the model of learning from outcomes, and the simulation it is judged by."""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender
from recommender.context import parse_context
from recommender.learning import (
    LearningConfig,
    Posterior,
    Stats,
    Trace,
    choice_probabilities,
    counts_of,
    decay,
    evidence_text,
    learned_score,
    posterior,
    prior_mean,
    segment_key,
    thompson_order,
    update,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_the_prior_follows_the_rules_priority_and_no_evidence_changes_nothing() -> None:
    assert prior_mean(0) == pytest.approx(0.2) and prior_mean(100) == pytest.approx(0.8)
    config = LearningConfig()
    post = posterior(None, 70, "s", config)
    assert post.mean == pytest.approx(prior_mean(70))
    assert post.alpha + post.beta == pytest.approx(config.prior_strength)
    assert not post.learned and post.factor == 1.0
    assert learned_score(123.45, post) == 123.45


def test_below_the_minimum_evidence_the_rules_order_stands_and_above_it_acceptance_counts() -> None:
    config = LearningConfig(min_evidence=30)
    few = posterior(Stats(accepted=0, declined=29, n=29), 50, "s", config)
    assert not few.learned and learned_score(100.0, few) == 100.0
    many = posterior(Stats(accepted=27, declined=3, n=30), 50, "s", config)
    assert many.learned
    assert learned_score(100.0, many) == pytest.approx(100 * many.mean / 0.5, abs=0.01)
    poor = posterior(Stats(accepted=3, declined=27, n=30), 50, "s", config)
    assert learned_score(100.0, poor) < 100.0 < learned_score(100.0, many)


def test_recent_outcomes_weigh_more_with_a_documented_half_life() -> None:
    assert decay(90, 90) == pytest.approx(0.5) and decay(0, 90) == 1.0
    s, at = update(Stats(), None, T0, 1, 0, 0, 90)
    assert (s.accepted, s.n, at) == (1, 1, T0)
    s, at = update(s, at, T0 + timedelta(days=90), 0, 1, 0, 90)
    assert (s.accepted, s.declined, s.n) == (pytest.approx(0.5), 1, 2)
    late, at2 = update(s, at, T0, 1, 0, 0, 90)  # recorded late for an older time: counts as old as it is
    assert at2 == at and late.accepted == pytest.approx(1.0)


def test_an_acceptance_counts_once_per_decision_gesture() -> None:
    assert counts_of("accepted", set()) == (1, 0, 0)
    assert counts_of("delivered", {"accepted"}) == (0, 0, 1)
    assert counts_of("delivered", set()) == (1, 0, 1)
    assert counts_of("accepted", {"delivered"}) == (0, 0, 0)
    assert counts_of("declined", {"accepted"}) == (0, 0, 0)
    assert counts_of("offered", set()) == (0, 0, 0)


def test_segments_are_configurable_and_checked() -> None:
    ctx = parse_context({"customer": {"high_value": True}, "interaction": {"issue": "x", "family": "delay"},
                         "staff": {"level": "super"}})
    assert segment_key(ctx, "recover") == "family=delay|tier=recover|value=high|staff=super"
    assert segment_key(ctx, "meet", ("tier",)) == "tier=meet"
    with pytest.raises(ValueError, match="unknown dimension"):
        LearningConfig(segments=("family", "colour"))


def test_evidence_reads_as_one_sentence() -> None:
    post = posterior(Stats(accepted=86.8, declined=53.2, n=140), 50, "s", LearningConfig())
    assert evidence_text(post) == "accepted by 62% of similar customers (140 outcomes)"
    assert "too few" in evidence_text(posterior(Stats(1, 0, 0, 1), 50, "s", LearningConfig()))
    assert Posterior.from_dict(post.as_dict()).as_dict() == post.as_dict()


def test_thompson_choice_probabilities_match_sampling_and_the_keyed_draw_replays() -> None:
    posts = {"a": Posterior("s", 3, 7, 10, 0.5, True), "b": Posterior("s", 30, 20, 50, 0.5, True),
             "c": Posterior("s", 0.8, 3.2, 0, 0.2, False)}
    weights = {"a": 1.0, "b": 0.8, "c": 2.0}
    probs = choice_probabilities(posts, weights=weights)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    rng, hits = random.Random(7), {g: 0 for g in posts}
    for _ in range(20000):
        hits[max(posts, key=lambda g: weights[g] * rng.betavariate(posts[g].alpha, posts[g].beta))] += 1
    for g in posts:
        assert probs[g] == pytest.approx(hits[g] / 20000, abs=0.015)
    assert choice_probabilities(posts, weights=weights) == probs  # the same evidence, the same numbers
    seed = b"k" * 32
    assert thompson_order(posts, seed, weights) == thompson_order(posts, seed, weights)
    two = choice_probabilities(posts, k=2)
    assert sum(two.values()) == pytest.approx(2.0, abs=0.01)


def test_the_logged_propensity_of_what_was_given() -> None:
    t = Trace(extras_chance=0.2, extra_drawn=True, choices={"a": 0.75, "b": 0.25})
    assert t.propensity(["a"]) == pytest.approx(0.15)
    assert Trace(extras_chance=0.2, extra_drawn=False, choices={"a": 1.0}).propensity([]) == pytest.approx(0.8)
    assert Trace(extras_chance=0.2, extra_drawn=True).propensity([]) == 1.0  # drawn, but nothing eligible
    assert Trace(extras_chance=0.2, choices={"a": 1.0}).propensity(["b"]) == 0.0
    assert Trace().propensity([]) == 1.0


def test_without_a_store_there_is_no_learning_work_nor_field() -> None:
    from bench.learning import PACK, PROFILE

    rec = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE})
    ctx = {"customer": {"id": "c-1"}, "interaction": {"issue": "late_delivery"}}
    result = rec.recommend(ctx)
    assert result.learning is None and all(r.evidence is None for r in result.recommendations)
    off = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE}, learning=False)
    assert off.recommend(ctx).model_dump() == result.model_dump()


def _learning_calls(rec: Recommender, ctx: Any, **kwargs: Any) -> tuple[set[str], Any]:
    """The functions of recommender/learning.py that ``rec.recommend(ctx)`` runs, and its result
    (a profile hook: it sees the calls from the compiled build's pipeline too)."""
    import recommender.learning

    called: set[str] = set()

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == recommender.learning.__file__:
            called.add(frame.f_code.co_name)

    sys.setprofile(hook)
    try:
        result = rec.recommend(ctx, **kwargs)
    finally:
        sys.setprofile(None)
    return called, result


def test_recommend_without_a_store_does_no_learning_work(tmp_path: Path) -> None:
    """Learning on but no store (nothing to learn from): no learning code runs and the answer
    is the one learning off gives. (Speed is bench/'s to measure, not a timed test's.)"""
    from bench.learning import PACK, PROFILE

    from recommender.memory import open_store

    ctx = parse_context({"customer": {"id": "c-1"}, "interaction": {"issue": "late_delivery"}})
    on = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE})
    off = Recommender([], packs=[PACK], autoload=False, profiles={"default": PROFILE}, learning=False)
    on.recommend(ctx)  # first-call set-up is not the request's work
    called, result = _learning_calls(on, ctx)
    assert called == set() and result.learning is None
    assert result.model_dump(mode="json") == off.recommend(ctx).model_dump(mode="json")
    with open_store(f"sqlite:///{tmp_path / 'm.db'}", upgrade=True) as store:  # the probe sees learning work
        called, result = _learning_calls(on, ctx, store=store)
    assert {"segment_key", "posterior"} <= called and result.learning is not None


# -- the simulation (bench/learning.py) ---------------------------------------------------

N = 600


def test_learning_converges_to_the_best_gesture_per_segment() -> None:
    """After N simulated interactions, learning's cumulative reward is within 10% of the
    oracle's and at least 15% above the rules' fixed order (measured: ~5% and ~28%)."""
    from bench.learning import regret_table

    row = regret_table(N, seeds=(11,), points=[N])[0]
    assert row["oracle"] - row["learning"] <= 0.10 * row["oracle"], row
    assert row["learning"] >= 1.15 * row["fixed"], row


def test_the_learned_ranking_lists_the_best_gesture_of_each_segment() -> None:
    from bench.learning import TRUTH, SimMemory, _context, recommender

    rec, memory, rng = recommender(True), SimMemory(), random.Random(5)
    at = T0
    for i in range(N):
        band = "high" if i % 2 else "standard"
        result = rec.recommend(_context(i, band), store=memory)
        for g in result.gesture_ids():
            assert result.decision_id is not None
            memory.record_outcome(result.decision_id, g, "accepted" if rng.random() < TRUTH[band][g] else "declined",
                                  at)
    high = rec.recommend(_context(10**6, "high"), store=memory)
    standard = rec.recommend(_context(10**6 + 1, "standard"), store=memory)
    assert "callback" in high.gesture_ids() and "credit" in standard.gesture_ids()
    top = high.recommendations[0]
    assert top.evidence is not None and top.evidence.learned and top.evidence.outcomes >= 30


def test_kept_choice_probabilities_are_exactly_what_the_computation_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    import recommender.learning as learning

    monkeypatch.setattr(learning, "_CHOICES", {})
    rng = random.Random(17)
    cases = []
    for _ in range(12):
        posts = {g: Posterior("s", rng.uniform(0.3, 40), rng.uniform(0.3, 40), 5, 0.5, True)
                 for g in "abcd"[:rng.randint(2, 4)]}
        weights = {g: rng.uniform(0.2, 3) for g in posts}
        cases.append((posts, weights, rng.choice([1, 1, 2])))
    # values equal as numbers but written apart (k > 1 seeds its draws from their text): kept apart
    ints = {"a": Posterior("s", 3, 7, 10, 0.5, True), "b": Posterior("s", 30, 20, 50, 0.5, True),
            "c": Posterior("s", 2, 3, 5, 0.5, True)}
    floats = {g: Posterior("s", float(p.alpha), float(p.beta), p.n, p.prior, p.learned) for g, p in ints.items()}
    cases += [(ints, {"a": 1, "b": 1, "c": 2}, 2), (floats, {"a": 1.0, "b": 1.0, "c": 2.0}, 2)]
    for posts, weights, k in cases:
        computed = learning._choice_probabilities(learning._params(posts), k, learning.CHOICE_DRAWS, weights)
        first = choice_probabilities(posts, k=k, weights=weights)
        first["a"] = -1.0  # a caller's copy: what is kept is untouched
        assert choice_probabilities(posts, k=k, weights=weights) == computed  # answered from the memo
    assert len(learning._CHOICES) == sum(len(posts) > k for posts, _, k in cases)  # one each
    draws = learning.CHOICE_DRAWS
    assert (learning._choice_probabilities(learning._params(ints), 2, draws, {"a": 1, "b": 1, "c": 2})
            != learning._choice_probabilities(learning._params(floats), 2, draws,
                                              {"a": 1.0, "b": 1.0, "c": 2.0}))  # why the text is the key
    monkeypatch.setattr(learning, "CHOICE_MEMO", 3)
    posts, weights, k = cases[0]
    choice_probabilities({**posts, "z": Posterior("s", 1.5, 2.5, 1, 0.5, True)}, k=k, weights=weights)
    assert len(learning._CHOICES) == 3  # bounded: the oldest go first
