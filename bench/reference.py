"""Plain-Python answers for generated packs: the expected matches, and the "floor".

* :func:`expected` interprets each rule directly from the pack dict (no recommender code):
  the matches every engine is checked against.
* :func:`build_floor` is the hand-written baseline: the same rules as one generated Python
  function (compiled once), which reads each field once and tests every rule with an
  ``if``. Every benchmark ratio is taken against it.

Semantics (the recommender's): a test on an absent field is false; numbers compare as
numbers, strings by equality.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Iterable

__all__ = ["parse_condition", "expected", "expected_one", "build_floor", "rule_tests"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt,
}
_PY = {"eq": "==", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def parse_condition(text: str) -> tuple[str, str, Any]:
    fld, op, raw = text.split(None, 2)
    try:
        value: Any = float(raw)
    except ValueError:
        value = raw
    return fld, op, value


def rule_tests(pack: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, Any]]]]:
    return [(r["id"], [parse_condition(c) for c in r["when"]["all"]]) for r in pack["rules"]]


def get_path(ctx: dict[str, Any], path: str) -> Any:
    node: Any = ctx
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def expected_one(tests: list[tuple[str, list[tuple[str, str, Any]]]], ctx: dict[str, Any]) -> set[str]:
    out = set()
    for rid, conds in tests:
        for fld, op, value in conds:
            actual = get_path(ctx, fld)
            if actual is None or isinstance(actual, str) != isinstance(value, str) or not _OPS[op](actual, value):
                break
        else:
            out.add(rid)
    return out


def expected(pack: dict[str, Any], contexts: Iterable[dict[str, Any]]) -> list[set[str]]:
    """Rule ids matching each context, by direct interpretation of the pack."""
    tests = rule_tests(pack)
    return [expected_one(tests, ctx) for ctx in contexts]


def floor_source(pack: dict[str, Any]) -> str:
    """Python source of ``floor(ctx) -> list[rule id]`` for the pack's rules."""
    tests = rule_tests(pack)
    fields = sorted({fld for _, conds in tests for fld, _, _ in conds})
    numeric = {fld for _, conds in tests for fld, _, v in conds if not isinstance(v, str)}
    local = {fld: f"v{i}" for i, fld in enumerate(fields)}
    lines = ["def floor(ctx):"]
    sections = sorted({f.split(".")[0] for f in fields})
    for s in sections:
        lines.append(f"    {s} = ctx.get({s!r}) or EMPTY")
    for fld in fields:
        section, key = fld.split(".", 1)
        lines.append(f"    {local[fld]} = {section}.get({key!r})")
        if fld in numeric:  # absent -> NaN, so every comparison is false
            lines.append(f"    if {local[fld]} is None: {local[fld]} = NAN")
    lines.append("    out = []")
    lines.append("    add = out.append")
    for rid, conds in tests:
        expr = " and ".join(f"{local[f]} {_PY[op]} {v!r}" for f, op, v in conds)
        lines.append(f"    if {expr}: add({rid!r})")
    lines.append("    return out")
    return "\n".join(lines) + "\n"


def build_floor(pack: dict[str, Any]) -> Callable[[dict[str, Any]], list[str]]:
    """The floor: the pack's rules as one compiled Python function over a plain dict context."""
    namespace: dict[str, Any] = {"NAN": math.nan, "EMPTY": {}}
    exec(compile(floor_source(pack), f"<floor:{pack.get('pack', 'gen')}>", "exec"), namespace)
    return namespace["floor"]
