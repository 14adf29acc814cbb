"""Backtest aggregates against a hand-made history with known answers; compare deltas; exact merges."""

from __future__ import annotations

import random

import pytest

from recommender.backtest import backtest
from recommender.backtest.io import iter_raw, open_source
from recommender import Recommender
from recommender.backtest.report import Partial, negative_reasons, tenure_band, to_cents
from recommender.backtest.run import RuleSet, chunked, process_chunk
from recommender.context import parse_context

from test_backtest_helpers import write_history, write_packs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bt")
    a, b = write_packs(tmp)
    hist = write_history(tmp / "h.jsonl")
    return tmp, a, b, hist


@pytest.fixture(scope="module")
def report(setup):
    _, a, _, hist = setup
    return backtest(hist, [a], autoload=False)


def test_rows_and_totals(report):
    run = report.run
    assert (report.rows_read, report.rows_ok, report.rows_skipped) == (6, 6, 0)
    assert run.rows == 6 and run.rows_with_gesture == 4 and run.fires == 7
    assert run.cost_cents == 6085 and run.cost_total == 60.85
    assert run.cost_avg_per_row == round(60.85 / 6, 4)
    assert report.period_start.isoformat() == "2025-03-01T09:00:00+00:00"


def test_per_gesture(report):
    g = {x.gesture_id: x for x in report.run.gestures}
    assert {k: (v.fires, v.cost_cents, v.tier) for k, v in g.items()} == {
        "apology": (2, 0, "recover"), "credit": (1, 1010, "recover"), "waive": (2, 5055, "meet"),
        "tip": (2, 20, "meet")}
    assert g["waive"].cost_avg == 25.275 and g["waive"].category == "fee_waiver"
    assert g["tip"].share == round(2 / 6, 6)
    # sorted by fires, then cost
    assert [x.gesture_id for x in report.run.gestures] == ["waive", "tip", "apology", "credit"]


def test_per_rule_and_tier(report):
    r = {x.rule_id: (x.fires, x.cost_total) for x in report.run.rules_fired}
    assert r == {"r-wait": (1, 0.0), "r-repeat": (1, 10.10), "r-loyal": (2, 50.55), "r-oil": (2, 0.20)}
    t = {x.tier: (x.fires, x.rows, x.cost_total) for x in report.run.tiers}
    assert t["recover"] == (3, 2, 10.10) and t["meet"] == (4, 3, 50.75)
    assert t.get("exceed", (0, 0, 0.0)) == (0, 0, 0.0)


def test_per_segment(report):
    s = {(x.dimension, x.value): (x.rows, x.rows_with_gesture, x.fires, x.cost_total, x.negative, x.covered)
         for x in report.run.segments}
    assert s[("tenure", "<1")] == (1, 1, 1, 0.0, 1, 1)
    assert s[("tenure", "1-3")] == (1, 0, 0, 0.0, 1, 0)
    assert s[("tenure", "3-10")] == (2, 1, 1, 20.0, 0, 0)  # 3 years is in 3-10
    assert s[("tenure", "10+")] == (1, 1, 4, 40.75, 1, 1)
    assert s[("tenure", "unknown")] == (1, 1, 1, 0.10, 1, 0)
    assert s[("channel", "pos")] == (1, 1, 1, 20.0, 0, 0)
    assert s[("channel", "unknown")] == (2, 0, 0, 0.0, 1, 0)  # an absent channel is unknown, not pos
    assert s[("channel", "phone")] == (2, 2, 5, 40.75, 2, 2)
    assert s[("channel", "web")] == (1, 1, 1, 0.10, 1, 0)
    assert s[("issue", "flat_tire")][:3] == (3, 2, 2)
    assert s[("issue", "oil_change")][:3] == (2, 2, 5)
    assert s[("issue", "late_delivery")] == (1, 0, 0, 0.0, 1, 0)
    tenure = [x.value for x in report.run.segments if x.dimension == "tenure"]
    assert tenure == ["<1", "1-3", "3-10", "10+", "unknown"]


def test_coverage(report):
    cov = report.run.coverage
    assert (cov.negative, cov.covered, cov.coverage) == (4, 2, 0.5)
    by = {r.reason: (r.negative, r.covered) for r in cov.by_reason}
    # the same reading of the case as the recommendation's: the delay family, then the signals
    assert by == {"delay": (1, 0), "repeat": (1, 1), "upset": (1, 0), "late": (1, 0), "long_wait": (1, 1)}
    assert [r.reason for r in cov.by_reason] == ["delay", "repeat", "upset", "late", "long_wait"]
    assert "severity >= 1" in cov.definition


