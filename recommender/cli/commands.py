"""Core commands: recommend, explain, rules check/schema, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from ..errors import ContextError, RecommenderError, RulePackError, sort_problems
from .app import app, err, fail, out, read_json_input

if TYPE_CHECKING:
    from ..results import RecommendationResult

RulesOpt = typer.Option(None, "--rules", "-r", help="Rule pack file or folder (repeatable); default: the shipped packs.")
PluginsDirOpt = typer.Option(None, "--plugins-dir", help="Folder of drop-in plugin modules (*.py).")
BusinessOpt = typer.Option(None, "--business", help="Tenant id: overrides business.id of the context.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
BudgetOpt = typer.Option(None, "--budget", min=0, help="Per-interaction budget for gesture cost.")
ExtrasOpt = typer.Option(None, "--max-extras", min=0, help="Cap on 'exceed' extras listed (default: the profile's, 1).")
ProfilesOpt = typer.Option(None, "--profiles", help="YAML/JSON file of business profiles by business id "
                                                    "('default' for every business); see docs/advice.md.")
AllOpt = typer.Option(False, "--all", help="List every near miss and missing input, not only the top five.")
UrlOpt = typer.Option(None, "--url", envvar="RECOMMENDER_DB_URL",
                      help="Memory store URL (sqlite:///path or postgresql://...): enrich from history, apply "
                           "contact policy and budgets, log the decision.")
LearningOpt = typer.Option(True, "--learning/--no-learning",
                           help="With --url: rank by what outcomes taught (docs/learning.md), or by the rules alone.")


def build_recommender(rules: Optional[List[Path]], plugins_dir: Optional[Path] = None, **kwargs: Any) -> Any:
    from ..core import Recommender

    try:
        extra: dict[str, Any] = {"plugins_dir": plugins_dir} if plugins_dir is not None else {}
        return Recommender(rules, **extra, **kwargs)
    except RecommenderError as exc:
        fail(str(exc))


def _context(source: str, business: Optional[str]) -> Any:
    data = read_json_input(source)
    if business is not None:
        if not isinstance(data, dict):
            fail("the context must be a JSON object")
        data = {**data, "business": {**(data.get("business") or {}), "id": business}}
    return data


def read_profiles(path: Optional[Path]) -> dict[str, Any] | None:
    """The ``--profiles`` file: a mapping of business ids to partial profiles."""
    if path is None:
        return None
    from ruamel.yaml import YAML

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--profiles {path}: cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"--profiles {path}: not valid YAML or JSON: {str(exc).splitlines()[0]}")
    if not text.strip():
        fail(f"--profiles {path}: the file is empty")
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except Exception as exc:  # YAML syntax, invalid UTF-8
        fail(f"--profiles {path}: not valid YAML or JSON: {str(exc).splitlines()[0]}")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        fail(f"--profiles {path}: expected a mapping of business ids ('default' for all) to profiles")
    return data


def _run(source: str, rules: Optional[List[Path]], plugins_dir: Optional[Path], business: Optional[str],
         as_json: bool, budget: Optional[float], max_extras: Optional[int], explain: bool,
         url: Optional[str] = None, profiles: Optional[Path] = None, full: bool = False,
         learning: bool = True) -> None:
    rec = build_recommender(rules, plugins_dir, profiles=read_profiles(profiles), learning=learning)
    ctx = _context(source, business)
    try:
        store = None
        if url:
            from ..memory import open_store

            store = open_store(url)
        if explain:
            result = rec.explain(ctx, budget=budget, max_extras=max_extras, store=store, full=full)
        else:
            result = rec.recommend(ctx, budget=budget, max_extras=max_extras, store=store)
    except ContextError as exc:
        fail(f"{'<stdin>' if source == '-' else source}: {exc}")
    except RecursionError:
        fail(f"{'<stdin>' if source == '-' else source}: the context is nested too deeply")
    except RecommenderError as exc:
        fail(str(exc), 1)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        print_result(result)


def print_result(result: RecommendationResult) -> None:
    from rich.markup import escape  # here: ``--json`` imports no rich
    from rich.table import Table
    from rich.text import Text

    from ..results import Explanation

    a = result.assessment
    if a is not None:
        why = f": {'; '.join(a.reasons)}" if a.reasons else ""
        out.print(f"[dim]case:[/dim] {escape(a.family or 'unknown issue')}, severity {a.severity} ({a.band}){escape(why)}")
    for note in result.notes:
        out.print(f"[yellow]note[/yellow]: {escape(note)}")
    if result.recommendations:
        table = Table(title="Recommended now", show_lines=True)
        for col in ("#", "gesture", "tier", "cost", "score", "say", "why"):
            table.add_column(col, overflow="fold")
        for i, r in enumerate(result.recommendations, 1):
            cost = "?" if r.cost is None else f"{r.cost:.2f}"
            due = f" (follow up in {r.follow_up_days} d)" if r.follow_up_days is not None else ""
            table.add_row(str(i), Text(r.title + due), r.tier, cost, f"{r.score:g}", Text(r.script), Text(r.agent_reason))
        out.print(table)
    else:
        out.print("No gesture recommended for this context.")
    for w in result.needs_approval:
        out.print(f"[yellow]needs approval[/yellow]: {escape(w.title)} ({escape(w.detail)})")
        if w.script:
            out.print(f"  would say: {escape(w.script)}")
    for w in result.withheld:
        out.print(f"[dim]withheld[/dim]: {escape(w.title)} \\[{w.reason}] {escape(w.detail)}")
    for pw in result.warnings:
        out.print(f"[red]plugin warning[/red]: {escape(pw.plugin)} in {pw.hook}: {escape(pw.message)}")
    if result.missing_inputs:
        out.print(f"[dim]missing inputs:[/dim] {', '.join(result.missing_inputs)}")
    for r in result.recommendations:
        ev = r.evidence
        if ev is not None:
            line = f"{r.gesture_id}: {ev.text}"
            if isinstance(result, Explanation):  # the posterior behind it
                line += (f" [Beta({ev.alpha:g}, {ev.beta:g}), prior {ev.prior:.0%}, segment {ev.segment}"
                         + (f", chosen with probability {ev.choice_probability:.0%}" if ev.choice_probability
                            is not None else "") + "]")
            out.print(f"[dim]evidence[/dim]: {escape(line)}")
    if isinstance(result, Explanation):
        out.print(f"rules matched: {', '.join(result.rules_matched) or 'none'} (of {result.rules_evaluated})")
        for nm in result.near_misses:
            out.print(f"[cyan]near miss[/cyan] ({nm.change}) {nm.rule_id} -> {', '.join(nm.gestures)}: {escape(nm.hint)}")
    decision = f" · decision {result.decision_id}" if result.decision_id else ""
    out.print(f"[dim]receipt {result.receipt.id} · ruleset {result.ruleset_version}{decision}[/dim]")


@app.command()
def recommend(
    context: str = typer.Argument(..., help="Context JSON file, or - for stdin."),
    rules: Optional[List[Path]] = RulesOpt,
    plugins_dir: Optional[Path] = PluginsDirOpt,
    business: Optional[str] = BusinessOpt,
    as_json: bool = JsonOpt,
    budget: Optional[float] = BudgetOpt,
    max_extras: Optional[int] = ExtrasOpt,
    url: Optional[str] = UrlOpt,
    profiles: Optional[Path] = ProfilesOpt,
    learning: bool = LearningOpt,
) -> None:
    """Recommend gestures for one interaction context."""
    _run(context, rules, plugins_dir, business, as_json, budget, max_extras, explain=False, url=url,
         profiles=profiles, learning=learning)


@app.command()
def explain(
    context: str = typer.Argument(..., help="Context JSON file, or - for stdin."),
    rules: Optional[List[Path]] = RulesOpt,
    plugins_dir: Optional[Path] = PluginsDirOpt,
    business: Optional[str] = BusinessOpt,
    as_json: bool = JsonOpt,
    budget: Optional[float] = BudgetOpt,
    max_extras: Optional[int] = ExtrasOpt,
    url: Optional[str] = UrlOpt,
    profiles: Optional[Path] = ProfilesOpt,
    full: bool = AllOpt,
    learning: bool = LearningOpt,
) -> None:
    """Recommend, and show matched rules and near misses, what can change first (never logged)."""
    _run(context, rules, plugins_dir, business, as_json, budget, max_extras, explain=True, url=url,
         profiles=profiles, full=full, learning=learning)


rules_app = typer.Typer(help="Check rule packs and print their JSON Schema.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
def rules_check(paths: List[Path] = typer.Argument(..., help="Rule pack files or folders.")) -> None:
    """Validate packs in one pass: print 'file:line: field: message' for every problem of every
    file (and between files), then exit 1 if there was any."""
    from ..packs import load_packs
    from ..rulebook import RuleBook

    try:
        packs = load_packs(paths)
        book = RuleBook.build(packs)
    except RulePackError as exc:
        for problem in sort_problems(exc.problems):
            out.print(str(problem), markup=False)
        err.print(f"{len(exc.problems)} problem(s)", markup=False)
        raise typer.Exit(1)
    except RecommenderError as exc:  # e.g. the engine refusing a ruleset: still no traceback
        fail(str(exc), 1)
    out.print(f"ok: {len(packs)} pack(s), {len(book.gestures)} gestures, {len(book.rules)} rules, "
              f"version {book.version}", markup=False)


@rules_app.command("test")
def rules_test(
    paths: List[Path] = typer.Argument(..., help="Scenario files or folders (*.yaml): docs/scenarios.md."),
    rules: Optional[List[Path]] = RulesOpt,
    plugins: bool = typer.Option(True, "--plugins/--no-plugins", help="Load installed plugins (default: yes)."),
    as_json: bool = JsonOpt,
    strict: bool = typer.Option(False, "--strict", help="Count scenarios marked known_issue as failures."),
) -> None:
    """Run scenario files: print 'file:line: scenario: expected ..., got ...' per failure, then
    'N passed, M failed'; exit 1 if any failed, 2 for an invalid file."""
    from rich.markup import escape

    from ..scenarios import run_paths

    try:
        report = run_paths(paths, rules=rules, autoload=plugins, strict=strict)
    except RecommenderError as exc:
        fail(escape(str(exc)))
    if as_json:
        print(report.to_json())
    else:
        for line in report.lines():
            out.print(line, markup=False)
    raise typer.Exit(report.exit_code)


@rules_app.command("schema")
def rules_schema() -> None:
    """Print the JSON Schema of rule pack files (for editor completion)."""
    from ..packs import pack_json_schema

    print(json.dumps(pack_json_schema(), indent=2))


@app.command()
def demo(as_json: bool = JsonOpt) -> None:
    """Run the bundled example contexts and show what is recommended and why."""
    from ..examples import example_profiles, load_examples

    rec = build_recommender(None, profiles=example_profiles())
    for name, title, ctx in load_examples():
        result = rec.recommend(ctx)
        if as_json:
            out.print_json(json.dumps({"example": name, "result": result.model_dump(mode="json")}))
            continue
        out.rule(f"[bold]{title}[/bold]")
        out.print_json(json.dumps(ctx))
        print_result(result)
