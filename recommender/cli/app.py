"""The Typer app and the helpers every command shares (input reading, error exits)."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional, TextIO

import typer

from ..errors import RecommenderError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="recommender",
    help="Recommend the service gestures worth making now, ranked and explained.",
    no_args_is_help=True,
    # --install-completion / --show-completion (bash, zsh, fish, PowerShell): see the README
    add_completion=True,
    # Help texts are plain text: "[[api_keys]]" or "[--since 30d]" is shown as written, never
    # read as Rich markup (which would swallow it).
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _plain(stream: TextIO) -> bool:
    """Whether ``stream`` certainly gets no colour from rich: not a terminal, and neither of
    rich's switches set (``FORCE_COLOR``, ``TTY_COMPATIBLE``: with either, rich decides, as its
    version reads them). There the JSON printed without rich is the very text rich prints."""
    if os.environ.get("FORCE_COLOR") is not None or os.environ.get("TTY_COMPATIBLE") is not None:
        return False
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


class LazyConsole:
    """A rich ``Console`` made on first use (importing rich's console takes about a third of
    ``import pydantic``): ``recommend --json`` into a pipe or a file never imports rich, and
    ``print_json`` writes there the text rich would (indent 2, non-ASCII as written, no colour).
    Every other attribute is the console's."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console(), name)

    def print_json(self, text: str) -> None:
        stream = sys.stderr if self._options.get("stderr") else sys.stdout
        if _plain(stream):
            stream.write(json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n")
            stream.flush()
        else:
            self.console().print_json(text)


# emoji=False: ":x:" in a file name, a note or a pack's text is printed as written, never as an
# emoji (and rich 14.3.4 or later does not load its emoji table)
out = LazyConsole(highlight=False, soft_wrap=True, emoji=False)
err = LazyConsole(stderr=True, highlight=False, soft_wrap=True, emoji=False)

#: Modules that add command groups (each defines ``register(app)``); imported lazily so
#: heavy dependencies (HTTP, SQL) load only for the commands that need them.
COMMAND_GROUPS = (
    "recommender.cli.plugins_cmd",
    "recommender.cli.memory_cmd",
    "recommender.cli.profile_cmd",
    "recommender.cli.serve_cmd",
    "recommender.cli.backtest_cmd",
    "recommender.cli.issues_cmd",
    "recommender.cli.learning_cmd",
    "recommender.cli.reference_cmd",
    "recommender.cli.plugin_new_cmd",
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
    """Print an error (no traceback) and exit: 2 for usage and input errors, 1 otherwise.
    ``message`` is plain text (it quotes what the user wrote: ``[/x]`` is not markup)."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(code)


def read_json_input(source: str, what: str = "context") -> Any:
    """Read JSON from a file path or ``-`` (stdin). Bad input exits 2 naming the source and
    the reason, never with a traceback: unreadable, larger than the library's bound
    (:data:`~recommender.context.MAX_CONTEXT_BYTES`, checked before the file is read), empty,
    not UTF-8, malformed JSON, nested too deeply, or a number too long to read. The JSON is
    read by the library's and the service's own parser (pydantic's), so all three refuse the
    same texts; values are checked by the caller (the context model), as the service does."""
    from pydantic_core import from_json

    from ..context import MAX_CONTEXT_BYTES

    name = "<stdin>" if source == "-" else source
    limit = MAX_CONTEXT_BYTES
    try:
        if source == "-":
            stdin = getattr(sys.stdin, "buffer", None)
            raw = stdin.read(limit + 1) if stdin is not None else sys.stdin.read(limit + 1).encode()
        else:
            with Path(source).open("rb") as f:
                raw = f.read(limit + 1)  # a 100 MB file is never read whole
    except OSError as exc:
        fail(f"cannot read {what} file {source}: {exc.strerror or exc}")
    if len(raw) > limit:
        fail(f"{name}: the {what} is larger than {limit} bytes, the limit for a {what}")
    if not raw.strip():
        fail(f"{name}: the {what} {'input' if source == '-' else 'file'} is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        fail(f"{name}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
    try:
        return from_json(text)
    except ValueError as exc:
        fail(f"{name}{_json_problem(text, str(exc))}")


def _json_problem(text: str, message: str) -> str:
    """``:line:column: invalid JSON: reason`` from pydantic's parser message (``reason at line
    L column C``); nesting and over-long numbers said plainly."""
    m = re.fullmatch(r"(.*) at line (\d+) column (\d+)", message, re.S)
    reason, line, column = (m.group(1), int(m.group(2)), int(m.group(3))) if m else (message, 0, 0)
    if reason == "recursion limit exceeded":
        return ": invalid JSON: nested too deeply"
    if reason == "number out of range" and line:
        at = sum(len(row) + 1 for row in text.split("\n")[:line - 1]) + column - 1  # where the parser gave up
        digits = len(re.search(r"\d*$", text[:at]).group()) + len(re.match(r"\d*", text[at:]).group())  # type: ignore[union-attr]
        return f": invalid JSON: a number of {digits} digits (at most {sys.get_int_max_str_digits()})"
    return f":{line}:{column}: invalid JSON: {reason}" if line else f": invalid JSON: {reason}"


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
