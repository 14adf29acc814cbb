"""Turn engine matches into explanations people can act on.

Builders return plain dicts: the whole result is validated once, in Rust, when the core
builds the final :class:`~recommender.results.RecommendationResult` (much cheaper than a
Python-level model per condition).

Each recommendation carries the rules that chose it, their tests with the actual values,
the filled customer-facing script and a one-line reason for the agent. ``near_misses``
lists rules that failed on exactly one test, with what would flip them; which tests held
is decided by durable-rules (see :meth:`RuleBook.atom_truth`), not re-evaluated here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .conditions import Atom
from .context import Context
from .ranking import Candidate
from .rulebook import RuleBook
from .templates import format_value, render

__all__ = ["condition_result", "recommendation", "withheld", "near_misses"]

_SYM = {"eq": "=", "ne": "≠", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in",
        "contains": "contains", "not_contains": "does not contain"}


def _show(v: Any) -> str:
    if v == [] or v == {}:
        return "empty"
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return format_value(v) if not isinstance(v, str) else v


def condition_result(atom: Atom, actual: Any) -> dict[str, Any]:
    if atom.op == "exists":
        want = "present" if atom.value else "absent"
        text = f"{atom.field} is {'absent' if actual is None else _show(actual)} (needs it {want})"
    else:
        shown = "missing" if actual is None else _show(actual)
        text = f"{atom.field} is {shown} (needs {_SYM[atom.op]} {_show(atom.value)})"
    value = list(atom.value) if isinstance(atom.value, tuple) else atom.value
    return {"field": atom.field, "op": atom.op, "value": value, "actual": actual, "text": text}


def recommendation(cand: Candidate, ctx: Context, book: RuleBook, missing: set[str]) -> dict[str, Any]:
    g = cand.gesture
    rules = []
    for rule, bi in cand.matches:
        conds = [condition_result(a, book.value(ctx, a.field)) for a in rule.branches[bi]]
        pack = rule.source
        rules.append({"rule_id": rule.id, "pack": pack, "priority": rule.priority, "because": rule.because,
                      "conditions": conds})
    script, unfilled = render(g.script, ctx.get)
    missing.update(unfilled)
    first = rules[0]
    facts = "; ".join(c["text"] for c in first["conditions"])
    reason = f"{first['because']} [{first['rule_id']}: {facts}]"
    if g.agent_note:
        reason = f"{reason} {g.agent_note}"
    if cand.notes:
        reason = f"{reason} Note: {' '.join(cand.notes)}"
    due = None
    if g.follow_up_days is not None and ctx.interaction.occurred_at is not None:
        due = (ctx.interaction.occurred_at + timedelta(days=g.follow_up_days)).date()
    return {"gesture_id": g.id, "title": g.title, "category": g.category, "tier": g.tier, "cost": cand.cost,
            "score": cand.score, "authority": g.authority, "script": script, "agent_reason": reason,
            "rules": rules, "follow_up_days": g.follow_up_days, "due_date": due, "source": g.source}


def withheld(cand: Candidate, reason: str, detail: str, available_on: Any = None) -> dict[str, Any]:
    g = cand.gesture
    return {"gesture_id": g.id, "title": g.title, "tier": g.tier, "cost": cand.cost, "score": cand.score,
            "reason": reason, "detail": detail, "rules": [r.id for r, _ in cand.matches], "available_on": available_on}


def _hint(atom: Atom, actual: Any) -> str:
    if atom.op == "exists":
        return f"would qualify if {atom.field} were {'given' if atom.value else 'absent'}"
    if actual is None:
        return f"would qualify if {atom.field} were known and {_SYM[atom.op]} {_show(atom.value)}"
    return f"would qualify at {atom.field} {_SYM[atom.op]} {_show(atom.value)}; is {_show(actual)}"


def near_misses(ctx: Context, book: RuleBook, matched: set[str], truth: set[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rule in book.rules:
        if rule.id in matched:
            continue
        best: Atom | None = None
        for branch in rule.branches:
            failed = [a for a in branch if a.key not in truth]
            if len(failed) == 1:
                best = failed[0]
                break
        if best is None:
            continue
        actual = book.value(ctx, best.field)
        out.append({"rule_id": rule.id, "pack": rule.source, "gestures": rule.gesture_ids, "because": rule.because,
                    "failed": condition_result(best, actual), "hint": _hint(best, actual)})
    return out
