"""Rule packs: the declarative files that hold gestures and rules.

A pack is YAML (or an in-memory dict from a plugin). Loading validates everything (schema,
fields, operators, value types, placeholders, gesture references) before anything is
compiled, and reports each problem as ``file:line: field.path: message``. An invalid pack
never half-loads. This module holds the models; validating and loading are in
``pack_loading`` (re-exported here), reading files in ``pack_yaml``, the caps in
``pack_limits``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from .conditions import Atom
from .context import STAFF_LEVELS, StaffLevel, field_kind

__all__ = ["Gesture", "CostFormula", "Rule", "Pack", "load_pack", "load_packs", "pack_from_data", "check_pack_data",
           "pack_files", "expand_paths", "pattern_problems", "rulebook_problems", "located", "pack_json_schema",
           "CATEGORIES", "TIERS"]

CATEGORIES = (
    "fee_waiver", "freebie", "upgrade", "referral", "information", "follow_up",
    "personal_touch", "loyalty_reward", "service_recovery", "speed",
)
Category = Literal[
    "fee_waiver", "freebie", "upgrade", "referral", "information", "follow_up",
    "personal_touch", "loyalty_reward", "service_recovery", "speed",
]
#: recover a negative experience / meet expectations / exceed them (the unexpected extra).
TIERS = ("recover", "meet", "exceed")
Tier = Literal["recover", "meet", "exceed"]
Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,79}$")]


class _Spec(BaseModel):
    # strict: a pack says what it means (priority: true or '90' is an error, not 1 or 90)
    # defer_build: built on first use; a rulebook read from the warm cache validates no pack
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


def _default_label(data: Any) -> Any:
    """``label`` defaults to ``source`` (a plugin's gestures are labelled ``plugin:NAME``)."""
    if isinstance(data, dict) and not data.get("label"):
        return {**data, "label": data.get("source", "")}
    return data


def _number(value: Any) -> float | None:
    """A number from the context, or None (absent, or an attributes value that is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class CostFormula(_Spec):
    """A cost that grows with the case, within bounds: ``clamp(of * each, min, max)``, and never
    above the ``cap`` field's value (the customer's own loss) when that field is given.

    ``{of: interaction.delay_days, each: 5, min: 10, max: 50}``: 5 a day late, 10 to 50.
    """

    of: str
    each: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = 1.0
    min: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = 0.0
    max: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
    cap: str | None = None

    @field_validator("of", "cap")
    @classmethod
    def _numeric(cls, v: str | None) -> str | None:
        if v is not None and field_kind(v) not in ("number", "open"):
            raise ValueError(f"must be a numeric context field or an attributes key, got {v!r}")
        return v

    def fields(self) -> list[str]:
        return [self.of, *([self.cap] if self.cap else [])]

    def value(self, ctx: Any) -> float | None:
        base = _number(ctx.get(self.of))
        if base is None:
            return None
        cost = min(max(base * self.each, self.min), self.max)
        cap = _number(ctx.get(self.cap)) if self.cap else None
        return round(min(cost, cap) if cap is not None else cost, 2)


class Gesture(_Spec):
    """A service gesture a person can make: declared data, never code."""

    id: Id
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    category: Category
    tier: Tier
    cost: Union[float, str, CostFormula] = 0.0
    authority: StaffLevel = "synthetic"
    script: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    agent_note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    exclusive_group: Id | None = None
    #: The gesture joins ``exclusive_group`` on purpose, knowing another pack or plugin uses
    #: the same group (a trade's fee waiver in the core's ``fee_waiver``: one waiver per
    #: interaction, whoever offers it). ``recommender plugins --check`` reports a group used
    #: by two sources only when a gesture joining it has not said so.
    shares_group: bool = False
    conflicts_with: list[Id] = Field(default_factory=list)
    follow_up_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    #: The gesture contacts the customer later (a call, a message): never offered to a
    #: customer whose issue is how we contact them.
    contacts_customer: bool = False
    source: str = Field(default="", exclude=True)
    #: how the gesture's pack is named in responses (never a server path): see ``Pack.label``
    label: str = Field(default="", exclude=True)
    #: the line the gesture starts at in its pack file (None: not from a file)
    line: int | None = Field(default=None, exclude=True)

    _label = model_validator(mode="before")(_default_label)

    @field_validator("cost")
    @classmethod
    def _cost(cls, v: Union[float, str, CostFormula]) -> Union[float, str, CostFormula]:
        if isinstance(v, str):
            if field_kind(v) != "number":
                raise ValueError(f"cost must be a number or a numeric context field, got {v!r}")
        elif isinstance(v, CostFormula):
            return v
        elif not (0 <= v <= 1e9):
            raise ValueError("cost must be between 0 and 1e9")
        return v

    @field_validator("shares_group")
    @classmethod
    def _shares(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("exclusive_group") is None:
            raise ValueError("needs an exclusive_group: the group the gesture joins on purpose")
        return v

    def cost_for(self, ctx: Any) -> float | None:
        """The gesture's cost in this context (None when it comes from a missing field)."""
        if isinstance(self.cost, str):
            value = ctx.get(self.cost)
            return None if value is None else float(value)
        if isinstance(self.cost, CostFormula):
            return self.cost.value(ctx)
        return float(self.cost)

    def cost_fields(self) -> list[str]:
        """The context fields the cost reads."""
        if isinstance(self.cost, str):
            return [self.cost]
        if isinstance(self.cost, CostFormula):
            return self.cost.fields()
        return []

    def authority_rank(self) -> int:
        return STAFF_LEVELS.index(self.authority)


