"""``backtest --decisions``: the decision log of a real SQLite store replayed through new rules."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

pytest.importorskip("sqlalchemy")

from recommender import Recommender  # noqa: E402
from recommender.backtest.decisions import DecisionLogError, iter_decisions  # noqa: E402
from recommender.backtest.run import RuleSet, replay_decisions  # noqa: E402

from test_backtest_helpers import CONTEXTS, run_cli, write_packs  # noqa: E402

memory = pytest.importorskip("recommender.memory")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def _contexts() -> list[dict]:
    out = []
    for i, c in enumerate(CONTEXTS):
        c = json.loads(json.dumps(c))
        c.setdefault("customer", {}).setdefault("id", f"c{i + 1}")
        c["business"] = {"id": "acme"}
        out.append(c)
    # c3 has a small lifetime value: the store's goodwill cap holds its credit and waiver
    out[2]["customer"]["lifetime_value"] = 100
    return out


@pytest.fixture
def logged(tmp_path):
    a, b = write_packs(tmp_path)
    db = tmp_path / "mem.db"
    url = f"sqlite:///{db}"
    store = memory.open_store(url, clock=lambda: NOW)
    rec = Recommender([a], autoload=False)
    results = [rec.recommend(c, store=store) for c in _contexts()]
    other = dict(_contexts()[0], business={"id": "other"})
    rec.recommend(other, store=store)
    store.close()
    return tmp_path, url, a, b, results


def test_replay_with_the_same_rules_changes_nothing(logged):
    _, url, a, _, results = logged
    held = {w.gesture_id: w.reason for w in results[2].withheld}
    assert held == {"credit": "goodwill_cap", "waive": "goodwill_cap"}  # policy, not rules
    store = memory.open_store(url)
    try:
        decisions = list(iter_decisions(store, tenant="acme"))
        assert sorted(d.customer_id for d in decisions) == ["c1", "c2", "c3", "c4", "c5", "c6"]
        assert all(d.context is not None for d in decisions)
        paged = [d.id for d in iter_decisions(store, page=2)]  # keyset pages of 2
        assert len(paged) == len(set(paged)) == 7
        t = replay_decisions(iter_decisions(store, tenant="acme"), RuleSet.of([a], autoload=False))
    finally:
        store.close()
    assert (t.decisions, t.replayed, t.changed) == (6, 6, 0)
    assert t.cents_before == t.cents_after == 2000 + 10 + 10  # waive 20.00 for c1, tip 0.10 for c3 and c4
    p = run_cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(a))
    assert p.returncode == 0, p.stderr
    assert "changed: 0 of 6 decisions (0.0%) within the limit of 5.0%" in p.stdout


def test_threshold_exit_codes_and_customers(logged):
    _, url, _, b, _ = logged
    p = run_cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(b), "--json")
    assert p.returncode == 1, p.stderr  # 4 of 6 changed > 5%
    rep = json.loads(p.stdout)
    assert (rep["decisions"], rep["replayed"], rep["changed"]) == (6, 6, 4)
    assert rep["share_changed"] == round(4 / 6, 6) and rep["exceeded"] is True
    losing = {(c["customer_id"], c["gesture_id"]) for c in rep["customers_losing"]}
    gaining = {(c["customer_id"], c["gesture_id"]) for c in rep["customers_gaining"]}
    assert losing == {("c2", "apology"), ("c3", "tip"), ("c4", "tip")}
    assert gaining == {("c4", "sorry_note"), ("c5", "credit")}
    assert (rep["cost_before"], rep["cost_after"], rep["cost_delta"]) == (20.20, 31.35, 11.15)
    assert "exceeds --max-change" in p.stderr

    p = run_cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(b), "--max-change", "0.7")
    assert p.returncode == 0, p.stderr
    assert "customers who would lose a gesture (3)" in p.stdout and "c5  credit" in p.stdout
    p = run_cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(b), "--max-change", "0.6")
    assert p.returncode == 1
    # every tenant: the 'other' decision does not change (it is c1's context again)
    p = run_cli("backtest", "--decisions", "--url", url, "--rules", str(b), "--max-change", "0.6", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["decisions"] == 7  # 4 of 7
    p = run_cli("backtest", "--decisions", "--url", url, "--rules", str(b), "--max-change", "0.55")
    assert p.returncode == 1


def test_since_until_and_empty_selection(logged):
    _, url, _, b, _ = logged
    p = run_cli("backtest", "--decisions", "--url", url, "--rules", str(b), "--since", "2025-06-02")
    assert p.returncode == 0 and "nothing to replay" in p.stdout
    p = run_cli("backtest", "--decisions", "--url", url, "--rules", str(b), "--until", "2025-05-01", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["decisions"] == 0


def test_usage_errors(logged, tmp_path):
    _, url, _, b, _ = logged
    p = run_cli("backtest", "--decisions", "--url", f"sqlite:///{tmp_path / 'nope.db'}", "--rules", str(b))
    assert p.returncode == 2 and "no database at" in p.stderr
    assert not (tmp_path / "nope.db").exists()
    p = run_cli("backtest", "some.jsonl", "--decisions", "--url", url)
    assert p.returncode == 2 and "not both" in p.stderr
    p = run_cli("backtest", "--decisions", "--url", url, "--compare", str(b))
    assert p.returncode == 2 and "--compare does not apply" in p.stderr
    p = run_cli("backtest", "--decisions", "--url", url, "--since", "last week")
    assert p.returncode == 2 and "--since" in p.stderr


def test_decisions_without_context(tmp_path):
    """A log that does not keep contexts cannot be replayed; decisions without one are counted."""
    from types import SimpleNamespace

    from sqlalchemy import create_engine, text

    from recommender.backtest.decisions import StoredDecision

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # a decision log from before contexts were kept
        conn.execute(text("CREATE TABLE decisions (id VARCHAR PRIMARY KEY, created_at DATETIME, tenant VARCHAR, "
                          "customer_id VARCHAR, ruleset_version VARCHAR, recommendations JSON, held JSON)"))
    old = SimpleNamespace(engine=engine, url="sqlite:///old.db")
    with pytest.raises(DecisionLogError, match="does not keep the contexts"):
        list(iter_decisions(old))
    engine.dispose()

    a, _ = write_packs(tmp_path)
    decisions = [StoredDecision(id="d1", customer_id="c1", context=None, gestures=["waive"], cost_total=20.0),
                 StoredDecision(id="d2", customer_id="c2", context=_contexts()[0], gestures=["waive"],
                                cost_total=20.0),
                 StoredDecision(id="d3", customer_id="c3", context={"interaction": {"issue": "bad issue!"}},
                                gestures=[], cost_total=0.0)]
    t = replay_decisions(decisions, RuleSet.of([a], autoload=False))
    assert (t.decisions, t.replayed, t.no_context, t.changed) == (3, 1, 1, 0)
    assert [d for d, _ in t.invalid] == ["d3"] and "interaction.issue" in t.invalid[0][1]


def test_replay_html(logged):
    tmp, url, _, b, _ = logged
    out = tmp / "replay.html"
    p = run_cli("backtest", "--decisions", "--url", url, "--tenant", "acme", "--rules", str(b), "--max-change", "1",
                "--html", str(out))
    assert p.returncode == 0, p.stderr
    html = out.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "Customers who would lose a gesture (3)" in html and "c5" in html
