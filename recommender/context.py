"""The interaction context: the one input every recommendation starts from.

Field names here are the public contract (rules, scripts and integrators address them by
dotted path, e.g. ``customer.tenure_years``). Extend, never rename. The models are strict:
a number sent as a string is an error, not a silent string comparison inside the engine.
"""

from __future__ import annotations

import math
import re
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints,
                      ValidationError, WithJsonSchema, model_validator)

from .errors import ContextError

__all__ = [
    "Context",
    "Customer",
    "Interaction",
    "Staff",
    "Business",
    "Channel",
    "StaffLevel",
    "STAFF_LEVELS",
    "parse_context",
    "field_kind",
    "FieldKind",
]

Channel = Literal["pos", "in_person", "phone", "helpdesk", "web", "email", "chat", "mail", "other"]
StaffLevel = Literal["synthetic", "genuine", "super"]
#: Staff levels from least to most empowered (the seeds' synthetic / genuine / super service).
STAFF_LEVELS: tuple[str, ...] = ("synthetic", "genuine", "super")

# Every bound a context is checked against, each defined once here and imported wherever
# else it applies (the CLI, the service, the store, the pack checks); docs/http.md's "Limits"
# table cites them and tests/test_limits.py holds the two together. The bounds keep every
# value inside what durable-rules compares exactly (integers within +-2**53, finite floats,
# strings far below its 64 KiB regex window, no NUL) and every refusal cheap.
#: Money and other open-ended amounts (cost, budget, amount, lifetime value, actual cost).
MAX_NUMBER = 1e12
#: Integers in open maps: a double holds every integer exactly only within +-2**53.
MAX_EXACT_INT = 2**53
#: The largest context accepted as JSON text, in bytes (UTF-8), from the library, the CLI and
#: the service alike; a dict is bounded by its fields' limits.
MAX_CONTEXT_BYTES = 1_000_000
#: Dates a context may carry: anything outside is a typo or a placeholder, never a visit.
MIN_YEAR, MAX_YEAR = 1900, 2200
#: Characters in a text (ids, string values of open maps) and in a name or list item.
MAX_TEXT_CHARS = 2000
MAX_NAME_CHARS = 200
#: Items in a list, keys in an open map, fields in any object of the context.
MAX_ITEMS = 100
#: Characters in an open map's key and in an id (issue, business, tier).
MAX_KEY_CHARS = 64
MAX_ID_CHARS = 128
#: Counts (lifetime visits, repeat contacts).
MAX_COUNT = 1_000_000


def new_list() -> list[Any]:
    """``default_factory`` of a list field: pydantic reads a Python function's signature at
    once, while ``list``'s is parsed from its text by ``tokenize`` (its first use compiles a
    large regular expression), for every such field of every model it builds at start-up."""
    return []


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _exact_int(value: int) -> int:
    if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        raise ValueError(f"integers must lie within +-2**53 ({MAX_EXACT_INT}) to be compared exactly")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: str) -> str:
    # The engine cannot encode a lone UTF-16 surrogate (pydantic's own str refuses one; an
    # open map's value is checked here, or it reaches the engine as an EngineError).
    hit = _SURROGATE.search(value)
    if hit is not None:
        raise ValueError(f"must be valid Unicode text (a lone surrogate at position {hit.start()})")
    return value


