"""``recommender backtest``: run past interactions (or the decision log) through rule sets.

Exit codes: 0 done; 1 ``--decisions`` changed more than ``--max-change``, a ``--population``
property fails (or the engine failed: a Dask scheduler unreachable, a worker error); 2 usage
or input errors (unknown or unreadable file, a mapping that names a column the CSV lacks,
invalid rule packs, a file with no usable row). Bad rows are reported one per line on stderr and skipped; they never
change the exit code while at least one row is usable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import RecommenderError
from .app import err, fail, out, parse_when

if TYPE_CHECKING:
    from ..backtest.report import BacktestReport, ReplayReport, RunReport

MAX_BAD_SHOWN = 100
TOP = 20


# -- helpers --------------------------------------------------------------------------


def _money(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _signed(v: float, money: bool = False) -> str:
    return f"{v:+,.2f}" if money else f"{int(v):+,}"


class _Progress:
    """A rich progress bar on stderr (silent with --no-progress)."""

    def __init__(self, enabled: bool, description: str, total: int | None) -> None:
        self.bar: Any = None
        self.task: Any = None
        if not enabled or not err.is_terminal:  # no bar in logs and pipes
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns: list[Any] = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        else:
            columns += [TextColumn("{task.completed:,}")]
        columns.append(TimeElapsedColumn())
        self.bar = Progress(*columns, console=err.console(), transient=True)
        self.task = self.bar.add_task(description, total=total or None)

    def __enter__(self) -> Callable[[int], None]:
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _write_html(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    err.print(f"wrote {escape(str(path))}", markup=True)


# -- printing -------------------------------------------------------------------------


def _print_run(run: "RunReport", top: int) -> None:
    table = Table(title=f"Gestures · {escape(run.label)}", title_justify="left")
    for col in ("gesture", "tier", "fires", "share", "total cost", "avg cost", "withheld"):
        table.add_column(col, justify="left" if col in ("gesture", "tier", "withheld") else "right")
    for g in run.gestures[:top]:
        held = ", ".join(f"{k} {v:,}" for k, v in g.held.items())
        table.add_row(escape(g.gesture_id), g.tier, f"{g.fires:,}", _pct(g.share), _money(g.cost_total),
                      _money(g.cost_avg) + (f" ({g.cost_unknown:,} unknown)" if g.cost_unknown else ""),
                      escape(held) or "–")
    out.print(table)
    if len(run.gestures) > top:
        out.print(f"[dim]… {len(run.gestures) - top} more gestures (all in --json / --html)[/dim]")

    tiers = Table(title="Tiers", title_justify="left")
    for col in ("tier", "fires", "rows", "share of rows", "total cost", "avg cost"):
        tiers.add_column(col, justify="left" if col == "tier" else "right")
    for t in run.tiers:
        tiers.add_row(t.tier, f"{t.fires:,}", f"{t.rows:,}", _pct(t.share), _money(t.cost_total), _money(t.cost_avg))
    out.print(tiers)

    rules = Table(title="Rules", title_justify="left")
    for col in ("rule", "fires", "held only", "share", "cost backed"):
        rules.add_column(col, justify="left" if col == "rule" else "right")
    for r in run.rules_fired[:top]:
        rules.add_row(escape(r.rule_id), f"{r.fires:,}", f"{r.held_only:,}", _pct(r.share), _money(r.cost_total))
    out.print(rules)
    if len(run.rules_fired) > top:
        out.print(f"[dim]… {len(run.rules_fired) - top} more rules (all in --json / --html)[/dim]")

    for dim in ("tenure", "channel", "issue"):
        segs = [s for s in run.segments if s.dimension == dim]
        seg = Table(title=f"Segment: {dim}", title_justify="left")
        for col in (dim, "rows", "with gesture", "fires", "cost", "avg cost/row", "negative", "coverage"):
            seg.add_column(col, justify="left" if col == dim else "right")
        for s in segs[:top]:
            seg.add_row(escape(s.value), f"{s.rows:,}", _pct(s.rows_with_gesture / s.rows if s.rows else None),
                        f"{s.fires:,}", _money(s.cost_total), _money(s.cost_avg_per_row), f"{s.negative:,}",
                        _pct(s.coverage))
        out.print(seg)
        if len(segs) > top:
            out.print(f"[dim]… {len(segs) - top} more {dim} values (all in --json / --html)[/dim]")

    cov = run.coverage
    reasons = ", ".join(f"{r.reason} {_pct(r.coverage)} of {r.negative:,}" for r in cov.by_reason)
    out.print(f"[bold]coverage[/bold]: {cov.covered:,} of {cov.negative:,} negative experiences got a recover "
              f"gesture ({_pct(cov.coverage)}); by reason: {reasons}")
    out.print(f"[dim]negative experience: {escape(cov.definition)}[/dim]")
    out.print(f"[bold]total[/bold]: {run.fires:,} gestures on {run.rows_with_gesture:,} of {run.rows:,} rows, "
              f"cost {_money(run.cost_total)} (avg {_money(run.cost_avg_per_row)} per row)"
              + (f", {run.cost_unknown:,} with unknown cost" if run.cost_unknown else ""))
    if run.plugin_warnings:
        for key, n in run.plugin_warnings.items():
            out.print(f"[yellow]plugin warning[/yellow] {escape(key)}: {n:,} row(s)")


def _print_compare(report: "BacktestReport", top: int) -> None:
    c = report.compare
    assert c is not None
    table = Table(title=f"A vs B · A = {escape(c.a)} · B = {escape(c.b)}", title_justify="left")
    for col in ("gesture", "fires A", "fires B", "Δ fires", "cost A", "cost B", "Δ cost", "rows gained", "rows lost"):
        table.add_column(col, justify="left" if col == "gesture" else "right")
    changed = [d for d in c.gestures if d.rows_gained or d.rows_lost or d.fires_delta or d.cost_delta]
    for d in changed[:top]:
        table.add_row(escape(d.gesture_id), f"{d.fires_a:,}", f"{d.fires_b:,}", _signed(d.fires_delta),
                      _money(d.cost_a), _money(d.cost_b), _signed(d.cost_delta, True), f"{d.rows_gained:,}",
                      f"{d.rows_lost:,}")
    if changed:
        out.print(table)
    if len(changed) > top:
        out.print(f"[dim]… {len(changed) - top} more changed gestures (all in --json / --html)[/dim]")
    if len(c.gestures) > len(changed):
        out.print(f"[dim]{len(c.gestures) - len(changed)} gesture(s) fire exactly as before[/dim]")
    out.print(f"[bold]rows changed[/bold]: {c.rows_changed:,} of {c.rows:,} ({_pct(c.share_changed)})")
    out.print(f"[bold]gestures gained[/bold] (only B recommends): {escape(', '.join(c.gestures_gained)) or 'none'}")
    out.print(f"[bold]gestures lost[/bold] (only A recommends): {escape(', '.join(c.gestures_lost)) or 'none'}")
    out.print(f"[bold]total cost[/bold]: A {_money(c.cost_a)} · B {_money(c.cost_b)} · Δ {_signed(c.cost_delta, True)}")
    delta = "–" if c.coverage_delta is None else f"{c.coverage_delta * 100:+.1f} pts"
    out.print(f"[bold]coverage[/bold]: A {_pct(c.coverage_a)} · B {_pct(c.coverage_b)} · Δ {delta}")


def _print_summary(report: "BacktestReport") -> None:
    parts = [f"history {escape(report.history)} ({report.format})", f"{report.rows_read:,} rows read",
             f"{report.rows_ok:,} used", f"{report.rows_skipped:,} skipped"]
    if report.period_start and report.period_end:
        parts.append(f"period {report.period_start:%Y-%m-%d} to {report.period_end:%Y-%m-%d}")
    if report.timing:
        t = report.timing
        rate = f", {t.rows_per_second:,.0f} rows/s" if t.rows_per_second else ""
        parts.append(f"{escape(t.engine)}: {t.seconds:,.1f} s{rate}")
    out.print(" · ".join(parts))


def _report_bad_rows(report: "BacktestReport") -> None:
    if not report.bad_rows:
        return
    for b in report.bad_rows[:MAX_BAD_SHOWN]:
        err.print(f"{report.history}:{b.line}: {b.reason}", markup=False, highlight=False)
    if len(report.bad_rows) > MAX_BAD_SHOWN:
        err.print(f"… and {len(report.bad_rows) - MAX_BAD_SHOWN:,} more bad rows (all listed in --json and --html)",
                  markup=False)
    err.print(f"skipped {report.rows_skipped:,} bad row(s) of {report.rows_read:,} read", markup=False)


def _print_replay(r: "ReplayReport", top: int) -> None:
    scope = f" · tenant {escape(r.tenant)}" if r.tenant else ""
    out.print(f"replayed {r.replayed:,} of {r.decisions:,} logged decisions from {escape(r.store)}{scope} "
              f"with {escape(r.label)} ({escape(', '.join(r.ruleset_versions) or '–')})")
    if r.not_replayable:
        out.print(f"[yellow]{r.not_replayable:,} decision(s) were logged without their context and were not "
                  "replayed[/yellow]")
    for inv in r.invalid[:MAX_BAD_SHOWN]:
        err.print(f"decision {inv.decision_id}: stored context no longer validates: {inv.reason}", markup=False)
    if r.gestures:
        table = Table(title="Gestures", title_justify="left")
        for col in ("gesture", "decisions gaining", "decisions losing"):
            table.add_column(col, justify="left" if col == "gesture" else "right")
        for g in r.gestures[:top]:
            table.add_row(escape(g.gesture_id), f"{g.gained:,}", f"{g.lost:,}")
        out.print(table)
    for title, items in (("customers who would lose a gesture", r.customers_losing),
                         ("customers who would gain a gesture", r.customers_gaining)):
        if not items:
            continue
        out.print(f"[bold]{title}[/bold] ({len(items):,}):")
        for c in items[:top * 2]:
            out.print(f"  {escape(c.customer_id or '(no customer id)')}  {escape(c.gesture_id)}  "
                      f"[dim]decision {escape(c.decision_id)}[/dim]")
        if len(items) > top * 2:
            out.print(f"  [dim]… {len(items) - top * 2:,} more (all in --json)[/dim]")
    out.print(f"[bold]cost[/bold]: logged {_money(r.cost_before)} · replayed {_money(r.cost_after)} · "
              f"Δ {_signed(r.cost_delta, True)}")
    verdict = "[red]EXCEEDS the limit[/red]" if r.exceeded else "[green]within the limit[/green]"
    out.print(f"[bold]changed[/bold]: {r.changed:,} of {r.replayed:,} decisions ({_pct(r.share_changed)}) "
              f"{verdict} of {_pct(r.max_change)}"
              + (f"; {r.reordered:,} reordered only" if r.reordered else ""))


# -- the command ----------------------------------------------------------------------


def _rules_list(paths: Optional[List[Path]]) -> Optional[List[Path]]:
    for p in paths or []:
        if not p.exists():
            fail(f"rule pack path {p} does not exist")
    return list(paths) if paths else None


def backtest_cmd(
    history: Optional[Path] = typer.Argument(None, help="Past interactions: JSON Lines (.jsonl) or CSV (.csv)."),
    rules: Optional[List[Path]] = typer.Option(
        None, "--rules", "-r", help="Rule pack file or folder (repeatable); default: the shipped packs."),
    plugins_dir: Optional[Path] = typer.Option(None, "--plugins-dir", help="Folder of drop-in plugin modules (*.py)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m",
                                           help="CSV only: YAML mapping of context field paths to column names."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML report here."),
    compare: Optional[List[Path]] = typer.Option(
        None, "--compare", help="Rule set B (file or folder, repeatable): run both and show them side by side."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Run on a local Dask cluster of N worker processes."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Run on an existing Dask scheduler (tcp://host:8786)."),
    dask_timeout: float = typer.Option(10.0, "--dask-timeout", min=0.1,
                                       help="Seconds to wait when connecting to the Dask scheduler or cluster."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", min=1, hidden=True,
                                             help="Rows per chunk (default 250 in-process, 2000 on Dask)."),
    decisions: bool = typer.Option(False, "--decisions",
                                   help="Replay the memory store's decision log through --rules instead of a file."),
    url: Optional[str] = typer.Option(None, "--url", envvar="RECOMMENDER_DB_URL", show_envvar=True,
                                      help="--decisions: database URL (sqlite:///PATH or postgresql://...)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="--decisions: only this tenant (business.id)."),
    since: Optional[str] = typer.Option(None, "--since", help="--decisions: logged on or after (date, or 30d)."),
    until: Optional[str] = typer.Option(None, "--until", help="--decisions: logged before (date, or 7d)."),
    max_change: float = typer.Option(0.05, "--max-change", min=0.0, max=1.0,
                                     help="--decisions: exit 1 when a larger share of decisions changes."),
    top: int = typer.Option(TOP, "--top", min=1, help="Rows shown per table (the JSON and HTML have all)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar on stderr."),
    policy: Optional[List[Path]] = typer.Option(
        None, "--policy", help="--decisions: estimate what this rule set (file or folder, repeatable) would have "
        "achieved on the logged decisions (off-policy: acceptance, cost, coverage with intervals; docs/learning.md)."),
    policy_learning: bool = typer.Option(
        True, "--policy-learning/--policy-no-learning",
        help="--decisions: the estimated policy learns from outcomes (default) or ranks by its rules alone."),
    fail_on: str = typer.Option(
        "acceptance,coverage", "--fail-on",
        help="--policy: exit 1 when one of these metrics (acceptance, cost, coverage) gets worse beyond its interval."),
    population: bool = typer.Option(
        False, "--population", help="Check the advice over the history as a population instead: recover coverage, "
        "cost by severity, the extras share, money limits, listing and near misses; exit 1 when one fails."),
) -> None:
    """Run past interactions through a rule set: fires, cost and coverage per gesture, rule, tier and segment."""
    if decisions:
        if history is not None:
            fail("give either a HISTORY file or --decisions, not both")
        for name, value in (("--compare", compare), ("--mapping", mapping), ("--workers", workers), ("--dask", dask),
                            ("--population", population)):
            if value:
                fail(f"{name} does not apply to --decisions")
        if policy or not policy_learning:
            _offpolicy(policy, rules, plugins_dir, policy_learning, url, tenant, since, until, fail_on, as_json)
            return
        _decisions(rules, plugins_dir, url, tenant, since, until, max_change, as_json, html, top, no_progress)
        return
    for name, value in (("--tenant", tenant), ("--since", since), ("--until", until), ("--policy", policy)):
        if value is not None:
            fail(f"{name} applies to --decisions only")
    if history is None:
        fail("missing HISTORY: a JSON Lines or CSV file of past interactions (or --decisions to replay the log)")
    if workers is not None and dask is not None:
        fail("give --workers N (a local cluster) or --dask ADDRESS, not both")
    if population:
        for name, value in (("--compare", compare), ("--html", html), ("--workers", workers), ("--dask", dask)):
            if value:
                fail(f"{name} does not apply to --population")
        _population(history, rules, plugins_dir, mapping, as_json)
        return
    _history(history, rules, plugins_dir, mapping, as_json, html, compare, workers, dask, dask_timeout, chunk_size,
             top, no_progress)


def _history(history: Path, rules: Optional[List[Path]], plugins_dir: Optional[Path], mapping: Optional[Path],
             as_json: bool, html: Optional[Path], compare: Optional[List[Path]], workers: Optional[int],
             dask: Optional[str], dask_timeout: float, chunk_size: Optional[int], top: int,
             no_progress: bool) -> None:
    from ..backtest.io import HistoryInputError, count_rows, open_source
    from ..backtest.report import Timing, build_report
    from ..backtest.run import BacktestError, RuleSet, run_history

    try:
        source = open_source(history, mapping)
    except HistoryInputError as exc:
        fail(str(exc))
    rule_paths, other_paths = _rules_list(rules), _rules_list(compare)
    try:
        sets = [RuleSet.of(rule_paths, plugins_dir).pinned()]
        if other_paths:
            sets.append(RuleSet.of(other_paths, plugins_dir).pinned())
    except RecommenderError as exc:
        fail(str(exc))
    show = not no_progress and err.is_terminal
    total = count_rows(source) if show else 0
    try:
        with _Progress(show, "backtest", total) as advance:
            partial, info = run_history(source, sets, workers=workers, scheduler=dask, chunk_size=chunk_size,
                                        progress=advance, connect_timeout=dask_timeout)
    except HistoryInputError as exc:
        fail(str(exc))
    except BacktestError as exc:
        fail(str(exc), 1)
    except RecommenderError as exc:
        fail(str(exc), 1)
    labels = [rs.label for rs in sets]
    timing = Timing(engine=info.engine, workers=info.workers, seconds=round(info.seconds, 3),
                    rows_per_second=round(partial.rows_read / info.seconds, 1) if info.seconds > 0 else None)
    report = build_report(partial, history=str(history), fmt=source.format,
                          mapping=str(mapping) if mapping is not None else None, labels=labels,
                          rules=[list(rs.paths or []) for rs in sets], timing=timing)
    _report_bad_rows(report)
    if report.rows_read == 0:
        fail(f"{history}: the history file is empty (it holds no rows)")
    if report.rows_ok == 0:
        fail(f"{history}: none of its {report.rows_read:,} rows is usable (every row was skipped)")
    if html is not None:
        from ..backtest.html import render_html

        _write_html(html, render_html(report))
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        return
    _print_summary(report)
    if report.compare is not None:
        _print_compare(report, top)
        out.rule(f"A: {escape(report.run.label)}")
    _print_run(report.run, top)
    if report.other is not None:
        out.rule(f"B: {escape(report.other.label)}")
        _print_run(report.other, top)
    if report.rows_skipped:
        out.print(f"[yellow]skipped {report.rows_skipped:,} bad row(s) of {report.rows_read:,}[/yellow] "
                  "(listed on stderr and in --json)")


def _population(history: Path, rules: Optional[List[Path]], plugins_dir: Optional[Path], mapping: Optional[Path],
                as_json: bool) -> None:
    from ..backtest.io import HistoryInputError, open_source
    from ..backtest.population import format_report, population_check, read_contexts
    from ..backtest.run import BacktestError, RuleSet, recommender_for

    try:
        source = open_source(history, mapping)
        contexts, bad = read_contexts(source)
    except HistoryInputError as exc:
        fail(str(exc))
    for line, reason in bad[:MAX_BAD_SHOWN]:
        err.print(f"{history}:{line}: {reason}", markup=False, highlight=False)
    if bad:
        err.print(f"skipped {len(bad):,} bad row(s) of {len(bad) + len(contexts):,} read", markup=False)
    if not contexts:
        fail(f"{history}: no usable row")
    try:
        rec = recommender_for(RuleSet.of(_rules_list(rules), plugins_dir))
        report = population_check(rec, contexts)
    except BacktestError as exc:
        fail(str(exc))
    except RecommenderError as exc:
        fail(str(exc), 1)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        out.print(f"population check · history {escape(str(history))} · {report.rows:,} interactions · "
                  f"rulebook {rec.ruleset_version}")
        out.print(format_report(report), markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _check_sqlite_exists(url: Optional[str]) -> None:
    """A replay must not create an empty database at a mistyped path and pass."""
    from ..memory.db import default_url, normalize_url

    try:
        parsed = normalize_url(url)
    except RecommenderError as exc:
        fail(str(exc))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            where = url if url is not None else default_url()
            fail(f"no database at {where}: nothing to replay (give --url or set RECOMMENDER_DB_URL)")


def _decisions(rules: Optional[List[Path]], plugins_dir: Optional[Path], url: Optional[str], tenant: Optional[str],
               since: Optional[str], until: Optional[str], max_change: float, as_json: bool, html: Optional[Path],
               top: int, no_progress: bool) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from ..backtest.decisions import DecisionLogError, decisions_of
    from ..backtest.report import build_replay_report
    from ..backtest.run import BacktestError, RuleSet, replay_decisions
    from ..memory import open_store

    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    rule_paths = _rules_list(rules)
    try:
        rs = RuleSet.of(rule_paths, plugins_dir).pinned()
    except RecommenderError as exc:
        fail(str(exc))
    _check_sqlite_exists(url)
    try:
        store = open_store(url)
    except RecommenderError as exc:
        fail(str(exc), 2 if getattr(exc, "code", "") == "invalid" else 1)
    try:
        with _Progress(not no_progress, "replaying decisions", None) as advance:
            tally = replay_decisions(decisions_of(store, tenant=tenant, since=start, until=end), rs, advance)
    except DecisionLogError as exc:
        fail(str(exc))
    except (BacktestError, RecommenderError) as exc:
        fail(str(exc), 1)
    except SQLAlchemyError as exc:
        fail(f"database {store.url}: {' '.join(str(getattr(exc, 'orig', None) or exc).split())[:300]}", 1)
    finally:
        store.close()
    report = build_replay_report(tally, store=store.url, tenant=tenant, since=start, until=end,
                                 rules=list(rs.paths or []), label=rs.label, max_change=max_change)
    if html is not None:
        from ..backtest.html import render_replay_html

        _write_html(html, render_replay_html(report))
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        if report.decisions == 0:
            out.print(f"[yellow]no decisions logged in {escape(report.store)}"
                      f"{' for tenant ' + escape(tenant) if tenant else ''}: nothing to replay[/yellow]")
        _print_replay(report, top)
    if report.exceeded:
        err.print(f"changed share {_pct(report.share_changed)} exceeds --max-change {_pct(max_change)}",
                  markup=False)
        raise typer.Exit(1)


def _offpolicy(policy: Optional[List[Path]], rules: Optional[List[Path]], plugins_dir: Optional[Path],
               learning: bool, url: Optional[str], tenant: Optional[str], since: Optional[str],
               until: Optional[str], fail_on: str, as_json: bool) -> None:
    """Off-policy estimate of a new rule set (or learning on/off) on the decision log."""
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from ..backtest.decisions import DecisionLogError, decisions_of
    from ..backtest.offpolicy import METRICS, evaluate_log
    from ..core import Recommender
    from ..memory import open_store

    metrics = [m.strip() for m in fail_on.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        fail(f"--fail-on: unknown metric(s) {', '.join(unknown)} (one of {', '.join(METRICS)})")
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    paths = _rules_list(policy) or _rules_list(rules)
    try:
        extra: dict[str, Any] = {"plugins_dir": plugins_dir} if plugins_dir is not None else {}
        rec = Recommender(paths, learning=learning, **extra)
    except RecommenderError as exc:
        fail(str(exc))
    _check_sqlite_exists(url)
    try:
        store = open_store(url)
    except RecommenderError as exc:
        fail(str(exc), 2 if getattr(exc, "code", "") == "invalid" else 1)
    try:
        est = evaluate_log(decisions_of(store, tenant=tenant, since=start, until=end), rec, store, fail_on=metrics)
    except DecisionLogError as exc:
        fail(str(exc))
    except RecommenderError as exc:
        fail(str(exc), 1)
    except SQLAlchemyError as exc:
        fail(f"database {store.url}: {' '.join(str(getattr(exc, 'orig', None) or exc).split())[:300]}", 1)
    finally:
        store.close()
    label = ", ".join(p.name for p in paths) if paths else "shipped packs"
    if as_json:
        sys.stdout.write(json.dumps({"policy": label, "learning": learning, **est.as_dict()}, indent=2) + "\n")
    else:
        out.print(f"off-policy estimate of {escape(label)} (learning {'on' if learning else 'off'}) on "
                  f"{est.evaluated:,} of {est.decisions:,} logged decisions with outcomes "
                  f"({est.supported:,} the new policy could have made as logged)")
        table = Table(title="per decision, 95% intervals")
        for col in ("metric", "logged", "inverse propensity", "doubly robust", "change (DR - logged)"):
            table.add_column(col, overflow="fold")

        def cell(e: Any) -> str:
            return "-" if e.n == 0 else f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"

        for m in METRICS:
            flag = " [red]worse[/red]" if m in est.worse else ""
            table.add_row(m, cell(est.logged[m]), cell(est.ips[m]), cell(est.dr[m]), cell(est.change[m]) + flag)
        out.print(table)
    if est.worse:
        err.print(f"worse beyond its interval: {', '.join(est.worse)}", markup=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_cmd)
