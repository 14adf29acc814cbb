"""What the store accepts, and time arithmetic that cannot overflow.

SQLite and PostgreSQL must accept and reject the same values, or a customer's history
would depend on the database behind it. PostgreSQL's ``text`` and ``jsonb`` cannot hold a
NUL character (SQLite can), neither driver can encode a lone UTF-16 surrogate, and
``jsonb`` refuses NaN and Infinity (SQLite's JSON keeps them). So every string and JSON
value is checked here before it reaches either database, and refused with
:class:`InvalidStoreInput` naming the field, whatever the database.

Times: a decision's reference time is ``interaction.occurred_at``, which must lie in the
years 1900 to 2200 (the context's own window). History read back may be older or newer
(rows logged before that window was enforced), so every window the store computes
saturates at the ends of the calendar instead of raising ``OverflowError``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable

from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from ..context import MAX_YEAR, MIN_YEAR
from .errors import InvalidStoreInput

__all__ = ["check_text", "check_json", "checked_json", "CheckedJson", "dumps", "SUSPECT_ESCAPE", "check_occurred_at", "shift", "local_date", "next_day",
           "in_window", "MIN_TIME", "MAX_TIME", "MIN_YEAR", "MAX_YEAR"]

# The years a decision may be dated in (``interaction.occurred_at``): the context's window,
# defined once in :mod:`recommender.context` (re-exported here for the store's callers).
MIN_TIME = datetime(MIN_YEAR, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(MAX_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
_FIRST = datetime.min.replace(tzinfo=timezone.utc)
_LAST = datetime.max.replace(tzinfo=timezone.utc)

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_MAX_DEPTH = 64


def _bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored on every database (None if it can)."""
    hit = _BAD_CHAR.search(value)
    if hit is None:
        return None
    if hit.group() == "\x00":
        return "must not contain NUL (\\u0000) characters"
    return f"must be valid Unicode text (a lone surrogate at position {hit.start()})"


def check_text(value: Any, field: str, *, max_length: int, empty: bool = False) -> str:
    """``value`` as a string the store can keep, else :class:`InvalidStoreInput` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidStoreInput(f"{field}: expected a string, got {type(value).__name__}", field=field)
    if not empty and not value.strip():
        raise InvalidStoreInput(f"{field}: must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidStoreInput(f"{field}: at most {max_length} characters, got {len(value)}", field=field)
    reason = _bad_text(value)
    if reason is not None:
        raise InvalidStoreInput(f"{field}: {reason}", field=field)
    return value


def check_json(value: Any, field: str) -> None:
    """Raise :class:`InvalidStoreInput` (naming the path) for a JSON value some database would refuse:
    a string or key with NUL or a lone surrogate, a non-finite number, a non-JSON type, or nesting
    deeper than 64 levels. Dates and datetimes pass (a model dumped in Python mode holds them).

    Fast path (:func:`_clean_text`): the value's JSON text shows there is nothing to refuse;
    otherwise the walk (:func:`_walk`) finds what, and names it."""
    if _clean_text(value, dates=True) is None:
        _walk(value, field)


def _walk(value: Any, field: str) -> None:
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise InvalidStoreInput(f"{path}: nested deeper than {_MAX_DEPTH} levels", field=path)
        if item is None or isinstance(item, (bool, int, date)):  # a date(time) is written as ISO text
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidStoreInput(f"{path}: numbers must be finite (no NaN or Infinity)", field=path)
        elif isinstance(item, str):
            reason = _bad_text(item)
            if reason is not None:
                raise InvalidStoreInput(f"{path}: {reason}", field=path)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidStoreInput(f"{path}: keys must be strings", field=path)
                where = f"{path}.{key}" if path else key
                reason = _bad_text(key)
                if reason is not None:
                    raise InvalidStoreInput(f"{where}: the key {reason}", field=where)
                stack.append((sub, where, depth + 1))
        elif isinstance(item, (list, tuple)):
            for i, sub in enumerate(item):
                stack.append((sub, f"{path}.{i}" if path else str(i), depth + 1))
        else:
            raise InvalidStoreInput(f"{path}: {type(item).__name__} is not a JSON value", field=path)


#: In JSON text (ASCII-escaped): a NUL or a surrogate (a lone one, or half of a valid pair).
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _iso(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _clean_text(value: Any, *, dates: bool = False, default: Callable[[Any], Any] | None = None) -> str | None:
    """``value``'s JSON text when the text itself shows that nothing :func:`check_json` refuses
    is there (no NaN or Infinity, JSON types only, no NUL or surrogate escape, fewer brackets
    than the nesting limit, string keys only); None when the walk must decide (a valid pair of
    surrogates, deep nesting, a number key that ``json.dumps`` would turn into text)."""
    try:
        text = json.dumps(value, allow_nan=False, default=default or (_iso if dates else None))
    except (ValueError, TypeError, RecursionError):
        return None
    if (SUSPECT_ESCAPE.search(text) is not None or text.count("[") + text.count("{") > _MAX_DEPTH
            or not _str_keys(value)):
        return None
    return text


class CheckedJson:
    """A JSON value's text, already checked: the engines' serializer (:func:`dumps`) writes it
    as it is rather than encoding and checking the value a second time."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


