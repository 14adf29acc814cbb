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
from typing import Annotated, Any, Iterable, Literal, Sequence, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from . import pack_limits
from .conditions import Atom, ConditionError, Node, check_branches, did_you_mean, parse_when_all, to_dnf
from .context import STAFF_LEVELS, StaffLevel, field_kind, known_paths
from .errors import PackProblem, RulePackError, sort_problems
from .pack_yaml import read_pack_file
from .templates import TemplateError, placeholders

__all__ = ["Gesture", "CostFormula", "Rule", "Pack", "load_pack", "load_packs", "pack_from_data", "check_pack_data",
           "pack_files", "pattern_problems", "rulebook_problems", "CATEGORIES", "TIERS"]

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
_M = TypeVar("_M", bound=BaseModel)


class _Spec(BaseModel):
    # strict: a pack says what it means (priority: true or '90' is an error, not 1 or 90)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _default_label(data: Any) -> Any:
    """``label`` defaults to ``source`` (a plugin's gestures are labelled ``plugin:NAME``)."""
    if isinstance(data, dict) and not data.get("label"):
        return {**data, "label": data.get("source", "")}
    return data


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

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)

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

    model_config = ConfigDict(frozen=True)

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


#: Stand-ins for required fields that failed validation, so that the rest of an invalid
#: gesture or rule can still be checked against the other packs (such a pack never loads).
_STAND_INS: dict[str, Any] = {"title": "?", "script": "?", "category": "freebie", "tier": "meet", "because": "?",
                              "when": None}


def _public_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _schema_problems(exc: ValidationError, base: tuple[Any, ...], data: Any, source: str,
                     model: type[BaseModel]) -> list[PackProblem]:
    out = []
    for err in exc.errors():
        loc = (*base, *err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            message += did_you_mean(str(err["loc"][0]), _public_fields(model))
        out.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), message))
    return out


def _stand_in(model: type[_M], values: dict[str, Any], exc: ValidationError) -> _M | None:
    """``values`` without the fields that failed (required ones replaced by stand-ins)."""
    bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
    fixed = {k: v for k, v in values.items() if k not in bad}
    fixed.update({k: _STAND_INS[k] for k in bad if k in _STAND_INS})
    try:
        return model.model_validate(fixed)
    except ValidationError:
        return None


def pack_from_data(data: Any, source: str, label: str | None = None) -> Pack:
    """Validate one pack given as parsed YAML (ruamel nodes) or a plain dict; raise
    :class:`RulePackError` listing every problem. ``label`` names the pack in responses
    (default: ``source``)."""
    pack, problems = check_pack_data(data, source, label)
    if problems:
        raise RulePackError(problems)
    return pack