class Rule(_Spec):
    """When the conditions hold, recommend ``then`` because of a stated principle."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True, defer_build=True)

    id: Id
    when: Any
    then: Union[Id, list[Id]]
    priority: Annotated[int, Field(ge=0, le=100)] = 50
    because: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    description: str | None = None
    source: str = Field(default="", exclude=True)
    #: how the rule's pack is named in responses (never a server path): see ``Pack.label``
    label: str = Field(default="", exclude=True)
    line: int | None = Field(default=None, exclude=True)
    then_line: int | None = Field(default=None, exclude=True)
    condition: Any = Field(default=None, exclude=True)
    branches: tuple[tuple[Atom, ...], ...] = Field(default=(), exclude=True)

    _label = model_validator(mode="before")(_default_label)

    @field_validator("then", mode="before")
    @classmethod
    def _then(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("a rule must recommend at least one gesture: 'then' is empty")
        return v

    @property
    def gesture_ids(self) -> list[str]:
        return [self.then] if isinstance(self.then, str) else list(self.then)


class _PackFile(_Spec):
    pack: Id
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)] = "1"
    description: str = ""
    gestures: list[dict[str, Any]] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)


class Pack(BaseModel):
    """A validated pack: its gestures and rules, each rule parsed into DNF branches."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    version: str
    description: str = ""
    #: where the pack was read from: a file path, or ``<memory:NAME>``, ``plugin:NAME``. Only
    #: in messages for whoever edits the pack, never in responses (see ``label``).
    source: str
    #: how the pack is named in responses: its plugin (or ``core``) and its path relative
    #: to the folder it was loaded from, e.g. ``core:rules/loyalty.yaml``; never a server path
    label: str = ""
    gestures: tuple[Gesture, ...]
    rules: tuple[Rule, ...]
    digest: str

    _label = model_validator(mode="before")(_default_label)

    @classmethod
    def from_data(cls, data: Any, source: str, label: str | None = None) -> "Pack":
        return pack_from_data(data, source, label)


def _public_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, f in model.model_fields.items() if not f.exclude]


def pack_json_schema() -> dict[str, Any]:
    """JSON Schema of a rule pack file, for editor completion."""
    from .conditions import OPS

    condition = {
        "oneOf": [
            {"type": "string", "description": "'field op value', e.g. 'customer.tenure_years ge 2'",
             "pattern": r"^\S+\s+(" + "|".join(OPS) + r"|==|!=|<|<=|>|>=)(\s+.+)?$"},
            {"type": "object", "additionalProperties": False, "required": ["field", "op"],
             "properties": {"field": {"type": "string"}, "op": {"enum": list(OPS)}, "value": {}}},
            {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
             "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/when"}},
                            "any": {"type": "array", "items": {"$ref": "#/$defs/when"}},
                            "not": {"$ref": "#/$defs/when"}}},
        ]
    }
    gesture = Gesture.model_json_schema()
    rule = Rule.model_json_schema()
    for schema, model in ((gesture, Gesture), (rule, Rule)):  # what the loader sets, never the author
        for name in set(model.model_fields) - set(_public_fields(model)):
            schema["properties"].pop(name, None)
    rule["properties"]["when"] = {"$ref": "#/$defs/when"}
    for option in rule["properties"]["then"].get("anyOf", []):
        if option.get("type") == "array":
            option["minItems"] = 1
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "recommender rule pack",
        "type": "object",
        "additionalProperties": False,
        "required": ["pack"],
        "properties": {
            "pack": {"type": "string"},
            "version": {"type": "string"},
            "description": {"type": "string"},
            "gestures": {"type": "array", "items": gesture},
            "rules": {"type": "array", "items": rule},
        },
        "$defs": {"when": condition, **gesture.pop("$defs", {}), **rule.pop("$defs", {})},
    }


# Validation and loading need the models above: they live in pack_loading and are
# re-exported here, where callers have always found them.
from .pack_loading import (  # noqa: E402
    check_pack_data, expand_paths, load_pack, load_packs, located, pack_files, pack_from_data, pattern_problems,
    rulebook_problems,
)
