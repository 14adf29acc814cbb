"""The memory CLI (db, outcome, customer, report, keys) and a database that is down."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from memory_fixtures import ctx, db_url, pg_url, rec  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli import memory_cmd
from recommender.memory import StoreUnavailable, open_store

DOWN = "postgresql://postgres:hunter2@127.0.0.1:1/test"


@pytest.fixture
def cli() -> Any:
    app = typer.Typer()
    memory_cmd.register(app)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run


def _one_error_line(result: Any) -> str:
    text = result.output.strip()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: ")
    return lines[0]


def test_db_upgrade_and_status(cli, db_url: str) -> None:
    if db_url.startswith("postgresql"):
        status = cli("db", "status", "--url", db_url)
        assert status.exit_code == 1
        assert "has no schema" in status.output and "recommender db upgrade" in status.output
    result = cli("db", "upgrade", "--url", db_url)
    assert result.exit_code == 0, result.output
    from recommender.memory.db import head_revision

    assert f"is at schema revision {head_revision()} (head)" in result.output
    assert cli("db", "upgrade", "--url", db_url).exit_code == 0  # idempotent
    assert cli("db", "status", "--url", db_url).exit_code == 0


def test_outcome_command(cli, db_url: str, rec: Recommender, tmp_path: Path) -> None:
    store = open_store(db_url, upgrade=True)
    try:
        d = rec.recommend(ctx(), store=store).decision_id
        d2 = rec.recommend(ctx(customer="c-2"), store=store).decision_id
    finally:
        store.close()
    ok = cli("outcome", d, "waive_fee", "delivered", "--key", "k1", "--note", "happy", "--url", db_url,
             "--tenant", "acme")
    assert ok.exit_code == 0, ok.output
    assert f"recorded delivered of waive_fee for decision {d}, cost 25.00" in ok.output
    again = cli("outcome", d, "waive_fee", "delivered", "--key", "k1", "--note", "happy", "--url", db_url, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["replayed"] is True

    for args, code, message in [
        (["nope", "waive_fee", "offered", "--key", "k2"], 2, "error: unknown decision 'nope'"),
        ([d, "oil_tip", "offered", "--key", "k2"], 2, "'oil_tip' was not recommended"),
        ([d, "waive_fee", "accepted", "--key", "k1"], 2, "idempotency key 'k1' was already used"),
        ([d, "waive_fee", "offered", "--key", "k2", "--tenant", "other"], 2, "does not belong to tenant 'other'"),
    ]:
        result = cli("outcome", *args, "--url", db_url)
        assert result.exit_code == code, result.output
        assert message in _one_error_line(result)

    usage = cli("outcome", d, "waive_fee", "given", "--key", "k3", "--url", db_url)
    assert usage.exit_code == 2 and "given" in usage.output
    keyless = cli("outcome", d, "waive_fee", "offered", "--url", db_url, "--json")  # the key is what it records
    assert keyless.exit_code == 0 and json.loads(keyless.output)["idempotency_key"] == f"auto:{d}:waive_fee:offered"

    policy = tmp_path / "policy.yaml"
    policy.write_text("budgets:\n  acme: {daily: 30}\n")
    over = cli("outcome", d2, "waive_fee", "delivered", "--key", "k9", "--url", db_url, "--policy", str(policy))
    assert over.exit_code == 1
    assert "would overspend the tenant daily budget" in _one_error_line(over)


def test_decision_show(cli, db_url: str, rec: Recommender) -> None:
    store = open_store(db_url, upgrade=True)
    try:
        result = rec.recommend(ctx(), store=store)
        store.record_outcome(result.decision_id, "waive_fee", "delivered", "k1", note="happy")
    finally:
        store.close()
    d = result.decision_id
    shown = cli("decision", "show", d, "--url", db_url, "--json")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["receipt_id"] == result.receipt.id and record["ruleset_version"] == result.ruleset_version
    assert [g["gesture_id"] for g in record["gestures"]] == result.gesture_ids()
    assert [(o["gesture_id"], o["outcome"], o["note"]) for o in record["outcomes"]] == [("waive_fee", "delivered", "happy")]
    table = cli("decision", "show", d, "--url", db_url, "--tenant", "acme")
    assert table.exit_code == 0, table.output
    assert d in table.output and "waive_fee" in table.output and "delivered" in table.output
    assert result.receipt.id in table.output
    for args, message in [(["nope"], "unknown decision 'nope'"), ([d, "--tenant", "other"], "does not belong to tenant 'other'")]:
        bad = cli("decision", "show", *args, "--url", db_url)
        assert bad.exit_code == 2 and message in _one_error_line(bad)


def test_db_prune(cli, db_url: str, rec: Recommender) -> None:
    from memory_fixtures import FakeClock, NOW

    store = open_store(db_url, upgrade=True, clock=FakeClock(NOW))  # logged long ago
    try:
        d = rec.recommend(ctx(), store=store).decision_id
    finally:
        store.close()
    early = cli("db", "prune", "--before", "30d", "--url", db_url)
    assert early.exit_code == 2 and "look-back" in _one_error_line(early)
    bad = cli("db", "prune", "--before", "last year", "--url", db_url)
    assert bad.exit_code == 2 and "--before" in _one_error_line(bad)
    dry = cli("db", "prune", "--before", "400d", "--tenant", "acme", "--url", db_url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 decision(s), 0 outcome(s), 1 visit(s)" in dry.output and "of tenant acme" in dry.output
    assert cli("decision", "show", d, "--url", db_url).exit_code == 0
    done = cli("db", "prune", "--before", "400d", "--url", db_url, "--json")
    assert done.exit_code == 0 and json.loads(done.output)["decisions"] == 1
    gone = cli("decision", "show", d, "--url", db_url)
    assert gone.exit_code == 2 and "unknown decision" in _one_error_line(gone)


def test_customer_commands(cli, db_url: str, rec: Recommender) -> None:
    assert cli("db", "upgrade", "--url", db_url).exit_code == 0
    store = open_store(db_url)
    try:
        d = rec.recommend(ctx(), store=store).decision_id
        store.record_outcome(d, "tire_check", "offered", "t1")
    finally:
        store.close()
    result = cli("customer", "set", "c-1", "--tenant", "acme", "--url", db_url, "--pref", "contact=sms",
                 "--pref", "vip=true", "--pref", "kids=2", "--interest", "golf", "--note", "likes mornings")
    assert result.exit_code == 0, result.output
    shown = cli("customer", "show", "c-1", "--tenant", "acme", "--url", db_url, "--json")
    view = json.loads(shown.output)
    assert view["preferences"] == {"contact": "sms", "vip": True, "kids": 2}
    assert view["interests"] == ["golf"] and view["notes"][0]["text"] == "likes mornings"
    assert view["visits"][0]["issue"] == "flat_tire" and view["gestures"][0]["gesture_id"] == "tire_check"
    table = cli("customer", "show", "c-1", "--tenant", "acme", "--url", db_url)
    assert "Recent visits" in table.output and "tire_check" in table.output and "contact=sms" in table.output
    assert cli("customer", "set", "c-1", "--url", db_url).exit_code == 2  # nothing to change
    bad = cli("customer", "set", "c-1", "--url", db_url, "--pref", "novalue")
    assert bad.exit_code == 2 and "expected KEY=VALUE" in _one_error_line(bad)
    bad_key = cli("customer", "set", "c-1", "--url", db_url, "--pref", "bad key=1")
    assert bad_key.exit_code == 2 and "invalid preference key" in _one_error_line(bad_key)


def test_report_command(cli, db_url: str, rec: Recommender) -> None:
    store = open_store(db_url, upgrade=True)
    try:
        d = rec.recommend(ctx(), store=store).decision_id
        store.record_outcome(d, "waive_fee", "delivered", "r1")
    finally:
        store.close()
    result = cli("report", "--url", db_url, "--tenant", "acme", "--since", "1d", "--until", "2999-01-01", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decisions"] == 1
    assert {r["key"]: r["delivered"] for r in data["gestures"]}["waive_fee"] == 1
    table = cli("report", "--url", db_url, "--tenant", "acme", "--until", "2999-01-01", "--since", "2000-01-01")
    assert "Per gesture" in table.output and "Per rule" in table.output and "flat-waive" in table.output
    bad = cli("report", "--url", db_url, "--since", "last tuesday")
    assert bad.exit_code == 2 and "--since" in _one_error_line(bad)


def test_keys_commands(cli, db_url: str) -> None:
    assert cli("db", "upgrade", "--url", db_url).exit_code == 0
    created = cli("keys", "create", "--tenant", "acme", "--scope", "recommend", "--scope", "outcome",
                  "--name", "till 3", "--url", db_url, "--json")
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["key"].startswith(f"rk_{data['id']}_") and data["scopes"] == ["recommend", "outcome"]
    listed = cli("keys", "list", "--tenant", "acme", "--url", db_url, "--json")
    assert [k["id"] for k in json.loads(listed.output)] == [data["id"]]
    assert data["key"] not in listed.output
    assert cli("keys", "revoke", data["id"], "--url", db_url).exit_code == 0
    again = cli("keys", "revoke", data["id"], "--url", db_url)
    assert again.exit_code == 2 and "no active key" in _one_error_line(again)
    bad = cli("keys", "create", "--tenant", "acme", "--scope", "write", "--url", db_url)
    assert bad.exit_code == 2


# -- a database that is down --------------------------------------------------------------


def test_a_database_that_is_down_gives_one_clear_line(cli) -> None:
    for args in (["report"], ["db", "upgrade"], ["customer", "show", "c-1"], ["keys", "list"],
                 ["outcome", "d", "g", "offered", "--key", "k"]):
        result = cli(*args, "--url", DOWN)
        assert result.exit_code == 1, result.output
        line = _one_error_line(result)
        assert "database postgresql://postgres:***@127.0.0.1:1/test is unavailable" in line
        assert "hunter2" not in result.output


def test_the_installed_command_reports_a_down_database_without_traceback() -> None:
    out = subprocess.run([sys.executable, "-c", "from recommender.cli import main; main()", "report", "--url", DOWN],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "postgresql://postgres:***@127.0.0.1:1/test is unavailable" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout and "hunter2" not in out.stderr + out.stdout


def test_recommend_keeps_working_when_the_database_is_down(rec: Recommender, tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"postgresql://postgres:\*\*\*@127.0.0.1:1/test is unavailable"):
        open_store(DOWN)
    assert rec.recommend(ctx()).gesture_ids()  # no store: no database needed

    # a store whose database goes away: a clear error, and recommend() without it still works
    folder = tmp_path / "gone"
    store = open_store(f"sqlite:///{folder / 'm.db'}")
    assert rec.recommend(ctx(), store=store).decision_id
    store.engine.dispose()
    shutil.rmtree(folder)
    folder.write_text("not a folder any more")
    with pytest.raises(StoreUnavailable, match=f"sqlite:///{folder}/m.db is unavailable"):
        rec.recommend(ctx(), store=store)
    assert rec.recommend(ctx()).gesture_ids()
    store.close()
