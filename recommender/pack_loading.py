"""Validating rule packs and loading them from files: every problem found in one pass.

One pack is checked whole (schema, every condition of every rule, caps, ``contains``
patterns tried on the engine) and reported as ``file:line: field.path: message``. Loading
several files also checks them against each other (ids defined twice, unknown gestures) even
when some have problems of their own, so ``recommender rules check`` needs one run. The models
live in ``packs``, which re-exports what is public here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from . import pack_limits
from .conditions import Atom, ConditionError, Node, check_branches, did_you_mean, parse_when_all, to_dnf
from .context import field_kind, known_paths
from .errors import PackProblem, RulePackError, sort_problems
from .pack_yaml import line_of, loc_str, read_pack_file
from .packs import Gesture, Pack, Rule, _PackFile, _public_fields
from .templates import TemplateError, placeholders

__all__ = ["pack_from_data", "check_pack_data", "load_pack", "load_packs", "pack_files", "expand_paths",
           "pattern_problems", "rulebook_problems", "located"]

_M = TypeVar("_M", bound=BaseModel)


#: Stand-ins for required fields that failed validation, so that the rest of an invalid
#: gesture or rule can still be checked against the other packs (such a pack never loads).
_STAND_INS: dict[str, Any] = {"title": "?", "script": "?", "category": "freebie", "tier": "meet", "because": "?",
                              "when": None}


def _schema_problems(exc: ValidationError, base: tuple[Any, ...], data: Any, source: str,
                     model: type[BaseModel]) -> list[PackProblem]:
    out = []
    for err in exc.errors():
        loc = (*base, *err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            message += did_you_mean(str(err["loc"][0]), _public_fields(model))
        out.append(PackProblem(source, line_of(data, loc), loc_str(loc), message))
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
        problems.append(PackProblem(source, line_of(data, []), "",
                                    "a rule pack is a mapping with 'pack', 'gestures' and 'rules'"))
        return empty, problems
    for key, cap in (("gestures", pack_limits.MAX_GESTURES_PER_PACK), ("rules", pack_limits.MAX_RULES_PER_PACK)):
        items = data.get(key)
        if isinstance(items, list) and len(items) > cap:  # the YAML reader stops earlier; this is for dicts
            problems.append(PackProblem(source, line_of(data, (key,)), key,
                                        f"more than {cap} {key} in one pack ({len(items)}); split it into several packs"))
    if problems:
        return empty, problems
    try:
        head: _PackFile | None = _PackFile.model_validate(dict(data))
    except ValidationError as exc:
        head = None
        problems.extend(_schema_problems(exc, (), data, source, _PackFile))

    gestures = _gestures(data, source, label, problems)
    rules = _rules(data, source, label, problems)

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


def _authored(raw: dict[Any, Any], base: tuple[Any, ...], data: Any, source: str, model: type[BaseModel],
              problems: list[PackProblem]) -> dict[Any, Any]:
    """What a pack wrote for a gesture or rule, without the keys the loader sets (``source``,
    ``line``, ...): writing one is a problem."""
    internal = set(model.model_fields) - set(_public_fields(model))
    for key in raw:
        if key in internal:
            problems.append(PackProblem(source, line_of(data, (*base, key)), loc_str((*base, key)),
                                        "Extra inputs are not permitted (set by the loader)"))
    return {k: v for k, v in raw.items() if k not in internal}


def _gestures(data: dict[Any, Any], source: str, label: str, problems: list[PackProblem]) -> list[Gesture]:
    """Each gesture validated (a stand-in for an invalid one, for checks between packs)."""
    gestures: list[Gesture] = []
    raw_gestures = data.get("gestures")
    for i, raw in enumerate(raw_gestures if isinstance(raw_gestures, list) else []):
        if not isinstance(raw, dict):
            continue  # reported by the pack's schema
        base = ("gestures", i)
        values = {**_authored(raw, base, data, source, Gesture, problems), "source": source, "label": label,
                  "line": line_of(data, base)}
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
            problems.append(PackProblem(source, line_of(data, loc), loc_str(loc), str(exc)))
        gestures.append(g)
    return gestures


def _rules(data: dict[Any, Any], source: str, label: str, problems: list[PackProblem]) -> list[Rule]:
    """Each rule validated and its ``when`` parsed into DNF, every condition checked even when
    the rest of the rule is invalid (one pass finds everything)."""
    rules: list[Rule] = []
    patterns: list[tuple[Atom, str]] = []
    raw_rules = data.get("rules")
    for i, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        if not isinstance(raw, dict):
            continue  # reported by the pack's schema
        base = ("rules", i)
        values = {**_authored(raw, base, data, source, Rule, problems), "source": source, "label": label,
                  "line": line_of(data, base), "then_line": line_of(data, (*base, "then"))}
        rule: Rule | None
        try:
            rule = Rule.model_validate(values)
        except ValidationError as exc:
            problems.extend(_schema_problems(exc, base, data, source, Rule))
            rule = _stand_in(Rule, values, exc)
        node: Node | None = None
        branches: tuple[tuple[Atom, ...], ...] = ()
        if "when" in raw:
            where, when_line = loc_str((*base, "when")), line_of(data, (*base, "when"))
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
    return rules


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
    except (RecommenderError, ValueError):  # already known to be invalid: what they say is enough
        pass
    return []
