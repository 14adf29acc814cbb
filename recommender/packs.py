"""Rule packs: the declarative files that hold gestures and rules.

A pack is YAML (or an in-memory dict from a plugin). Loading validates everything (schema,
fields, operators, value types, placeholders, gesture references) before anything is
compiled, and reports each problem as ``file:line: field.path: message``. An invalid pack
never half-loads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from .conditions import ConditionError, Node, parse_when, to_dnf, Atom
from .context import STAFF_LEVELS, StaffLevel, field_kind
from .errors import PackProblem, RulePackError
from .templates import TemplateError, placeholders

__all__ = ["Gesture", "CostFormula", "Rule", "Pack", "load_pack", "load_packs", "pack_from_data", "CATEGORIES", "TIERS"]

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
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        if v is not None and field_kind(v) != "number":
            raise ValueError(f"must be a numeric context field, got {v!r}")
        return v

    def fields(self) -> list[str]:
        return [self.of, *([self.cap] if self.cap else [])]

    def value(self, ctx: Any) -> float | None:
        base = ctx.get(self.of)
        if base is None:
            return None
        cost = min(max(float(base) * self.each, self.min), self.max)
        cap = ctx.get(self.cap) if self.cap else None
        return round(min(cost, float(cap)) if cap is not None else cost, 2)


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
    conflicts_with: list[Id] = Field(default_factory=list)
    follow_up_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    #: The gesture contacts the customer later (a call, a message): never offered to a
    #: customer whose issue is how we contact them.
    contacts_customer: bool = False
    source: str = Field(default="", exclude=True)

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

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: Id
    when: Any
    then: Union[Id, list[Id]]
    priority: Annotated[int, Field(ge=0, le=100)] = 50
    because: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    description: str | None = None
    source: str = Field(default="", exclude=True)
    line: int | None = Field(default=None, exclude=True)
    then_line: int | None = Field(default=None, exclude=True)
    condition: Any = Field(default=None, exclude=True)
    branches: tuple[tuple[Atom, ...], ...] = Field(default=(), exclude=True)

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

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    description: str = ""
    source: str
    gestures: tuple[Gesture, ...]
    rules: tuple[Rule, ...]
    digest: str

    @classmethod
    def from_data(cls, data: Any, source: str) -> "Pack":
        return pack_from_data(data, source)


def _line_of(root: Any, loc: Sequence[Any]) -> int | None:
    """Walk ruamel nodes along a pydantic ``loc`` and return the deepest known line."""
    node, line = root, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                pos = lc.item(key) if isinstance(key, int) else lc.key(key)
                line = int(pos[0]) + 1
            node = node[key]
        except Exception:
            break
    return line


def _loc_str(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pack_from_data(data: Any, source: str) -> Pack:
    """Validate one pack given as parsed YAML (ruamel nodes) or a plain dict."""
    problems: list[PackProblem] = []
    if not isinstance(data, dict):
        raise RulePackError([PackProblem(source, _line_of(data, []), "", "a rule pack is a mapping with 'pack', 'gestures' and 'rules'")])
    try:
        head = _PackFile.model_validate(dict(data))
    except ValidationError as exc:
        for err in exc.errors():
            loc = err["loc"]
            problems.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), err["msg"]))
        raise RulePackError(problems) from None

    gestures: list[Gesture] = []
    for i, raw in enumerate(head.gestures):
        try:
            g = Gesture.model_validate({**dict(raw), "source": source})
            for ph in placeholders(g.script):
                if field_kind(ph.path) is None:
                    raise TemplateError(f"script placeholder {{{ph.path}}} is not a context field")
            gestures.append(g)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ("gestures", i, *err["loc"])
                problems.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), err["msg"]))
        except TemplateError as exc:
            loc = ("gestures", i, "script")
            problems.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), str(exc)))

    rules: list[Rule] = []
    for i, raw in enumerate(head.rules):
        base = ("rules", i)
        raw_node = data["rules"][i]
        try:
            rule = Rule.model_validate({**dict(raw), "source": source, "line": _line_of(data, base),
                                        "then_line": _line_of(data, (*base, "then"))})
        except ValidationError as exc:
            for err in exc.errors():
                loc = (*base, *err["loc"])
                problems.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), err["msg"]))
            continue
        when_line = _line_of(data, (*base, "when"))
        try:
            node: Node = parse_when(raw_node["when"], _loc_str((*base, "when")), when_line)
            branches = to_dnf(node)
        except ConditionError as exc:
            problems.append(PackProblem(source, exc.line or when_line, exc.path, str(exc)))
            continue
        from .conditions import MAX_BRANCHES

        if len(branches) > MAX_BRANCHES:
            problems.append(PackProblem(source, when_line, _loc_str((*base, "when")),
                                        f"condition expands to more than {MAX_BRANCHES} alternatives; split the rule"))
            continue
        rules.append(rule.model_copy(update={"condition": node, "branches": tuple(branches)}))

    if problems:
        raise RulePackError(problems)
    digest = hashlib.sha256(
        json.dumps(_plain(data), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return Pack(
        name=head.pack, version=head.version, description=head.description, source=source,
        gestures=tuple(gestures), rules=tuple(rules), digest=digest,
    )


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def load_pack(path: str | Path) -> Pack:
    """Read and validate one YAML pack file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulePackError([PackProblem(str(p), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    yaml = YAML(typ="rt", pure=True)
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RulePackError([PackProblem(str(p), line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except Exception as exc:  # ruamel raises a few non-Marked errors (duplicate keys, ...)
        raise RulePackError([PackProblem(str(p), None, "", f"invalid YAML: {exc}")]) from None
    return pack_from_data(data, str(p))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files given directly, plus every ``*.yaml``/``*.yml`` under given folders (sorted)."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            out.extend(sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]))
        else:
            out.append(p)
    return out


def load_packs(paths: Iterable[str | Path]) -> list[Pack]:
    """Load every pack under ``paths``; all problems of all files are reported together."""
    packs: list[Pack] = []
    problems: list[PackProblem] = []
    files = expand_paths(paths)
    if not files:
        raise RulePackError([PackProblem(", ".join(map(str, paths)) or "<none>", None, "", "no rule pack files found")])
    for f in files:
        try:
            packs.append(load_pack(f))
        except RulePackError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RulePackError(problems)
    return packs


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
    gesture["properties"].pop("source", None)
    rule = Rule.model_json_schema()
    for k in ("source", "line", "condition", "branches"):
        rule["properties"].pop(k, None)
    rule["properties"]["when"] = {"$ref": "#/$defs/when"}
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
