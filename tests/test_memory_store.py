"""The memory store: migrations, the decision log, idempotent outcomes, enrichment, profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from memory_fixtures import (  # noqa: F401  (fixtures)
    NOW,
    clock,
    ctx,
    db_url,
    make_store,
    pg_url,
    rec,
    sqlite_url,
    store,
)
from sqlalchemy import func, inspect, select

from recommender import Recommender, parse_context
from recommender.memory import (
    DuplicateOutcome,
    GestureNotInDecision,
    IdempotencyConflict,
    InvalidStoreInput,
    SchemaOutOfDate,
    Store,
    TenantMismatch,
    UnknownDecision,
    open_store,
)
from recommender.memory.db import head_revision
from recommender.memory.models import Base, Outcome

TABLES = {"decisions", "decision_gestures", "decision_rules", "outcomes", "customers", "visits", "budget_usage",
          "api_keys", "alembic_version"}


# -- migrations ------------------------------------------------------------------------


def test_migrations_run_from_empty(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    if db_url.startswith("postgresql"):
        with pytest.raises(SchemaOutOfDate, match="recommender db upgrade"):
            open_store(db_url)  # PostgreSQL is never migrated behind the operator's back
    store = open_store(db_url, upgrade=True)
    try:
        assert store.schema_revision() == head_revision()
        assert TABLES <= set(inspect(store.engine).get_table_names())
        # the migrations build exactly the schema the models declare
        with store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diffs == []
        # reversible, and re-runnable from empty
        from alembic import command

        from recommender.memory.db import _alembic_config

        cfg = _alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert store.upgrade() == head_revision()
        assert store.upgrade() == head_revision()  # idempotent
    finally:
        store.close()
    again = open_store(db_url)  # migrated now: opens without upgrading
    again.close()


def test_sqlite_is_durable_by_configuration(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_default_url_is_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from recommender.memory import default_url

    monkeypatch.delenv("RECOMMENDER_DB_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_url() == f"sqlite:///{tmp_path / 'data' / 'recommender' / 'recommender.db'}"
    store = open_store()
    try:
        assert (tmp_path / "data" / "recommender" / "recommender.db").is_file()
    finally:
        store.close()
    monkeypatch.setenv("RECOMMENDER_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert default_url().endswith("env.db")


def test_urls_are_normalised_and_masked() -> None:
    from recommender.memory.db import mask_url, normalize_url

    assert normalize_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+pysqlite"
    assert mask_url("postgresql+psycopg://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    with pytest.raises(InvalidStoreInput, match="unsupported database URL 'mysql://u:\\*\\*\\*@h/db'"):
        normalize_url("mysql://u:pw@h/db")


# -- the decision log --------------------------------------------------------------------


def test_recommend_with_a_store_logs_an_auditable_decision(store: Store, rec: Recommender) -> None:
    result = rec.recommend(ctx(business={"store_id": "s-1"}, staff={"level": "genuine", "id": "amy"}), store=store)
    assert result.decision_id
    d = store.get_decision(result.decision_id)
    assert (d.tenant, d.customer_id, d.store_id, d.staff_id, d.issue) == ("acme", "c-1", "s-1", "amy", "flat_tire")
    assert d.context_hash == result.receipt.context_hash and d.ruleset_version == result.ruleset_version
    assert d.created_at == NOW
    assert [g["gesture_id"] for g in d.recommendations] == result.gesture_ids()
    by_id = {g.gesture_id: g for g in d.gestures}
    assert by_id["waive_fee"].cost == 25 and by_id["waive_fee"].rules == ["flat-waive"]
    assert by_id["tire_check"].category == "freebie" and by_id["tire_check"].score > 0
    view = store.customer("acme", "c-1")
    assert [(v.issue, v.decision_id) for v in view.visits] == [("flat_tire", result.decision_id)]
    # an explanation is a what-if: not logged
    assert rec.explain(ctx(), store=store).decision_id is None
    assert len(store.customer("acme", "c-1").visits) == 1


def test_recommend_without_a_store_imports_no_sql() -> None:
    import subprocess
    import sys

    code = ("import sys; from recommender import Recommender; "
            "Recommender([], autoload=False).recommend({'interaction': {'issue': 'x'}}); "
            "print('sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# -- outcomes --------------------------------------------------------------------------


def _outcome_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Outcome.__table__)).scalar_one()


def test_outcomes_are_idempotent(store: Store, rec: Recommender) -> None:
    d = rec.recommend(ctx(), store=store).decision_id
    first = store.record_outcome(d, "waive_fee", "delivered", "pos-1", note="thanks", tenant="acme")
    again = store.record_outcome(d, "waive_fee", "delivered", "pos-1", note="thanks", tenant="acme")
    assert not first.replayed and again.replayed and again.id == first.id
    assert first.cost == 25 and first.customer_id == "c-1" and first.category == "fee_waiver"
    assert _outcome_rows(store) == 1
    assert [(b.scope, b.spent) for b in store.budget_usage("acme")] == [("tenant", 25.0)]  # counted once

    with pytest.raises(IdempotencyConflict,
                       match="'pos-1' was already used.*outcome: stored 'delivered', now 'accepted'"):
        store.record_outcome(d, "waive_fee", "accepted", "pos-1", note="thanks")
    with pytest.raises(IdempotencyConflict, match="note"):
        store.record_outcome(d, "waive_fee", "delivered", "pos-1", note="other")
    with pytest.raises(DuplicateOutcome, match="already recorded as delivered \\(idempotency key 'pos-1'\\)"):
        store.record_outcome(d, "waive_fee", "delivered", "pos-2")
    store.record_outcome(d, "waive_fee", "accepted", "pos-3", actual_cost=20)
    assert _outcome_rows(store) == 2


def test_outcome_errors_name_the_problem(store: Store, rec: Recommender) -> None:
    result = rec.recommend(ctx(), store=store)
    d = result.decision_id
    with pytest.raises(UnknownDecision, match="unknown decision 'nope'"):
        store.record_outcome("nope", "waive_fee", "offered", "k1")
    with pytest.raises(GestureNotInDecision, match=f"'oil_tip' was not recommended in decision {d} "
                                                   "\\(recommended: .*waive_fee"):
        store.record_outcome(d, "oil_tip", "offered", "k1")
    with pytest.raises(TenantMismatch, match=f"decision {d} does not belong to tenant 'other'"):
        store.record_outcome(d, "waive_fee", "offered", "k1", tenant="other")
    with pytest.raises(InvalidStoreInput, match="invalid outcome 'given'"):
        store.record_outcome(d, "waive_fee", "given", "k1")
    with pytest.raises(InvalidStoreInput, match="idempotency key"):
        store.record_outcome(d, "waive_fee", "offered", "")
    with pytest.raises(InvalidStoreInput, match="actual cost"):
        store.record_outcome(d, "waive_fee", "delivered", "k1", actual_cost=-1)
    assert _outcome_rows(store) == 0


def test_core_record_outcome_goes_through_the_store(store: Store, rec: Recommender) -> None:
    if not hasattr(rec, "record_outcome"):
        pytest.skip("Recommender.record_outcome not available")
    d = rec.recommend(ctx(), store=store).decision_id
    stored = rec.record_outcome(store, d, "apology", "offered", idempotency_key="x1", tenant="acme")
    assert stored.customer_id == "c-1" and stored.outcome == "offered"


# -- enrichment --------------------------------------------------------------------------


def test_enrichment_fills_history_and_detects_repeat_issues(make_store, clock, rec: Recommender) -> None:
    store = make_store()
    assert store.enrich(parse_context(ctx(customer=None))) == {}
    first = rec.recommend(ctx(), store=store)
    assert "comeback_credit" not in first.gesture_ids()
    store.record_outcome(first.decision_id, "tire_check", "delivered", "k-tire")
    store.update_customer("acme", "c-1", preferences={"contact": "sms"}, interests=["classic cars"])

    clock.advance(days=10)
    oil = rec.explain(ctx(issue="oil_change"), store=store)
    enriched = store.enrich(parse_context(ctx(issue="oil_change")))
    assert enriched["customer"]["last_visit_days"] == 10.0
    assert enriched["customer"]["prior_issues"] == ["flat_tire"]
    assert enriched["customer"]["recent_gestures"] == ["tire_check"]
    assert enriched["customer"]["preferences"] == {"contact": "sms"}
    assert enriched["customer"]["interests"] == ["classic cars"]
    assert enriched["interaction"]["repeat_issue"] is False
    assert oil.gesture_ids() == ["oil_tip"]

    clock.advance(days=10)  # the flat tire is back 20 days later: a repeat, found automatically
    again = rec.explain(ctx(), store=store)
    assert "comeback_credit" in again.gesture_ids()
    assert any(r.rule_id == "came-back" for r in next(r for r in again.recommendations
                                                      if r.gesture_id == "comeback_credit").rules)
    # what the caller states wins over memory
    told = rec.explain(ctx(interaction={"repeat_issue": False}), store=store)
    assert "comeback_credit" not in told.gesture_ids()

    clock.advance(days=31)  # more than 30 days after the last flat tire: not a repeat
    assert "comeback_credit" not in rec.explain(ctx(), store=store).gesture_ids()


def test_repeat_window_is_configurable_and_occurred_at_is_the_reference(make_store, clock, rec) -> None:
    from recommender.memory import Policy

    store = make_store(policy=Policy(repeat_issue_days=7))
    rec.recommend(ctx(interaction={"occurred_at": (NOW - timedelta(days=10)).isoformat()}), store=store)
    assert store.enrich(parse_context(ctx()))["interaction"]["repeat_issue"] is False
    ref = parse_context(ctx(interaction={"occurred_at": (NOW - timedelta(days=5)).isoformat()}))
    assert store.enrich(ref)["interaction"]["repeat_issue"] is True
    assert store.enrich(ref)["customer"]["last_visit_days"] == 5.0


def test_a_retried_call_for_the_same_interaction_is_one_visit(store: Store, rec: Recommender) -> None:
    c = ctx(interaction={"occurred_at": NOW.isoformat()})
    rec.recommend(c, store=store)
    second = rec.recommend(c, store=store)
    assert "comeback_credit" not in second.gesture_ids()
    assert len(store.customer("acme", "c-1").visits) == 1


def test_tenants_never_see_each_other(store: Store, rec: Recommender) -> None:
    rec.recommend(ctx(tenant="acme"), store=store)
    store.update_customer("acme", "c-1", interests=["x"])
    assert store.enrich(parse_context(ctx(tenant="other"))) == {"interaction": {"repeat_issue": False}}
    assert not store.customer("other", "c-1").known


# -- customer profiles -------------------------------------------------------------------


def test_customer_profiles(store: Store) -> None:
    assert not store.customer("acme", "c-9").known
    view = store.update_customer("acme", "c-9", preferences={"seat": "window", "vip": True, "kids": 2},
                                 interests=["golf", "tennis"], note="prefers mornings")
    assert view.known and view.preferences == {"seat": "window", "vip": True, "kids": 2}
    view = store.update_customer("acme", "c-9", preferences={"seat": None}, interests=["golf", "chess"],
                                 remove_interests=["tennis"], note="second note")
    assert view.preferences == {"vip": True, "kids": 2}
    assert view.interests == ["golf", "chess"]
    assert [n.text for n in view.notes] == ["prefers mornings", "second note"]
    with pytest.raises(InvalidStoreInput, match="invalid preference key 'bad key'"):
        store.update_customer("acme", "c-9", preferences={"bad key": 1})
    with pytest.raises(InvalidStoreInput, match="invalid tenant"):
        store.customer("no spaces allowed", "c-9")
    assert store.forget_customer("acme", "c-9") and not store.customer("acme", "c-9").known


# -- retention -------------------------------------------------------------------------


def test_prune_deletes_history_before_the_cutoff_and_never_inside_the_look_back(make_store, clock,
                                                                                rec: Recommender) -> None:
    store = make_store()
    old = rec.recommend(ctx(), store=store)
    store.record_outcome(old.decision_id, "waive_fee", "delivered", "k-old")
    other = rec.recommend(ctx(tenant="other"), store=store)
    clock.advance(days=500)
    new = rec.recommend(ctx(), store=store)
    store.record_outcome(new.decision_id, "waive_fee", "delivered", "k-new")
    look_back = store.policy.lookback_days()

    with pytest.raises(InvalidStoreInput, match="look-back"):
        store.prune(clock() - timedelta(days=look_back - 1))
    with pytest.raises(InvalidStoreInput, match="invalid tenant"):
        store.prune(NOW, tenant="no spaces")
    cutoff = clock() - timedelta(days=look_back + 1)
    dry = store.prune(cutoff, tenant="acme", dry_run=True)
    assert (dry.decisions, dry.outcomes, dry.visits, dry.budget_days) == (1, 1, 1, 1)
    assert store.get_decision(old.decision_id).outcomes  # a dry run deletes nothing
    done = store.prune(cutoff, tenant="acme")
    assert done.model_dump(exclude={"dry_run"}) == dry.model_dump(exclude={"dry_run"})
    with pytest.raises(UnknownDecision):
        store.get_decision(old.decision_id)
    kept = store.get_decision(new.decision_id)
    assert [o.idempotency_key for o in kept.outcomes] == ["k-new"]
    assert store.get_decision(other.decision_id).tenant == "other"  # another tenant: untouched
    assert [v.decision_id for v in store.customer("acme", "c-1").visits] == [new.decision_id]
    assert store.prune(cutoff).decisions == 1 and store.prune(cutoff).decisions == 0  # then everyone's, once
    again = store.record_outcome(new.decision_id, "waive_fee", "delivered", "k-new")  # recent history intact
    assert again.replayed