def test_negative_means_the_recommendation_read_the_case_as_negative():
    rec = Recommender([], autoload=False)

    def reasons(issue="visit", **inter):
        return negative_reasons(rec.recommend({"interaction": {"issue": issue, **inter}}).assessment)

    assert reasons() == () and reasons("question") == ()
    assert reasons(wait_minutes=14.9) == () and reasons(wait_minutes=15) == ("long_wait",)
    assert reasons(delay_days=0.5) == ("late",) and reasons("late_delivery") == ("delay",)
    assert reasons(sentiment=-0.49) == () and reasons(sentiment=-0.5) == ("upset",)
    assert reasons(repeat_issue=False) == () and reasons(repeat_issue=True) == ("repeat",)
    assert reasons("fraud", escalated=True) == ("fraud", "escalated")
    assert [tenure_band(v) for v in (None, 0, 0.99, 1, 2.99, 3, 9.99, 10, 40)] == [
        "unknown", "<1", "<1", "1-3", "1-3", "3-10", "3-10", "10+", "10+"]


def test_compare_deltas(setup):
    _, a, b, hist = setup
    rep = backtest(hist, [a], compare=[b], autoload=False)
    c = rep.compare
    assert rep.other is not None and c is not None
    assert c.rows == 6 and c.rows_changed == 4 and c.share_changed == round(4 / 6, 6)
    assert c.gestures_gained == ["sorry_note"] and c.gestures_lost == ["tip"]
    assert (c.cost_a, c.cost_b, c.cost_delta) == (60.85, 72.0, 11.15)
    assert (c.coverage_a, c.coverage_b, c.coverage_delta) == (0.5, 0.75, 0.25)
    d = {x.gesture_id: (x.fires_a, x.fires_b, x.fires_delta, x.cost_delta, x.rows_gained, x.rows_lost)
         for x in c.gestures}
    assert d == {
        "apology": (2, 1, -1, 0.0, 0, 1),
        "credit": (1, 2, 1, 10.10, 1, 0),
        "sorry_note": (0, 1, 1, 1.25, 1, 0),
        "tip": (2, 0, -2, -0.20, 0, 2),
        "waive": (2, 2, 0, 0.0, 0, 0),
    }
    # A's report is the same with or without a comparison
    alone = backtest(hist, [a], autoload=False)
    assert rep.run.model_dump(exclude={"label"}) == alone.run.model_dump(exclude={"label"})


def test_cents_are_exact():
    assert to_cents(0.1) + to_cents(0.2) == 30
    assert to_cents(30.55) == 3055 and to_cents(10.10) == 1010 and to_cents(1e9) == 100_000_000_000
    assert to_cents(0.125) == 12  # half-even
    assert to_cents(0.135) == 14


def test_merge_order_never_shows(setup):
    """Partials merged in any order and any chunking give the same report."""
    _, a, b, hist = setup
    src = open_source(hist)
    sets = (RuleSet.of([a], autoload=False).pinned(), RuleSet.of([b], autoload=False).pinned())
    rows = list(iter_raw(src)) * 5

    def merged(size: int, seed: int) -> dict:
        parts = [process_chunk(c, src, sets) for c in chunked(rows, size)]
        random.Random(seed).shuffle(parts)
        total = Partial()
        for p in parts:
            total.merge(p)
        from recommender.backtest.report import build_report

        return build_report(total, history="h", fmt="jsonl", mapping=None, labels=["a", "b"],
                            rules=[[], []]).model_dump()

    first = merged(30, 0)
    assert first == merged(1, 1) == merged(7, 2) == merged(4, 3)
    assert first["run"]["cost_cents"] == 5 * 6085


def test_batch_and_row_by_row_agree(setup, monkeypatch):
    """recommender.batch.recommend_many (when this build has it) gives the row-by-row report."""
    from recommender.backtest import run
    from recommender.errors import EngineError

    _, a, b, hist = setup

    def report(mode):
        monkeypatch.setattr(run, "_recommend_many", mode)
        return backtest(hist, [a], compare=[b], autoload=False).model_dump(exclude={"timing"})

    row_by_row = report(False)
    try:
        from recommender.batch import recommend_many  # noqa: F401
    except ImportError:
        pass
    else:
        assert report(None) == row_by_row

    def failing(rec, ctxs):
        raise EngineError("boom")

    assert report(failing) == row_by_row  # a failing batch falls back to one row at a time
