"""Reading past interactions: JSON Lines, or CSV with a column-mapping file.

JSON Lines: one context object per line (``{"customer": {...}, "interaction": {...}}``),
or wrapped as ``{"context": {...}, "at": "2025-06-01T10:00:00Z", "id": "..."}``. ``at`` is
when the interaction happened: it fills ``interaction.occurred_at`` when the context has
none. Blank lines are ignored (they hold no data); a ``.gz`` suffix is decompressed.

CSV: the first line is the header. A mapping file (YAML) maps context field paths to
column names, one per line::

    customer.id: customer_id
    customer.tenure_years: tenure
    interaction.issue: issue
    interaction.attributes.stage: {column: stage, type: string}
    at: created            # optional: when the interaction happened

Each cell is coerced to the kind of its field (number, integer, bool, list, string,
datetime). An empty cell leaves the field unset. Lists are split on ``|`` (or given as a
JSON array). Keys under the open maps (``customer.attributes.*``,
``customer.preferences.*``, ``interaction.attributes.*``) are inferred (true/false, a
number, else a string) unless the entry names a ``type``. Without a mapping, the header's
column names must themselves be context field paths.

Reading never validates contexts (the workers do); it splits the file into raw rows with
their line numbers, so a bad row is reported as ``file:line: reason`` and skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import types
import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Union

from pydantic import BaseModel

from ..context import Context, field_kind
from ..errors import RecommenderError

__all__ = [
    "HistoryInputError",
    "RowError",
    "ColumnSpec",
    "Mapping",
    "Source",
    "load_mapping",
    "detect_format",
    "open_source",
    "iter_raw",
    "decode",
    "count_rows",
    "parse_at",
    "LIST_SEPARATOR",
]

LIST_SEPARATOR = "|"
Kind = Literal["number", "integer", "bool", "string", "list", "datetime", "open"]
_KINDS = ("number", "integer", "bool", "string", "list", "datetime", "open")
_WRAPPER_KEYS = {"context", "at", "id"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class HistoryInputError(RecommenderError):
    """The history file or the mapping cannot be used at all (the CLI exits 2 before any work)."""


class RowError(ValueError):
    """One row is bad: the reason, without the line number (the caller adds it)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One mapping entry: context field ``path`` <- CSV ``column``, coerced as ``kind``."""

    path: str
    column: str
    kind: Kind
    line: int | None = None
    index: int = -1  # position in the CSV header, set by :func:`open_source`


@dataclass(frozen=True)
class Mapping:
    source: str
    columns: tuple[ColumnSpec, ...]
    at: ColumnSpec | None = None


@dataclass(frozen=True)
class Source:
    """A history file ready to read: picklable, so Dask workers can decode its rows."""

    path: str
    format: Literal["jsonl", "csv"]
    mapping: Mapping | None = None
    width: int = 0  # CSV: number of header columns


# -- field kinds ---------------------------------------------------------------------


def _base(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _base(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base(args[0]) if len(args) == 1 else annotation
    return annotation


def _annotation(path: str) -> Any:
    model: type[BaseModel] = Context
    parts = path.split(".")
    for i, part in enumerate(parts):
        info = model.model_fields[part]
        base = _base(info.annotation)
        if i == len(parts) - 1:
            return base
        model = base
    return None  # pragma: no cover


def kind_of(path: str) -> Kind | None:
    """How a CSV cell for ``path`` is coerced; None when ``path`` is not a context leaf."""
    kind = field_kind(path)
    if kind is None:
        return None
    if kind == "open":
        return "open"
    if kind == "number":
        return "integer" if _annotation(path) is int else "number"
    return kind


# -- mapping -------------------------------------------------------------------------


def load_mapping(path: str | Path) -> Mapping:
    """Read a mapping file; every problem names the file and line. Raises :class:`HistoryInputError`."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise HistoryInputError(f"cannot read mapping file {p}: {exc.strerror or exc}") from None
    if not text.strip():
        raise HistoryInputError(f"{p}: the mapping file is empty")
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise HistoryInputError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not data:
        raise HistoryInputError(f"{p}: a mapping file maps context field paths to CSV columns, "
                                "e.g. 'customer.tenure_years: tenure'")
    problems: list[str] = []
    columns: list[ColumnSpec] = []
    at: ColumnSpec | None = None
    for key, value in data.items():
        line = _key_line(data, key)
        where = f"{p}:{line}" if line else str(p)
        key = str(key)
        explicit: str | None = None
        if isinstance(value, dict):
            unknown = set(map(str, value)) - {"column", "type"}
            if unknown or "column" not in value:
                problems.append(f"{where}: {key}: expected a column name or {{column: NAME, type: KIND}}")
                continue
            explicit, value = value.get("type"), value["column"]
            if explicit is not None and explicit not in _KINDS:
                problems.append(f"{where}: {key}: unknown type {explicit!r} (one of {', '.join(_KINDS)})")
                continue
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: {key}: the column name must be a non-empty string")
            continue
        if key == "at":
            at = ColumnSpec("at", value, "datetime", line)
            continue
        kind = kind_of(key)
        if kind is None:
            problems.append(f"{where}: {key!r} is not a context field path (e.g. customer.tenure_years, "
                            "interaction.issue, interaction.attributes.NAME)")
            continue
        if explicit is not None:
            if kind != "open" and explicit != kind:
                problems.append(f"{where}: {key} is a {kind} field, not {explicit}")
                continue
            kind = explicit  # type: ignore[assignment]
        columns.append(ColumnSpec(key, value, kind, line))
    if problems:
        raise HistoryInputError("\n".join(problems))
    return Mapping(str(p), tuple(columns), at)


