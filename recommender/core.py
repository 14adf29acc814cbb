"""The :class:`Recommender`: context in, ranked and explained gestures out."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from .context import Context, parse_context
from .memory_protocol import Memory, Offer
from .explain import near_misses, recommendation, withheld
from .packs import Pack, load_packs, pack_from_data
from .ranking import Candidate, arbitrate, score
from .results import Explanation, Receipt, RecommendationResult
from .rulebook import RuleBook

__all__ = ["Recommender", "default_rules_dir", "context_hash"]

ContextLike = Context | dict[str, Any] | str | bytes


def default_rules_dir() -> Path:
    """The shipped general packs: inside the installed package, or ``rules/`` in a checkout."""
    packaged = Path(__file__).parent / "rules"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "rules"


def context_hash(ctx: Context) -> str:
    """A stable hash of the normalised context (key order and absent-vs-null do not matter)."""
    canonical = json.dumps(ctx.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class Recommender:
    """Recommends service gestures for an interaction context.

    ``Recommender()`` loads the shipped general packs; ``Recommender(["my_rules/"])`` loads
    the given files and folders instead; ``packs=`` adds in-memory packs (dicts or
    :class:`Pack`). Loading validates every pack first, so an invalid pack never half-loads.
    Instances are thread-safe and meant to be long-lived.
    """

    def __init__(
        self,
        rules: Sequence[str | Path] | None = None,
        *,
        packs: Iterable[Pack | dict[str, Any]] = (),
        max_extras: int = 3,
    ) -> None:
        self.rule_paths = [Path(p) for p in (rules if rules is not None else [default_rules_dir()])]
        self.extra_packs = [p if isinstance(p, Pack) else pack_from_data(p, f"<memory:{p.get('pack', '?')}>")
                            for p in packs]
        self.max_extras = max_extras
        self._lock = threading.Lock()
        self._book = RuleBook.build(self._load_packs())

    def _load_packs(self) -> list[Pack]:
        packs = load_packs(self.rule_paths) if self.rule_paths else []
        return packs + self.extra_packs

    # -- public API ------------------------------------------------------------

    @property
    def ruleset_version(self) -> str:
        return self._book.version

    @property
    def rulebook(self) -> RuleBook:
        return self._book

    def reload(self) -> str:
        """Re-read the rule files; on any error the running version stays active."""
        new = RuleBook.build(self._load_packs())
        with self._lock:
            old, self._book = self._book, new
        if old is not new:
            old.retire()
        return new.version

    def recommend(self, context: ContextLike, *, budget: float | None = None,
                  max_extras: int | None = None, store: Memory | None = None) -> RecommendationResult:
        """Rank the gestures worth making now for ``context`` (a model, dict or JSON).

        With a ``store``, the context is enriched from the customer's history, contact
        policy and budgets are applied, and the decision is logged (``decision_id``).
        """
        return self._decide(parse_context(context), budget, max_extras, explain=False, store=store)

    def explain(self, context: ContextLike, *, budget: float | None = None,
                max_extras: int | None = None, store: Memory | None = None) -> Explanation:
        """Like :meth:`recommend`, plus near misses and every rule that matched."""
        return self._decide(parse_context(context), budget, max_extras, explain=True,  # type: ignore[return-value]
                            store=store)

    # -- the pipeline ----------------------------------------------------------

    def _decide(self, ctx: Context, budget: float | None, max_extras: int | None,
                explain: bool, store: Memory | None = None) -> RecommendationResult:
        book = self._book
        if store is not None:
            ctx = _merge_unset(ctx, store.enrich(ctx))
        getters = book.getters
        fired, mismatched = book.matcher.match(lambda p: getters[p](ctx))
        matched: dict[int, int] = {}
        for ri, bi in fired:
            matched.setdefault(ri, bi)
        cands: dict[str, Candidate] = {}
        for ri in sorted(matched):
            rule = book.rules[ri]
            for gid in rule.gesture_ids:
                cand = cands.get(gid)
                if cand is None:
                    g = book.gestures[gid]
                    cost = g.cost_for(ctx)
                    cands[gid] = Candidate(g, [(rule, matched[ri])], cost, 0.0)
                else:
                    cand.matches.append((rule, matched[ri]))
        for cand in cands.values():
            cand.score = score(cand.gesture.tier, cand.priority, cand.cost, ctx)
        if budget is None:
            budget = ctx.interaction.budget
        holds = []
        if store is not None and cands:
            offers = [Offer(g, c.gesture.category, c.gesture.tier, c.cost) for g, c in cands.items()]
            for hold in store.screen(ctx, offers):
                cand = cands.pop(hold.gesture_id, None)
                if cand is not None:
                    holds.append((cand, hold))
        decision = arbitrate(list(cands.values()), ctx, budget=budget,
                             max_extras=self.max_extras if max_extras is None else max_extras)
        missing = {p for p in book.matcher.fields if p not in mismatched and getters[p](ctx) is None}
        recs = [recommendation(c, ctx, book, missing) for c in decision.chosen]
        held = [withheld(c, reason, detail) for c, reason, detail in decision.withheld]
        for cand, hold in holds:
            w = withheld(cand, "needs_approval" if hold.reason == "abuse_review" else hold.reason, hold.detail)
            held.append(w.model_copy(update={"available_on": hold.available_on}))
        chash = context_hash(ctx)
        receipt = Receipt(
            id=hashlib.sha256(f"{book.version}:{chash}".encode()).hexdigest()[:24],
            context_hash=chash, ruleset_version=book.version,
        )
        fields: dict[str, Any] = dict(
            recommendations=recs,
            needs_approval=[w for w in held if w.reason == "needs_approval"],
            withheld=[w for w in held if w.reason != "needs_approval"],
            missing_inputs=sorted(missing),
            type_mismatches=sorted(mismatched),
            receipt=receipt,
            ruleset_version=book.version,
            business=ctx.business.id,
        )
        if not explain:
            result = RecommendationResult(**fields)
            if store is not None:
                result.decision_id = store.record_decision(ctx, result)
            return result
        matched_ids = {book.rules[ri].id for ri in matched}
        return Explanation(  # an explanation is a what-if: it is never logged as a decision
            **fields,
            near_misses=near_misses(ctx, book, matched_ids),
            rules_evaluated=len(book.rules),
            rules_matched=sorted(matched_ids),
        )


def _merge_unset(ctx: Context, updates: dict[str, Any]) -> Context:
    """Apply store/plugin updates to fields the caller left unset; re-validate."""
    if not updates:
        return ctx
    data = ctx.model_dump(exclude_unset=True)
    for section, values in updates.items():
        current = data.setdefault(section, {})
        for key, value in values.items():
            if key == "attributes" and isinstance(value, dict):
                current["attributes"] = {**value, **current.get("attributes", {})}
            elif current.get(key) in (None, [], {}):
                current[key] = value
    return parse_context(data)
