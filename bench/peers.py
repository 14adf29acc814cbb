"""The engines we compare against, each used the way its documentation shows.

Every adapter is built from the same generated pack dict and answers, per context (a plain
nested dict), the set of rule ids that match. ``bench/run.py`` checks each against
``bench.reference.expected`` before timing it.

* :class:`DurableDirect`: durable-rules through ``durable.engine.Host`` (the documented API):
  a ``Host`` subclass with ``_run`` disabled (its timer threads give wrong results), one
  ``assert_fact`` per context and ruleset with a pooled sid, then ``retract_fact`` (the
  ``StatelessHost`` of ``shared/notes/durable-rules.md``). A ruleset holds at most 4095 rules
  and hangs or fails past other limits, so it runs the rulesets our compiler packs (same
  tests, dotted context paths instead of our short keys): this isolates the adapter.
* :class:`Zen`: zen-engine, one decision table with hit policy ``collect`` (a row per rule,
  a column per field, unary tests such as ``>= 2.5`` or ``"billing"``).
* :class:`RuleEngine`: rule-engine, one ``rule_engine.Rule`` per rule, evaluated per context
  over a flat dict (nested attribute access converts whole sub-dicts per access and was about
  25x slower); absent fields resolve to ``null`` and each comparison is guarded.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from .reference import rule_tests

__all__ = ["DurableDirect", "Zen", "RuleEngine"]

_PY_OPS = {"eq": "==", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


# -- durable-rules, the documented way ---------------------------------------------------

class DurableDirect:
    name = "durable-rules (Host)"

    def __init__(self, pack: dict[str, Any]):
        from durable import engine
        from durable.engine import MessageNotHandledException

        from recommender.compiler import compile_branches
        from recommender.packs import pack_from_data

        self._not_handled = MessageNotHandledException
        parsed = pack_from_data(pack, "<bench>")
        items = [(rule.id, branch) for rule in parsed.rules for branch in rule.branches]
        units = compile_branches(items, "d")
        ids = itertools.count()

        def hit(rule_ids: list[str]):
            def action(c: Any) -> None:
                hits = c.host._hits.get(c.s.sid)
                if hits is not None:
                    hits.extend(r for r in rule_ids if r not in hits)
            return action

        class QuietHost(engine.Host):
            def _run(self) -> None:  # engine.Host starts 2 timer threads: disable them
                pass

        definitions: dict[str, dict[str, Any]] = {}
        for unit in units:
            paths = {key: path for key, path, _ in unit.fields}
            rules = {}
            for action, rule in unit.definition.items():
                if action == "j":
                    continue
                rule_ids = [unit.actions[action], *unit.shared.get(action, ())]
                rules[action] = {**_rename(rule, paths), "run": hit(rule_ids)}
            definitions[f"bench{next(ids)}.{unit.name}"] = rules
        self.rulesets = list(definitions)
        self.host = QuietHost(definitions)
        self.host._hits = {}
        self._free: list[str] = []
        self._seq = itertools.count()

    def __call__(self, ctx: dict[str, Any]) -> list[str]:
        host = self.host
        try:
            sid = self._free.pop()
        except IndexError:
            sid = f"b{next(self._seq)}"
        hits = host._hits[sid] = []
        fact = dict(ctx)
        fact["sid"] = sid
        try:
            for name in self.rulesets:
                try:
                    host.assert_fact(name, fact)
                except self._not_handled:
                    pass
                host.retract_fact(name, fact)
        finally:
            del host._hits[sid]
        self._free.append(sid)
        return hits

    def close(self) -> None:
        import durable_rules_engine

        for rs in self.host._ruleset_list:
            durable_rules_engine.delete_ruleset(rs._handle)


def _rename(obj: Any, paths: dict[str, str]) -> Any:
    """A unit definition with our short fact keys replaced by dotted context paths."""
    if isinstance(obj, dict):
        return {paths.get(k, k): _rename(v, paths) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, paths) for v in obj]
    return obj


# -- zen-engine: one decision table, hit policy collect ----------------------------------

class Zen:
    name = "zen-engine"

    def __init__(self, pack: dict[str, Any]):
        import zen

        tests = rule_tests(pack)
        fields = sorted({f for _, conds in tests for f, _, _ in conds})
        col = {f: f"c{i}" for i, f in enumerate(fields)}
        inputs = [{"id": col[f], "type": "expression", "field": f, "name": f} for f in fields]
        outputs = [{"id": "out", "type": "expression", "field": "rule", "name": "rule"}]
        rows = []
        for rid, conds in tests:
            cells: dict[str, list[str]] = {}
            for f, op, v in conds:
                cells.setdefault(f, []).append(_zen_test(op, v))
            row = {"_id": rid, "out": json.dumps(rid)}
            for f in fields:
                parts = cells.get(f, [])
                if len(parts) == 1:
                    row[col[f]] = parts[0]
                elif parts:
                    row[col[f]] = " and ".join("$ " + p if not p.startswith('"') else "$ == " + p for p in parts)
                else:
                    row[col[f]] = ""
            rows.append(row)
        content = {
            "contentType": "application/vnd.gorules.decision",
            "nodes": [
                {"id": "in", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
                {"id": "table", "type": "decisionTableNode", "name": "Rules", "position": {"x": 200, "y": 0},
                 "content": {"hitPolicy": "collect", "inputs": inputs, "outputs": outputs, "rules": rows}},
                {"id": "out", "type": "outputNode", "name": "Response", "position": {"x": 400, "y": 0}},
            ],
            "edges": [{"id": "e1", "sourceId": "in", "targetId": "table", "type": "edge"},
                      {"id": "e2", "sourceId": "table", "targetId": "out", "type": "edge"}],
        }
        self.engine = zen.ZenEngine()
        self.decision = self.engine.create_decision(json.dumps(content))

    def __call__(self, ctx: dict[str, Any]) -> list[str]:
        result = self.decision.evaluate(ctx)["result"]
        if isinstance(result, dict):  # a single hit may come back unwrapped
            result = [result] if result else []
        return [r["rule"] for r in result]

    def close(self) -> None:
        pass


def _zen_test(op: str, value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return f"{_PY_OPS[op]} {value!r}"


# -- rule-engine: one Rule per rule ------------------------------------------------------

class RuleEngine:
    name = "rule-engine"

    def __init__(self, pack: dict[str, Any]):
        import rule_engine

        context = rule_engine.Context(default_value=None)
        self.rules = []
        for rid, conds in rule_tests(pack):
            parts = []
            for f, op, v in conds:
                name = f.replace(".", "_")
                if isinstance(v, str):
                    parts.append(f"{name} == {json.dumps(v)}")
                else:
                    parts.append(f"({name} != null and {name} {_PY_OPS[op]} {v!r})")
            self.rules.append((rid, rule_engine.Rule(" and ".join(parts), context=context)))

    def __call__(self, ctx: dict[str, Any]) -> list[str]:
        flat = {f"{section}_{k}": v for section, values in ctx.items() for k, v in values.items()}
        return [rid for rid, rule in self.rules if rule.matches(flat)]

    def close(self) -> None:
        pass
