"""The Typer app and the helpers every command shares (input reading, error exits)."""

from __future__ import annotations

import importlib
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console

from ..errors import RecommenderError

app = typer.Typer(
    name="recommender",
    help="Recommend the service gestures worth making now, ranked and explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: Modules that add command groups (each defines ``register(app)``); imported lazily so
#: heavy dependencies (HTTP, SQL) load only for the commands that need them.
COMMAND_GROUPS = (
    "recommender.cli.plugins_cmd",
    "recommender.cli.memory_cmd",
    "recommender.cli.serve_cmd",
    "recommender.cli.backtest_cmd",
)


def load_command_groups() -> None:
    for name in COMMAND_GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not built yet / not installed
                continue
            raise
        module.register(app)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error (no traceback) and exit: 2 for usage and input errors, 1 otherwise."""
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def read_json_input(source: str, what: str = "context") -> Any:
    """Read JSON from a file path or ``-`` (stdin); bad input exits 2 naming the source."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {what} file {source}: {exc.strerror or exc}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        name = "<stdin>" if source == "-" else source
        fail(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")


def parse_when(text: Optional[str], option: str, now: Optional[datetime] = None) -> Optional[datetime]:
    """A ``--since``/``--until`` value: an ISO date or date-time, ``today``, or a span back from
    now like ``30d`` / ``12h``. Naive times are UTC; a bad value exits 2 naming the flag."""
    if text is None:
        return None
    value = text.strip()
    now = now or datetime.now(timezone.utc)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dh])", value)
    if m:
        amount = float(m.group(1))
        return now - (timedelta(days=amount) if m.group(2) == "d" else timedelta(hours=amount))
    if value == "today":
        return datetime.combine(now.date(), datetime.min.time(), tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: expected an ISO date (2025-06-01), a date-time, 'today' or a span like 30d, got {text!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def guard(exc: RecommenderError, code: int = 2) -> NoReturn:
    fail(str(exc), code)