#: A bare NaN or Infinity in JSON text, as ``to_json(..., inf_nan_mode="constants")`` writes
#: them (one inside a string may match too: the walk then decides).
_NON_FINITE = re.compile(r"(?:^|[:,\[])-?(?:NaN|Infinity)")


def checked_json(value: Any, field: str, json_value: Callable[[], Any] | None = None) -> Any:
    """:func:`check_json`, returning what to bind for a JSON column, so a logged row is encoded
    once. For what the decision log writes: a model's dump (``value`` may be its Python-mode
    dump; ``json_value()`` its JSON-mode dump) or rows the store builds, whose maps have string
    keys by construction. The text is pydantic's JSON of ``value`` (date-times as its JSON mode
    writes them, so it parses to what :func:`dumps` would write for ``json_value()``); the walk
    runs only when the text shows something to refuse (NaN or Infinity, a NUL, deep nesting)
    or cannot be written (a lone surrogate, a type JSON has no form for), and then decides as
    before: it refuses, naming the field, or ``json_value()`` (else ``value``) is bound."""
    try:
        text: str | None = to_json(value, inf_nan_mode="constants").decode()
    except (PydanticSerializationError, UnicodeError):
        text = None
    if (text is None or (("NaN" in text or "Infinity" in text) and _NON_FINITE.search(text) is not None)
            or "\\u0000" in text
            or text.count("[") + text.count("{") > _MAX_DEPTH):
        check_json(value, field)
        return json_value() if json_value is not None else value
    return CheckedJson(text)


def _json_time(value: Any) -> Any:
    """A date-time as pydantic's JSON mode writes it (the context's only non-JSON type)."""
    if isinstance(value, (date, time)):
        return to_jsonable_python(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> str:
    """The engines' JSON serializer: refuses what :func:`check_json` refuses, on both databases
    (a safety net: callers check first, with better field names); a :class:`CheckedJson` is
    written as its text."""
    if type(value) is CheckedJson:
        return value.text
    text = _clean_text(value)
    if text is None:
        check_json(value, "")
        text = json.dumps(value, allow_nan=False)
    return text


def _str_keys(value: Any) -> bool:
    """True when every mapping in ``value`` has only string keys (``json.dumps`` would silently
    turn a number key into text, which :func:`check_json` refuses)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return False
                if isinstance(sub, (dict, list, tuple)):
                    stack.append(sub)
        elif isinstance(item, (list, tuple)):
            stack.extend(sub for sub in item if isinstance(sub, (dict, list, tuple)))
    return True


def check_occurred_at(when: datetime, field: str = "interaction.occurred_at") -> datetime:
    """``when`` (aware, UTC) if it lies in the years 1900-2200, else :class:`InvalidStoreInput`."""
    if not MIN_TIME <= when <= MAX_TIME:
        raise InvalidStoreInput(f"{field}: date must lie between the years {MIN_YEAR} and {MAX_YEAR}, "
                                f"got {when.isoformat()}", field=field)
    return when


def in_window(when: datetime) -> bool:
    """True for a stored time inside the years 1900-2200 (older rows may lie outside)."""
    return MIN_TIME <= when <= MAX_TIME


def shift(when: datetime, days: float) -> datetime:
    """``when`` moved by ``days``, saturating at the first or last representable instant."""
    try:
        return when + timedelta(days=days)
    except OverflowError:
        return _LAST if days > 0 else _FIRST


def local_date(when: datetime, tz: tzinfo) -> date:
    """The calendar day of ``when`` in ``tz`` (UTC's day where the zone's would not exist)."""
    try:
        return when.astimezone(tz).date()
    except (OverflowError, ValueError):
        return when.astimezone(timezone.utc).date()


def next_day(day: date) -> date:
    """The day after ``day`` (``date.max`` stays ``date.max``)."""
    return day if day == date.max else day + timedelta(days=1)