def check_pack_data(data: Any, source: str, label: str | None = None) -> tuple[Pack, list[PackProblem]]:
    """Every problem of one pack (schema, every condition of every rule, caps, patterns), and
    a pack of what is valid in it.

    With problems, the pack is only good for checking against other packs (ids, gesture
    references; invalid fields replaced by stand-ins) and must never be loaded.
    """
    label = label or source
    problems: list[PackProblem] = []
    empty = Pack(name="?", version="1", source=source, label=label, gestures=(), rules=(), digest="")
    if not isinstance(data, dict):
        problems.append(PackProblem(source, _line_of(data, []), "",
                                    "a rule pack is a mapping with 'pack', 'gestures' and 'rules'"))
        return empty, problems
    for key, cap in (("gestures", pack_limits.MAX_GESTURES_PER_PACK), ("rules", pack_limits.MAX_RULES_PER_PACK)):
        items = data.get(key)
        if isinstance(items, list) and len(items) > cap:  # the YAML reader stops earlier; this is for dicts
            problems.append(PackProblem(source, _line_of(data, (key,)), key,
                                        f"more than {cap} {key} in one pack ({len(items)}); split it into several packs"))
    if problems:
        return empty, problems
    try:
        head: _PackFile | None = _PackFile.model_validate(dict(data))
    except ValidationError as exc:
        head = None
        problems.extend(_schema_problems(exc, (), data, source, _PackFile))

    gestures: list[Gesture] = []
    raw_gestures = data.get("gestures")
    for i, raw in enumerate(raw_gestures if isinstance(raw_gestures, list) else []):
        if not isinstance(raw, dict):
            continue  # reported by the pack's schema
        base = ("gestures", i)
        values = {**raw, "source": source, "label": label, "line": _line_of(data, base)}
        try:
            g = Gesture.model_validate(values)
        except ValidationError as exc:
            problems.extend(_schema_problems(exc, base, data, source, Gesture))
            stand_in = _stand_in(Gesture, values, exc)
            if stand_in is not None:
                gestures.append(stand_in)
            continue
        try:
            for ph in placeholders(g.script):
                if field_kind(ph.path) is None:
                    raise TemplateError(f"script placeholder {{{ph.path}}} is not a context field"
                                        f"{did_you_mean(ph.path, known_paths())}")
        except TemplateError as exc:
            loc = (*base, "script")
            problems.append(PackProblem(source, _line_of(data, loc), _loc_str(loc), str(exc)))
        gestures.append(g)

    rules: list[Rule] = []
    patterns: list[tuple[Atom, str]] = []
    raw_rules = data.get("rules")
    for i, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        if not isinstance(raw, dict):
            continue  # reported by the pack's schema
        base = ("rules", i)
        values = {**raw, "source": source, "label": label, "line": _line_of(data, base),
                  "then_line": _line_of(data, (*base, "then"))}
        rule: Rule | None
        try:
            rule = Rule.model_validate(values)
        except ValidationError as exc:
            problems.extend(_schema_problems(exc, base, data, source, Rule))
            rule = _stand_in(Rule, values, exc)
        node: Node | None = None
        branches: tuple[tuple[Atom, ...], ...] = ()
        if "when" in raw:  # checked even when the rest of the rule is not: one pass finds everything
            where, when_line = _loc_str((*base, "when")), _line_of(data, (*base, "when"))
            node, errors = parse_when_all(raw["when"], where, when_line)
            if node is not None:
                try:
                    dnf = to_dnf(node)
                    errors = check_branches(dnf, where, when_line)
                except ConditionError as exc:
                    errors = [exc]
            problems.extend(PackProblem(source, e.line or when_line, e.path or where, str(e)) for e in errors)
            if node is not None and not errors:
                branches = tuple(dnf)
                patterns.extend((a, where) for b in branches for a in b if a.op == "contains" and a.kind == "string")
            else:
                node = None
        if rule is not None:
            rules.append(rule.model_copy(update={"condition": node, "branches": branches}))

    refused = pattern_problems(a.value for a, _ in patterns)
    reported: set[tuple[str, Any]] = set()
    for atom, where in patterns:
        why = refused.get(atom.value)
        if why is not None and (where, atom.value) not in reported:
            reported.add((where, atom.value))
            problems.append(PackProblem(source, atom.line, where, f"'contains' {atom.value!r} on {atom.field}: {why}"))

    if head is None:
        name = data.get("pack")
        return empty.model_copy(update={"name": name if isinstance(name, str) else "?", "gestures": tuple(gestures),
                                        "rules": tuple(rules)}), problems
    digest = "" if problems else hashlib.sha256(
        json.dumps(_plain(data), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return Pack(
        name=head.pack, version=head.version, description=head.description, source=source, label=label,
        gestures=tuple(gestures), rules=tuple(rules), digest=digest,
    ), problems


#: ``contains`` pattern -> why durable-rules cannot use it (None: it can), per process
_PATTERNS: dict[str, str | None] = {}


def pattern_problems(patterns: Iterable[str]) -> dict[str, str]:
    """Why durable-rules cannot use each of these ``contains`` patterns on text.

    Its regex compiler refuses some short repetitive patterns (``abaaaaabaaabaaab``: error
    503 for the whole ruleset) and silently never matches long ones, depending on the
    pattern's shape, not only its length. So each distinct pattern is tried once on the
    engine: compiled (together, bisected on a failure) and asserted against itself.
    """
    wanted = list(dict.fromkeys(patterns))
    todo = [p for p in wanted if p not in _PATTERNS]
    if todo:
        if len(_PATTERNS) > 10_000:
            _PATTERNS.clear()
        _PATTERNS.update(_try_patterns(todo))
    return {p: why for p in wanted if (why := _PATTERNS.get(p)) is not None}


def _try_patterns(patterns: list[str]) -> dict[str, str | None]:
    from .compiler import compile_branches
    from .engine import Matcher
    from .errors import EngineError

    field = {p: f"p{i}" for i, p in enumerate(patterns)}
    verdicts: dict[str, str | None] = {}
    for unit in compile_branches([(p, (Atom(field[p], "contains", p, "string"),)) for p in patterns], "probe"):
        mine: list[str] = list(unit.actions.values())
        try:
            matcher = Matcher([unit])
        except EngineError:
            if len(mine) > 1:
                for p in mine:
                    verdicts.update(_try_patterns([p]))
            else:
                verdicts[mine[0]] = ("durable-rules refuses this pattern (its matcher would grow too large); "
                                     "shorten it or make it less repetitive")
            continue
        try:
            value = {f: p for p, f in field.items()}
            fired, _ = matcher.match_row([value[f] for f in matcher.fields])
        finally:
            matcher.retire()
        for p in mine:
            verdicts[p] = None if p in fired else "durable-rules never matches this pattern, not even on itself; shorten it"
    return verdicts


def located(item: Gesture | Rule) -> str:
    """``file:line`` of a gesture or rule (its source alone when the line is unknown)."""
    return f"{item.source}:{item.line}" if item.line else item.source


def rulebook_problems(packs: Sequence[Pack]) -> list[PackProblem]:
    """The caps on what one business has in force (``pack_limits``), at the rule or gesture
    that crosses each."""
    out: list[PackProblem] = []
    caps = (("rules", pack_limits.MAX_RULES_PER_BOOK), ("gestures", pack_limits.MAX_GESTURES_PER_BOOK))
    for what, cap in caps:
        total = 0
        for pack in packs:
            items: Sequence[Rule | Gesture] = pack.rules if what == "rules" else pack.gestures
            if total + len(items) > cap:
                crossing = items[cap - total]
                out.append(PackProblem(pack.source, crossing.line, what,
                                       f"more than {cap} {what} in force for one business (at {crossing.id!r}); "
                                       "split the business's packs or select fewer plugins"))
                break
            total += len(items)
    return out


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def load_pack(path: str | Path, label: str | None = None) -> Pack:
    """Read and validate one YAML pack file (``label`` names it in responses; default: the
    file's name)."""
    p = Path(path)
    return pack_from_data(read_pack_file(p), str(p), label or p.name)


def pack_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Files given directly, plus every ``*.yaml``/``*.yml`` under given folders (sorted), each
    with its label: a file's name, or its path under the folder given, starting with the
    folder's own name (``rules/loyalty.yaml``)."""
    out: list[tuple[Path, str]] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            top = p.resolve().name
            for f in sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]):
                rel = f.relative_to(p).as_posix()
                out.append((f, f"{top}/{rel}" if top else rel))
        else:
            out.append((p, p.name))
    return out


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files given directly, plus every ``*.yaml``/``*.yml`` under given folders (sorted)."""
    return [f for f, _ in pack_files(paths)]


def load_packs(paths: Iterable[str | Path], origin: str | None = None) -> list[Pack]:
    """Load every pack under ``paths``: every problem of every file is reported together, with
    the problems between files (an id defined twice, an unknown gesture) even when a file has
    problems of its own. ``origin`` starts each pack's label (``core``, ``plugin:NAME``)."""
    paths = list(paths)
    files = pack_files(paths)
    if not files:
        raise RulePackError([PackProblem(", ".join(map(str, paths)) or "<none>", None, "", "no rule pack files found")])
    packs: list[Pack] = []
    problems: list[PackProblem] = []
    for f, name in files:
        try:
            data = read_pack_file(f)
        except RulePackError as exc:
            problems.extend(exc.problems)
            continue
        pack, found = check_pack_data(data, str(f), f"{origin}:{name}" if origin else name)
        packs.append(pack)
        problems.extend(found)
    if problems:
        raise RulePackError(sort_problems(problems + _between(packs, problems)))
    return packs


def _between(packs: Sequence[Pack], known: Sequence[PackProblem]) -> list[PackProblem]:
    """What a rulebook finds between packs that have problems of their own (their valid parts)."""
    from .errors import RecommenderError
    from .rulebook import RuleBook

    try:
        RuleBook.build(packs).retire()
    except RulePackError as exc:
        seen = {str(p) for p in known}
        return [p for p in exc.problems if str(p) not in seen]
    except RecommenderError:  # the packs are already known to be invalid: report what they say
        pass
    return []


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