def _key_line(data: Any, key: Any) -> int | None:
    try:
        return int(data.lc.key(key)[0]) + 1
    except Exception:  # pragma: no cover - plain dicts have no positions
        return None


def _header_mapping(header: list[str], path: str) -> Mapping:
    """No mapping file: each column is named by its context field path."""
    columns: list[ColumnSpec] = []
    at: ColumnSpec | None = None
    bad: list[str] = []
    for name in header:
        if name == "at":
            at = ColumnSpec("at", name, "datetime", 1)
            continue
        kind = kind_of(name)
        if kind is None:
            bad.append(name)
        else:
            columns.append(ColumnSpec(name, name, kind, 1))
    if bad:
        raise HistoryInputError(
            f"{path}:1: column(s) {', '.join(repr(b) for b in bad)} are not context field paths; "
            "name columns by field path (customer.tenure_years) or give --mapping MAP.yaml")
    return Mapping("<header>", tuple(columns), at)


# -- opening -------------------------------------------------------------------------


def detect_format(path: str | Path) -> Literal["jsonl", "csv"]:
    name = str(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "csv" if name.endswith(".csv") else "jsonl"


def _open_text(path: str | Path) -> io.TextIOBase:
    p = Path(path)
    if str(p).lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", newline="")
    return open(p, encoding="utf-8-sig", newline="")  # noqa: SIM115


def open_source(path: str | Path, mapping: str | Path | Mapping | None = None,
                fmt: Literal["jsonl", "csv"] | None = None) -> Source:
    """Check the file (and for CSV, the header against the mapping) before any work starts."""
    p = Path(path)
    if not p.exists():
        raise HistoryInputError(f"history file {p} does not exist")
    if p.is_dir():
        raise HistoryInputError(f"history file {p} is a directory")
    fmt = fmt or detect_format(p)
    if fmt == "jsonl":
        if mapping is not None:
            raise HistoryInputError("--mapping applies to CSV history files only")
        try:
            with _open_text(p) as f:
                f.read(1)
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise HistoryInputError(f"cannot read history file {p}: {getattr(exc, 'strerror', None) or exc}") from None
        return Source(str(p), "jsonl")
    mp = load_mapping(mapping) if isinstance(mapping, (str, Path)) else mapping
    try:
        with _open_text(p) as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise HistoryInputError(f"cannot read history file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    if not header or not "".join(header).strip():
        raise HistoryInputError(f"{p}: the history file is empty (no header line)")
    header = [h.strip() for h in header]
    if mp is None:
        mp = _header_mapping(header, str(p))
    index = {name: i for i, name in reversed(list(enumerate(header)))}
    missing = [c for c in (*mp.columns, *([mp.at] if mp.at else [])) if c.column not in index]
    if missing:
        lines = [f"{mp.source}:{c.line}: column {c.column!r} (for {c.path}) is not in the header of {p}"
                 for c in missing]
        raise HistoryInputError("\n".join(lines) + f"\n  header columns: {', '.join(header)}")
    resolved = Mapping(mp.source, tuple(_with_index(c, index) for c in mp.columns),
                       _with_index(mp.at, index) if mp.at else None)
    return Source(str(p), "csv", resolved, len(header))


def _with_index(c: ColumnSpec, index: dict[str, int]) -> ColumnSpec:
    return ColumnSpec(c.path, c.column, c.kind, c.line, index[c.column])


# -- rows ----------------------------------------------------------------------------


def iter_raw(source: Source) -> Iterator[tuple[int, Any]]:
    """``(line number, raw row)``: a JSONL line's text, or a CSV record's cells.

    Raises :class:`HistoryInputError` when the file cannot be read further (I/O error,
    not UTF-8): that stops the run rather than silently dropping the rest.
    """
    try:
        with _open_text(source.path) as f:
            if source.format == "jsonl":
                for n, line in enumerate(f, 1):
                    if line.strip():
                        yield n, line
                return
            reader = csv.reader(f)
            next(reader, None)
            start = reader.line_num + 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield start, RowError(f"malformed CSV: {exc}")
                    start = reader.line_num + 1
                    continue
                if any(c.strip() for c in cells):
                    yield start, cells
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise HistoryInputError(f"cannot read history file {source.path}: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None


def count_rows(source: Source) -> int:
    """About how many rows the file holds (non-blank lines; for the progress bar only)."""
    n = 0
    try:
        opener = gzip.open if source.path.lower().endswith(".gz") else open
        with opener(source.path, "rb") as f:
            for line in f:
                if line.strip():
                    n += 1
    except (OSError, EOFError):
        return 0
    return max(0, n - 1) if source.format == "csv" else n


def parse_at(value: Any) -> datetime:
    """An ISO 8601 time (``Z`` accepted); naive times are taken as UTC. Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def decode(raw: Any, source: Source) -> tuple[dict[str, Any], str | None]:
    """A raw row -> ``(context dict, at)``. Raises :class:`RowError` with the reason."""
    if isinstance(raw, RowError):
        raise raw
    if source.format == "jsonl":
        return _decode_json(raw)
    assert source.mapping is not None
    return _decode_csv(raw, source)


def _decode_json(line: str) -> tuple[dict[str, Any], str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise RowError(f"expected a JSON object, got {type(obj).__name__}")
    at = None
    if "context" in obj:
        extra = sorted(set(obj) - _WRAPPER_KEYS)
        if extra:
            raise RowError(f"unknown key(s) beside 'context': {', '.join(extra)} (allowed: at, id)")
        ctx = obj["context"]
        if not isinstance(ctx, dict):
            raise RowError(f"context: expected a JSON object, got {type(ctx).__name__}")
        at = obj.get("at")
        if at is not None:
            try:
                parse_at(at)
            except ValueError as exc:
                raise RowError(f"at: invalid date-time {at!r}: {exc}") from None
        obj = ctx
    return _apply_at(obj, at), at


def _apply_at(ctx: dict[str, Any], at: str | None) -> dict[str, Any]:
    if at is None:
        return ctx
    inter = ctx.get("interaction")
    if isinstance(inter, dict) and inter.get("occurred_at") is None:
        ctx = {**ctx, "interaction": {**inter, "occurred_at": at}}
    return ctx


def _decode_csv(cells: list[str], source: Source) -> tuple[dict[str, Any], str | None]:
    mp = source.mapping
    assert mp is not None
    if len(cells) != source.width:
        raise RowError(f"expected {source.width} columns, got {len(cells)}")
    ctx: dict[str, Any] = {}
    for col in mp.columns:
        text = cells[col.index].strip()
        if text == "":
            continue
        try:
            value = coerce(text, col.kind)
        except ValueError as exc:
            raise RowError(f"column {col.column!r} ({col.path}): {exc}") from None
        node = ctx
        *parents, leaf = col.path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    at = None
    if mp.at is not None:
        text = cells[mp.at.index].strip()
        if text:
            try:
                parse_at(text)
            except ValueError as exc:
                raise RowError(f"column {mp.at.column!r} (at): invalid date-time {text!r}: {exc}") from None
            at = text
    return _apply_at(ctx, at), at


def coerce(text: str, kind: Kind) -> Any:
    """A CSV cell as the field's kind. Raises ValueError with a short reason."""
    if kind == "string" or kind == "datetime":
        return text
    if kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if kind == "integer":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {text!r}")
        return int(value)
    if kind == "list":
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"invalid JSON list {text!r}") from None
            if not isinstance(value, list):  # pragma: no cover
                raise ValueError(f"expected a list, got {text!r}")
            return value
        return [part.strip() for part in text.split(LIST_SEPARATOR) if part.strip()]
    # open map key: infer
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in low else number