Key = Annotated[str, StringConstraints(pattern=rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_KEY_CHARS - 1}}}$")]
def _not_blank(value: str) -> str:
    # An id the store looks a customer (or a member of staff) up by: blank is no id.
    if not value.strip():
        raise ValueError("must not be empty or only spaces (leave the id out instead)")
    return value


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(_no_nul)]
Slug = Annotated[str, StringConstraints(pattern=rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,{MAX_ID_CHARS - 1}}}$")]
Number = Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _scalar(value: Any) -> Any:
    """An open map's value: a boolean, an exactly comparable number, or a short clean string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _exact_int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"strings are at most {MAX_TEXT_CHARS} characters")
        return _lone_surrogate(_no_nul(value))
    raise ValueError(f"expected a boolean, number or string, got {type(value).__name__}")


Scalar = Annotated[Any, PlainValidator(_scalar),
                   WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "number"}, {"type": "string", "maxLength": MAX_TEXT_CHARS}]})]


def _few_keys(value: Any) -> Any:
    """Refuse an oversized object before its entries are validated: pydantic checks a map's
    length (and unknown fields) after validating every entry, one error each, so a million
    bad keys would cost gigabytes before the refusal."""
    if isinstance(value, dict) and len(value) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} keys, got {len(value)}")
    return value


# Maps are kept in key order so equal contexts serialise identically (the receipt's hash).
Scalars = Annotated[dict[Key, Scalar], Field(max_length=MAX_ITEMS), BeforeValidator(_few_keys),
                    AfterValidator(lambda d: dict(sorted(d.items())))]


def _iso_datetime(value: Any) -> Any:
    """A date-time is an ISO 8601 string (or a datetime), never a bare number."""
    if isinstance(value, (int, float)):
        raise ValueError("expected an ISO 8601 date-time string, e.g. 2026-03-01T10:00:00Z")
    return value


def _sane_year(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"date must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


When = Annotated[datetime, BeforeValidator(_iso_datetime), Field(strict=False), AfterValidator(_sane_year)]
Tags = Annotated[list[Name], Field(max_length=MAX_ITEMS)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        return _few_keys(data)


class Customer(_Model):
    """Who is being served. Everything is optional: a walk-in has no history."""

    id: Text | None = None
    name: Name | None = None
    tenure_years: Annotated[float, Field(ge=0, le=200, allow_inf_nan=False)] | None = None
    #: None is unknown, never zero: a rule on it does not match and it is reported missing.
    lifetime_value: Number | None = None
    visits_last_year: Annotated[int, Field(ge=0, le=100_000)] | None = None
    #: Lifetime visits (or orders, stays, contacts) including this one: 2+ is a returning customer.
    visits: Count | None = None
    tier: Slug | None = None
    is_new: bool | None = None
    is_vip: bool | None = None
    life_events: Tags = Field(default_factory=new_list)
    interests: Tags = Field(default_factory=new_list)
    preferences: Scalars = Field(default_factory=dict)
    consents: Tags = Field(default_factory=new_list)
    #: Filled from memory (a store) or by plugins; callers may pass them too.
    last_visit_days: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)] | None = None
    prior_issues: Tags = Field(default_factory=new_list)
    recent_gestures: Tags = Field(default_factory=new_list)
    attributes: Scalars = Field(default_factory=dict)
    #: Derived per business from its profile (:mod:`recommender.profile`) unless given:
    #: loyal and high-value on *this* business's scale, and returning (2+ visits).
    loyal: bool | None = None
    high_value: bool | None = None
    returning: bool | None = None
    #: With a store: where the customer stands among the business's own customers (0-100).
    value_percentile: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    tenure_percentile: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _derive_is_new(self) -> "Customer":
        # A customer in their first quarter-year is "new" unless the caller says otherwise.
        if self.is_new is None and self.tenure_years is not None:
            self.is_new = self.tenure_years < 0.25
        return self


class Interaction(_Model):
    """What is happening now: the issue, what fixing it costs, how it reached us."""

    issue: Slug
    cost: Number | None = None
    #: None is unknown: till-only or phone-only rules do not fire on an unknown channel.
    channel: Channel | None = None
    wait_minutes: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] | None = None
    delay_days: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)] | None = None
    repeat_issue: bool | None = None
    #: Earlier contacts about this same issue (0: first contact). ``repeat_issue`` is the flag.
    repeat_count: Count | None = None
    #: The customer escalated or disputed the case (a regulator, an ombudsman, a chargeback,
    #: or they rejected our first answer).
    escalated: bool | None = None
    #: Money at stake for the customer: a disputed charge, an order's value, a claim.
    amount: Number | None = None
    sentiment: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = None
    budget: Number | None = None
    occurred_at: When | None = None
    attributes: Scalars = Field(default_factory=dict)
    #: Derived from the issue vocabulary and the signals above (:mod:`recommender.issues`)
    #: unless given: the issue's family, and severity 0 (none) to 4 (critical).
    family: Slug | None = None
    severity: Annotated[int, Field(ge=0, le=4)] | None = None
    #: Derived unless given: the wait reached the business's ``long_wait_minutes``.
    long_wait: bool | None = None


class Staff(_Model):
    """Who will make the gesture: it must fit their authority."""

    level: StaffLevel = "genuine"
    id: Text | None = None


class Business(_Model):
    """The tenant and its trade; selects which plugins and packs apply."""

    id: Slug = "default"
    vertical: Slug | None = None
    store_id: Slug | None = None


class Context(_Model):
    """One interaction, as handed to :meth:`Recommender.recommend`."""

    customer: Customer = Field(default_factory=Customer)
    interaction: Interaction
    staff: Staff = Field(default_factory=Staff)
    business: Business = Field(default_factory=Business)

    def get(self, path: str) -> Any:
        """Value at a dotted path (``customer.tenure_years``), or None when absent."""
        node: Any = self
        for part in path.split("."):
            if isinstance(node, BaseModel):
                node = getattr(node, part, None)
            elif isinstance(node, dict):
                node = node.get(part)
            else:
                return None
            if node is None:
                return None
        return node


def parse_context(data: Context | dict[str, Any] | str | bytes) -> Context:
    """Validate a context given as a model, a dict, or JSON text; raise :class:`ContextError`."""
    if isinstance(data, Context):
        return data
    if isinstance(data, (str, bytes)) and _json_bytes(data) > MAX_CONTEXT_BYTES:
        raise ContextError([("<context>", f"a context is at most {MAX_CONTEXT_BYTES} bytes of JSON")])
    try:
        if isinstance(data, (str, bytes)):
            return Context.model_validate_json(without_bom(data))
        return Context.model_validate(data)
    except ValidationError as exc:
        raise ContextError.from_pydantic(exc) from None
    except (RecursionError, ValueError) as exc:  # absurd nesting, numbers too long to read
        raise ContextError([("<context>", f"unreadable context: {type(exc).__name__}")]) from None


def without_bom(text: str | bytes) -> str | bytes:
    """JSON text without one leading byte order mark, as the CLI reads files (``utf-8-sig``):
    Windows editors save UTF-8 with one, and RFC 8259 lets a parser ignore it. The library,
    the CLI and the service all accept it (the size bound counts it)."""
    if isinstance(text, bytes):
        return text[3:] if text.startswith(b"\xef\xbb\xbf") else text
    return text[1:] if text.startswith("\ufeff") else text


def _json_bytes(data: str | bytes) -> int:
    """The size of JSON text in UTF-8 bytes, as the CLI and the service count it (a character
    takes 1 to 4 bytes, so only text near the bound is encoded to measure it)."""
    if isinstance(data, bytes) or len(data) > MAX_CONTEXT_BYTES or 4 * len(data) <= MAX_CONTEXT_BYTES:
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


# -- field kinds: what the rule compiler needs to type-check a condition -------------

FieldKind = Literal["number", "string", "bool", "list", "datetime"]
_OPEN_MAPS = {"customer.preferences", "customer.attributes", "interaction.attributes"}


def _kind_of(annotation: Any) -> FieldKind | Literal["model"] | None:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _kind_of(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds = {_kind_of(a) for a in typing.get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    if origin is Literal:
        return "string"
    if origin is list:
        return "list"
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    if annotation is str:
        return "string"
    if annotation is datetime:
        return "datetime"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    return None


def field_kind(path: str) -> FieldKind | Literal["open"] | None:
    """The kind of value at ``path``, ``"open"`` for a key under an open map, None if unknown.

    Keys under ``customer.preferences``, ``customer.attributes`` and
    ``interaction.attributes`` are open: their kind comes from how rules use them.
    """
    parts = path.split(".")
    for open_map in _OPEN_MAPS:
        prefix = open_map.split(".")
        if parts[:2] == prefix and len(parts) == 3 and parts[2]:
            return "open"
    model: type[BaseModel] = Context
    for i, part in enumerate(parts):
        info = model.model_fields.get(part)
        if info is None:
            return None
        kind = _kind_of(info.annotation)
        if kind == "model":
            inner = info.annotation
            if i == len(parts) - 1 or not (isinstance(inner, type) and issubclass(inner, BaseModel)):
                return None
            model = inner
            continue
        return kind if i == len(parts) - 1 else None
    return None


def field_nullable(path: str) -> bool:
    """Whether a field can be absent from a validated context (lists and defaults never are)."""
    kind = field_kind(path)
    if kind == "open":
        return True
    if kind in (None, "list"):
        return False
    model: type[BaseModel] = Context
    parts = path.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    info = model.model_fields[parts[-1]]
    return info.default is None and not info.is_required()


def known_paths() -> list[str]:
    """Every addressable leaf path of the context (for suggestions and the rule schema)."""
    out: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, path + ".")
            else:
                out.append(path)

    walk(Context, "")
    return out
