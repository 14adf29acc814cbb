"""The population check (issue 14, "Done when"): on a generated, varied population across
verticals, every negative experience gets a recover gesture, the mean recovery cost rises
with the severity band, extras go to 5-15% of interactions and to no attribute value more
than half the time, no listed gesture is above the staff's money limit, at most 4 gestures
are listed on average and at most 5 near misses are shown by default.

The population is ``bench/population.py``'s (seeded); the check is
``recommender.backtest.population`` (what ``recommender backtest --population`` prints). The
test runs 5,000 interactions to stay within seconds on a shared machine; the bench runs
10,000 (``python -m bench.population``, bench/README.md).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from recommender import Recommender
from recommender.backtest.population import THRESHOLDS, PopulationReport, population_check
from recommender.issues import FAMILIES

from test_backtest_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench/; an installed recommender comes first

from bench.population import (UNKNOWN_CODES, VERTICALS, generate_population,  # noqa: E402
                              population_contexts, write_population)

N = 5_000
SEED = 14


@pytest.fixture(scope="module")
def contexts() -> list[dict]:
    return population_contexts(N, SEED)


@pytest.fixture(scope="module")
def report(contexts: list[dict]) -> PopulationReport:
    # the recommender `recommender backtest` builds: the shipped packs and installed plugins
    return population_check(Recommender(), contexts, explain_sample=500)


def _why(report: PopulationReport, kind: str) -> str:
    return json.dumps(report.examples.get(kind, [])[:3], indent=1, default=str)


# -- the population is varied ----------------------------------------------------------


def test_the_population_is_seeded_and_varied(contexts: list[dict], report: PopulationReport) -> None:
    assert list(generate_population(50, SEED)) == list(generate_population(50, SEED))
    assert list(generate_population(50, SEED)) != list(generate_population(50, SEED + 1))
    assert {c["business"]["vertical"] for c in contexts} == set(VERTICALS)
    assert len({c["business"]["id"] for c in contexts}) >= 2 * len(VERTICALS)
    # every family of the vocabulary, as the engine assessed it, and unknown codes
    assert set(FAMILIES) <= set(report.families), set(FAMILIES) - set(report.families)
    issues = Counter(c["interaction"]["issue"] for c in contexts)
    assert any(code in issues for code in UNKNOWN_CODES) and report.unknown_issue > 0
    channels = Counter(c["interaction"].get("channel") for c in contexts)
    assert channels[None] > 0.05 * N and len(channels) >= 6
    levels = Counter((c.get("staff") or {}).get("level") for c in contexts)
    assert {"synthetic", "genuine", "super", None} <= set(levels)
    assert sum(1 for c in contexts if "customer" not in c) > 0.03 * N  # walk-ins
    ids = Counter(c.get("customer", {}).get("id") for c in contexts if c.get("customer", {}).get("id"))
    assert max(ids.values()) >= 2  # customers come back
    months = {c["interaction"]["occurred_at"][:7] for c in contexts}
    assert len(months) == 6
    bands = {b.severity: b.rows for b in report.bands}
    assert all(bands[s] >= 0.05 * N for s in range(5)), bands  # every band is well represented
    for field in ("tenure_years", "visits", "lifetime_value"):
        assert 0.5 * N < sum(field in c.get("customer", {}) for c in contexts) < 0.9 * N, field
    for field in ("sentiment", "delay_days", "wait_minutes", "repeat_count", "repeat_issue", "escalated", "amount"):
        assert sum(field in c["interaction"] for c in contexts) > 0.02 * N, field


def test_lifetime_value_is_on_each_verticals_scale(contexts: list[dict]) -> None:
    def median(vertical: str) -> float:
        values = sorted(c["customer"]["lifetime_value"] for c in contexts
                        if c["business"]["vertical"] == vertical and "lifetime_value" in c.get("customer", {}))
        return values[len(values) // 2]

    assert median("bank") > 5 * median("fitness") and median("bank") > 5 * median("restaurant")


# -- the six properties ----------------------------------------------------------------


def test_every_negative_experience_gets_a_recover_gesture(report: PopulationReport) -> None:
    assert report.negative > 0.2 * N
    assert report.negative_with_recover == report.negative, (
        f"{report.negative - report.negative_with_recover} of {report.negative} negative experiences got no "
        f"recover gesture; by family / band: {report.uncovered_by}; e.g. {_why(report, 'uncovered')}")


def test_mean_recovery_cost_rises_with_the_severity_band(report: PopulationReport) -> None:
    means = [b.recover_cost_mean for b in report.bands]
    assert all(m is not None for m in means), means
    assert all(x <= y for x, y in zip(means[1:], means[2:])), f"listed recovery cost by band 0-4: {means}"
    assert means[4] > means[1], f"listed recovery cost by band 0-4: {means}"
    assert report.cost_rises


def test_extras_go_to_5_to_15_percent_and_to_no_attribute_value_more_than_half_the_time(
        report: PopulationReport) -> None:
    assert report.extras_share is not None
    assert THRESHOLDS["extras_min"] <= report.extras_share <= THRESHOLDS["extras_max"], report.extras_share
    attributes = {g.attribute for g in report.groups}
    assert {"vertical", "channel", "staff_level", "tier", "family", "loyal", "high_value", "is_new"} <= attributes
    assert all(g.rows >= report.min_group for g in report.groups)
    worst = report.max_group
    assert worst is not None and worst.share <= THRESHOLDS["extras_group_max"], (
        f"{worst.attribute} = {worst.value}: extras in {worst.extras} of {worst.rows} interactions")


def test_no_listed_gesture_is_above_the_staffs_money_limit(report: PopulationReport) -> None:
    assert report.over_limit == 0, (
        f"{report.over_limit} listed gestures above the money limit: {report.over_limit_gestures}; "
        f"e.g. {_why(report, 'over_limit')}")


def test_at_most_4_gestures_are_listed_on_average(report: PopulationReport) -> None:
    assert report.listed_mean is not None and report.listed_mean <= THRESHOLDS["listed_mean_max"], (
        f"mean {report.listed_mean} listed (by tier {report.listed_by_tier}); e.g. {_why(report, 'long_listing')}")


def test_at_most_5_near_misses_are_shown_by_default(report: PopulationReport) -> None:
    assert report.explained == 500
    assert report.near_misses_max <= THRESHOLDS["near_misses_max"], _why(report, "near_misses")


def test_the_report_agrees_with_its_properties(report: PopulationReport) -> None:
    assert len(report.properties) == 7
    assert report.ok == all(p.holds for p in report.properties)


class _Tampered:
    """A recommender whose listings break every promise: no recovery, an extra for everyone,
    an expensive gesture listed for any staff, and far too many gestures."""

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec

    def profile_for(self, business: Any) -> Any:
        return self.rec.profile_for(business)

    def explain(self, ctx: Any) -> Any:
        return self.rec.explain(ctx)

    def recommend_many(self, ctxs: Any) -> Any:
        out = self.rec.recommend_many(ctxs)
        for res in out:
            kept = [r.model_copy(update={"tier": "exceed", "cost": 1e6}) for r in res.recommendations
                    if r.tier != "recover"]
            res.recommendations = kept * 3
        return out


def test_the_check_reports_what_breaks(contexts: list[dict]) -> None:
    bad = population_check(_Tampered(Recommender(autoload=False)), contexts[:600], explain_sample=20)
    verdicts = {p.name: p.holds for p in bad.properties}
    assert not bad.ok and bad.failed()
    assert bad.negative_with_recover == 0 and not verdicts["every negative experience gets a recover gesture"]
    assert not bad.cost_rises and not verdicts["mean recovery cost rises with severity band"]
    assert bad.extras_share > 0.5 and not verdicts["extras go to 5-15% of interactions"]
    assert bad.max_group is not None and bad.max_group.share > 0.5
    assert bad.over_limit > 0 and not verdicts["no gesture above the staff's money limit outside needs_approval"]
    assert bad.examples["over_limit"] and bad.examples["uncovered"][0]["severity"] >= 1
    assert bad.listed_mean > 4 and not verdicts["at most 4 gestures listed on average"]
    assert verdicts["at most 5 near misses shown by default"]


# -- the command -----------------------------------------------------------------------


def test_backtest_population_prints_the_check(tmp_path: Path) -> None:
    hist = tmp_path / "pop.jsonl"
    assert write_population(hist, 400, SEED) == 400
    with hist.open("a") as f:
        f.write('{"interaction": {"issue": 3}}\n')
    p = run_cli("backtest", str(hist), "--population")
    assert p.returncode in (0, 1), p.stderr
    assert "400 interactions" in p.stdout
    for name in ("every negative experience gets a recover gesture", "mean recovery cost rises with severity band",
                 "extras go to 5-15% of interactions", "no attribute value gets extras more than half the time",
                 "no gesture above the staff's money limit outside needs_approval",
                 "at most 4 gestures listed on average", "at most 5 near misses shown by default"):
        assert name in p.stdout, name
    assert (p.returncode == 0) == ("all properties hold" in p.stdout)
    assert f"{hist}:401: interaction.issue: Input should be a valid string" in p.stderr
    assert "skipped 1 bad row(s) of 401 read" in p.stderr

    j = run_cli("backtest", str(hist), "--population", "--json")
    data = json.loads(j.stdout)
    assert data["rows"] == 400 and len(data["properties"]) == 7 and len(data["bands"]) == 5
    assert j.returncode == (0 if all(x["holds"] for x in data["properties"]) else 1)


@pytest.mark.parametrize("flags", [["--compare", "rules"], ["--workers", "2"], ["--html", "x.html"]])
def test_backtest_population_refuses_flags_that_do_not_apply(tmp_path: Path, flags: list[str]) -> None:
    hist = tmp_path / "pop.jsonl"
    write_population(hist, 5, SEED)
    p = run_cli("backtest", str(hist), "--population", *flags)
    assert p.returncode == 2 and f"{flags[0]} does not apply to --population" in p.stderr


def test_backtest_population_without_usable_rows_exits_2(tmp_path: Path) -> None:
    hist = tmp_path / "bad.jsonl"
    hist.write_text("nope\n")
    p = run_cli("backtest", str(hist), "--population")
    assert p.returncode == 2 and "no usable row" in p.stderr
