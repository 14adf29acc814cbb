"""Issue 15, item 13: replaying the decision log with unchanged rules reports 0 changes.

A gesture the store held back when a decision was made (contact policy, goodwill cap,
budgets, authority limits, abuse review) must stay held in the replay *before ranking*:
otherwise it comes back, wins its exclusive group and pushes out the gesture actually given.
The population below is logged on SQLite and on PostgreSQL through days of outcomes that
spend budgets, suppress repeats and flag a customer, then replayed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import FakeClock, db_url, pg_url  # noqa: F401  (fixtures)

from recommender import Recommender
from recommender.backtest.decisions import ReplayMemory, iter_decisions, replay_context, store_holds
from recommender.backtest.run import RuleSet, replay_decisions
from recommender.memory import BudgetExceeded, Policy, open_store

PACK: dict[str, Any] = {
    "pack": "replay",
    "version": "1",
    "gestures": [
        {"id": "credit", "title": "Goodwill credit", "category": "loyalty_reward", "tier": "recover", "cost": 20,
         "exclusive_group": "make_good", "script": "A credit for the trouble."},
        {"id": "apology_note", "title": "Handwritten apology", "category": "personal_touch", "tier": "recover",
         "cost": 0, "exclusive_group": "make_good", "script": "We are sorry."},
        {"id": "waive", "title": "Waive the fee", "category": "fee_waiver", "tier": "recover",
         "cost": "interaction.cost", "script": "No charge today."},
        {"id": "tip", "title": "A care tip", "category": "freebie", "tier": "meet", "cost": 0,
         "script": "A tip for next time."},
        {"id": "loaner", "title": "Loaner car", "category": "speed", "tier": "recover", "cost": 45,
         "authority": "super", "script": "Take our loaner."},
    ],
    "rules": [
        {"id": "billing-credit", "when": "interaction.issue eq billing_error", "then": "credit", "priority": 90,
         "because": "Our mistake cost them: make good."},
        {"id": "billing-apology", "when": "interaction.issue eq billing_error", "then": "apology_note",
         "priority": 40, "because": "At least say sorry."},
        {"id": "billing-waive", "when": {"all": ["interaction.issue eq billing_error", "interaction.cost le 30"]},
         "then": "waive", "priority": 60, "because": "Small fees are not worth a fight."},
        {"id": "flat-tip", "when": "interaction.issue eq flat_tire", "then": "tip", "priority": 30,
         "because": "Teach something."},
        {"id": "late-loaner", "when": "interaction.issue eq late_delivery", "then": ["loaner", "credit"],
         "priority": 70, "because": "A late car strands them."},
    ],
}

POLICY = Policy.model_validate({
    "contact": [{"category": "freebie", "max_count": 1, "window_days": 60}],
    "abuse": {"category": "fee_waiver", "threshold": 2, "window_days": 90},
    "goodwill": {"share": 0.10, "period_days": 365},
    "budgets": {"acme": {"daily": 40, "per_staff_daily": 30}},
    "authority_limits": {"synthetic": 10},
})

CUSTOMERS = [("c1", 50), ("c2", 100), ("c3", 1000), ("c4", None), ("c5", 5000), ("c6", 150)]
ISSUES = ["billing_error", "flat_tire", "late_delivery"]
LEVELS = ["genuine", "synthetic", "super"]


def _write_pack(tmp: Path) -> Path:
    path = tmp / "replay.yaml"
    path.write_text(json.dumps(PACK, indent=1))  # JSON is YAML
    return path


def _log_population(url: str, pack: Path) -> Counter[str]:
    """Ten days of decisions and outcomes; returns how often each store hold was logged."""
    clock = FakeClock()
    store = open_store(url, policy=POLICY, clock=clock, upgrade=True)
    rec = Recommender([pack], autoload=False)
    held: Counter[str] = Counter()
    try:
        n = 0
        for day in range(10):
            for i, (cid, ltv) in enumerate(CUSTOMERS):
                n += 1
                issue = ISSUES[(day + i) % 3]
                customer: dict[str, Any] = {"id": cid, "tenure_years": 1 + i}
                if ltv is not None:
                    customer["lifetime_value"] = ltv
                interaction: dict[str, Any] = {"issue": issue, "cost": 10 + 5 * (i % 4)}
                if n % 4 != 0:  # most callers date the interaction; some leave it to the store
                    interaction["occurred_at"] = clock.now.isoformat()
                if n % 7 == 0:  # an interaction budget: the ranking's own over_budget
                    interaction["budget"] = 15
                ctx = {"customer": customer, "interaction": interaction,
                       "staff": {"level": LEVELS[(day + 2 * i) % 3], "id": f"s{i % 2}"},
                       "business": {"id": "acme", "store_id": "north"}}
                result = rec.recommend(ctx, store=store)
                for w in [*result.withheld, *result.needs_approval]:
                    held[w.reason] += 1
                for r in result.recommendations:
                    store.record_outcome(result.decision_id, r.gesture_id, "offered", f"o-{n}-{r.gesture_id}")
                    outcome = "accepted" if r.gesture_id == "waive" else "delivered"
                    try:
                        store.record_outcome(result.decision_id, r.gesture_id, outcome, f"d-{n}-{r.gesture_id}")
                    except BudgetExceeded:
                        pass
                clock.advance(minutes=37)
            clock.advance(days=1)
    finally:
        store.close()
    return held


def test_replaying_a_varied_log_with_unchanged_rules_changes_nothing(db_url, tmp_path):
    pack = _write_pack(tmp_path)
    held = _log_population(db_url, pack)
    # the population exercised every kind of store hold, and the ranking's own holds
    assert {"goodwill_cap", "suppressed", "over_budget", "needs_approval", "exclusive_group"} <= set(held), held
    store = open_store(db_url, policy=POLICY)
    try:
        decisions = list(iter_decisions(store, tenant="acme"))
        kinds = Counter(h.reason for d in decisions for h in store_holds(d))
        assert {"goodwill_cap", "suppressed", "over_budget", "abuse_review"} <= set(kinds), kinds
        # the bug's shape: a goodwill-capped credit whose group went to the apology actually given
        displaced = [d for d in decisions if "apology_note" in d.gestures
                     and any(h.gesture_id == "credit" and h.reason == "goodwill_cap" for h in store_holds(d))]
        assert displaced
        t = replay_decisions(iter(decisions), RuleSet.of([pack], autoload=False))
    finally:
        store.close()
    assert t.invalid == [] and t.no_context == 0
    assert (t.decisions, t.replayed) == (60, 60)
    assert (t.changed, t.reordered, t.gained, t.lost) == (0, 0, {}, {})
    assert t.cents_before == t.cents_after


def test_a_storeless_replay_would_have_reported_the_held_gesture(db_url, tmp_path):
    """What the replay guards against: without the logged holds, the capped credit wins the group."""
    pack = _write_pack(tmp_path)
    _log_population(db_url, pack)
    rec = Recommender([pack], autoload=False)
    store = open_store(db_url, policy=POLICY)
    try:
        d = next(d for d in iter_decisions(store, tenant="acme") if "apology_note" in d.gestures
                 and any(h.reason == "goodwill_cap" for h in store_holds(d)))
    finally:
        store.close()
    bare = rec.recommend(replay_context(d))
    assert "credit" in bare.gesture_ids() and "apology_note" not in bare.gesture_ids()
    replayed = rec.recommend(replay_context(d), store=ReplayMemory(d))
    assert set(replayed.gesture_ids()) == set(d.gestures)
    assert {w.gesture_id: w.reason for w in replayed.withheld}["credit"] == "goodwill_cap"


def test_holds_of_logs_written_before_held_entries_named_their_source():
    from datetime import date
    from types import SimpleNamespace

    held = [
        {"gesture_id": "credit", "reason": "goodwill_cap", "detail": "goodwill cap: ...", "available_on": "2025-07-01"},
        {"gesture_id": "tip", "reason": "suppressed", "detail": "contact policy (freebie): ..."},
        {"gesture_id": "loaner", "reason": "over_budget",
         "detail": "tenant daily budget for 2025-06-01: 40.00 of 40.00 spent, this costs 45.00"},
        {"gesture_id": "gift", "reason": "over_budget", "detail": "costs 45.00; 15.00 of the 15.00 budget is left"},
        {"gesture_id": "waive", "reason": "needs_approval", "detail": "customer flagged for review: 2 fee_waiver ..."},
        {"gesture_id": "upgrade", "reason": "needs_approval", "detail": "needs super staff authority"},
        {"gesture_id": "apology_note", "reason": "exclusive_group", "detail": "only one gesture of group"},
    ]
    got = {h.gesture_id: (h.reason, h.available_on) for h in store_holds(SimpleNamespace(held=held))}
    assert got == {"credit": ("goodwill_cap", date(2025, 7, 1)), "tip": ("suppressed", None),
                   "loaner": ("over_budget", None), "waive": ("abuse_review", None)}
    tagged = [dict(h, source="store" if h["gesture_id"] == "gift" else "recommender") for h in held]
    assert [h.gesture_id for h in store_holds(SimpleNamespace(held=tagged))] == ["gift"]


def test_the_issue_reproducer_through_the_cli_reports_no_change(tmp_path):
    """``recommender recommend ctx.json --url ...`` then ``backtest --decisions --max-change 0``."""
    pack = _write_pack(tmp_path)
    policy = tmp_path / "policy.json"
    policy.write_text(POLICY.model_dump_json())
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps({"customer": {"id": "c-9", "tenure_years": 0.15, "lifetime_value": 31.65},
                               "interaction": {"issue": "billing_error", "cost": 239.29, "sentiment": -0.76},
                               "staff": {"level": "super"}, "business": {"id": "acme"}}))
    url = f"sqlite:///{tmp_path / 'r.db'}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "RECOMMENDER_POLICY": str(policy)})

    given = cli("recommend", str(ctx), "--url", url, "--rules", str(pack), "--json")
    assert given.returncode == 0, given.stderr
    result = json.loads(given.stdout)
    assert [r["gesture_id"] for r in result["recommendations"]] == ["apology_note"]
    assert [(w["gesture_id"], w["reason"]) for w in result["withheld"]] == [("credit", "goodwill_cap")]
    replay = cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(pack),
                 "--max-change", "0")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "changed: 0 of 1 decisions (0.0%)" in replay.stdout


def test_a_decision_of_another_day_is_replayed_for_its_own_day(tmp_path):
    from datetime import date, datetime, timezone
    from types import SimpleNamespace

    when = datetime(2025, 6, 1, 23, 30, tzinfo=timezone.utc)
    d = SimpleNamespace(context={"interaction": {"issue": "x"}}, occurred_at=when, created_at=when, receipt_id="",
                        context_hash="", ruleset_version="")
    assert replay_context(d, today=date(2025, 6, 1)) == {"interaction": {"issue": "x"}}  # as logged
    later = replay_context(d, today=date(2025, 9, 1))
    assert later == {"interaction": {"issue": "x", "occurred_at": when.isoformat()}}
    given = SimpleNamespace(**{**vars(d), "context": {"interaction": {"issue": "x", "occurred_at": "2025-01-01"}}})
    assert replay_context(given, today=date(2025, 9, 1)) == given.context  # the caller's date stays
    assert replay_context(SimpleNamespace(context=None)) is None
