"""The :class:`Recommender`: context in, ranked and explained gestures out."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .context import Business, Context, parse_context
from .errors import ContextError
from .explain import near_misses, recommendation, withheld
from .memory_protocol import Memory, Offer
from .outcomes import OutcomeEvent
from .packs import Pack, pack_from_data
from .plugins import PluginConfig, PluginHost
from .ranking import Candidate, arbitrate, rank_key, relationship, score
from .results import Explanation, PluginWarning, Recommendation, RecommendationResult
from .rulebook import RuleBook
from .tenants import Tenant, build_key, build_tenant

__all__ = ["Recommender", "default_rules_dir", "context_hash"]

ContextLike = Context | dict[str, Any] | str | bytes
_MAX_BUILDS = 256  # compiled rulebooks kept (each holds engine memory)
_MAX_TENANTS = 100_000  # business -> rulebook entries (cheap)


def default_rules_dir() -> Path:
    """The shipped general packs: inside the installed package, or ``rules/`` in a checkout."""
    packaged = Path(__file__).parent / "rules"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "rules"


def context_hash(ctx: Context) -> str:
    """A stable hash of the normalised context (key order and absent-vs-null do not matter:
    fields serialise in model order, maps are sorted at validation, nulls are left out)."""
    return hashlib.sha256(ctx.__pydantic_serializer__.to_json(ctx, exclude_none=True)).hexdigest()[:24]


class Recommender:
    """Recommends service gestures for an interaction context.

    ``Recommender()`` loads the shipped general packs plus installed plugins;
    ``Recommender(["my_rules/"])`` loads the given files and folders instead of the shipped
    packs; ``packs=`` adds in-memory packs. ``plugins=`` registers plugin objects,
    ``plugins_dir=`` loads drop-in ``.py`` plugins, ``autoload=False`` skips installed
    ones, ``plugin_config`` selects plugins per business (see :class:`PluginConfig`).
    Everything is validated at construction: an invalid pack never half-loads.
    Instances are thread-safe and meant to be long-lived.
    """

    def __init__(
        self,
        rules: Sequence[str | Path] | None = None,
        *,
        packs: Iterable[Pack | dict[str, Any]] = (),
        plugins: Iterable[Any] = (),
        plugins_dir: str | Path | None = None,
        plugin_config: PluginConfig | Mapping[str, Any] | None = None,
        autoload: bool = True,
        strict: bool = False,
        plugin_timeout: float = 0.5,
        max_extras: int = 3,
    ) -> None:
        from .builtin.core_packs import CorePacks

        self.rule_paths = [Path(p) for p in (rules if rules is not None else [default_rules_dir()])]
        extra = [p if isinstance(p, Pack) else pack_from_data(p, f"<memory:{p.get('pack', '?')}>") for p in packs]
        self.max_extras = max_extras
        self.host = PluginHost(strict=strict, timeout=plugin_timeout)
        self.host.register(CorePacks(self.rule_paths, extra), "core_packs", "builtin")
        if autoload:
            self.host.load_entry_points()
        if plugins_dir is not None:
            self.host.load_folder(plugins_dir)
        self.host.load_objects(plugins)
        self.plugin_config = self._config(plugin_config)
        self._lock = threading.Lock()
        #: (business.id, vertical) -> its tenant; tenants with equal build keys are shared
        self._tenants: dict[tuple[str, str | None], Tenant] = {}
        self._builds: OrderedDict[tuple[Any, ...], Tenant] = OrderedDict()
        self._tenant(Business())  # build now: invalid core packs fail here, not on a sale

    @staticmethod
    def _config(config: PluginConfig | Mapping[str, Any] | None) -> PluginConfig:
        if isinstance(config, PluginConfig):
            return config
        return PluginConfig.model_validate(dict(config or {}))

    def _tenant(self, business: Business) -> Tenant:
        key = (business.id, business.vertical)
        tenant = self._tenants.get(key)
        if tenant is not None:
            return tenant
        with self._lock:
            tenant = self._tenants.get(key)
            if tenant is None:
                tenant = self._build(Business(id=business.id, vertical=business.vertical), self._builds,
                                     self.plugin_config)
                if len(self._tenants) >= _MAX_TENANTS:
                    self._tenants.clear()  # entries are cheap to recompute; builds are kept
                self._tenants[key] = tenant
        return tenant

    def _build(self, business: Business, builds: "OrderedDict[tuple[Any, ...], Tenant]",
               config: PluginConfig) -> Tenant:
        bkey = build_key(self.host, config, business)
        tenant = builds.get(bkey)
        if tenant is None:
            tenant = builds[bkey] = build_tenant(self.host, config, business)
            while len(builds) > _MAX_BUILDS:
                _, old = builds.popitem(last=False)
                self._tenants = {k: t for k, t in self._tenants.items() if t is not old}
                old.book.retire()
        return tenant

    def tenant_if_built(self, business: Business) -> Tenant | None:
        """The business's tenant if its rulebook is already compiled (no build is started)."""
        return self._tenants.get((business.id, business.vertical))

    # -- public API ------------------------------------------------------------

    @property
    def ruleset_version(self) -> str:
        """Version of the default business's rulebook (see ``result.ruleset_version``)."""
        return self._tenant(Business()).book.version

    @property
    def rulebook(self) -> RuleBook:
        return self._tenant(Business()).book

    def rulebook_for(self, business: Business | Mapping[str, Any]) -> RuleBook:
        b = business if isinstance(business, Business) else Business.model_validate(dict(business))
        return self._tenant(b).book

    def reload(self, plugin_config: PluginConfig | Mapping[str, Any] | None = None) -> str:
        """Rebuild every business's rulebook from the files and plugin configuration.

        All or nothing: on any error nothing changes and the running versions stay active.
        Returns the default business's new version.
        """
        config = self._config(plugin_config) if plugin_config is not None else self.plugin_config
        builds: OrderedDict[tuple[Any, ...], Tenant] = OrderedDict()
        tenants = {key: self._build(Business(id=key[0], vertical=key[1]), builds, config)
                   for key in [("default", None), *self._tenants]}
        with self._lock:
            old, self._builds, self._tenants, self.plugin_config = self._builds, builds, tenants, config
        for tenant in old.values():
            tenant.book.retire()
        return tenants[("default", None)].book.version

    def plugin_info(self) -> list[dict[str, Any]]:
        """Plugins found: name, version, source, hooks, and the default business's contributions."""
        contrib = self._tenant(Business()).contributions
        return [
            {"name": i.name, "version": i.version, "source": i.source, "path": i.path, "hooks": i.hooks,
             "gestures": contrib.get(i.name, ([], []))[0], "rules": contrib.get(i.name, ([], []))[1]}
            for i in self.host.infos.values()
        ]

    def recommend(self, context: ContextLike, *, budget: float | None = None,
                  max_extras: int | None = None, store: Memory | None = None) -> RecommendationResult:
        """Rank the gestures worth making now for ``context`` (a model, dict or JSON).

        With a ``store``, the context is enriched from the customer's history, contact
        policy and budgets are applied, and the decision is logged (``decision_id``).
        """
        return self._decide(parse_context(context), budget, max_extras, False, store)

    def recommend_many(self, contexts: Iterable[ContextLike], *, budget: float | None = None,
                       max_extras: int | None = None, store: Memory | None = None) -> list[RecommendationResult]:
        """``[self.recommend(c, ...) for c in contexts]`` as a batch (backtests): one validation
        call for the list, repeated contexts answered once (see :mod:`recommender.batch`)."""
        from .batch import recommend_many

        return recommend_many(self, contexts, budget=budget, max_extras=max_extras, store=store)

    def explain(self, context: ContextLike, *, budget: float | None = None,
                max_extras: int | None = None, store: Memory | None = None) -> Explanation:
        """Like :meth:`recommend`, plus near misses and every rule that matched.

        An explanation is a what-if: it is never logged as a decision.
        """
        return self._decide(parse_context(context), budget, max_extras, True, store)  # type: ignore[return-value]

    def record_outcome(self, store: Any, decision_id: str, gesture_id: str, outcome: str, *,
                       idempotency_key: str, note: str | None = None, actual_cost: float | None = None,
                       tenant: str = "default", vertical: str | None = None) -> Any:
        """Store an outcome, then tell the plugins selected for the business that observe outcomes."""
        stored = store.record_outcome(decision_id, gesture_id, outcome, idempotency_key=idempotency_key,
                                      note=note, actual_cost=actual_cost, tenant=tenant)
        event = OutcomeEvent(decision_id=decision_id, gesture_id=gesture_id, outcome=outcome,  # type: ignore[arg-type]
                             tenant=tenant, note=note, actual_cost=actual_cost,
                             customer_id=getattr(stored, "customer_id", None))
        warnings: list[PluginWarning] = []
        for name, fn, args in self._tenant(Business(id=tenant, vertical=vertical)).observers:
            self.host.call(name, "recommender_record_outcome", fn, args, {"outcome": event}, warnings)
        return stored

    # -- the pipeline ----------------------------------------------------------

    def _enrich(self, tenant: Tenant, ctx: Context, warnings: list[PluginWarning]) -> Context:
        for name, fn, args in tenant.enrichers:
            ok, updates = self.host.call(name, "recommender_enrich_context", fn, args,
                                         {"context": ctx, "business": ctx.business}, warnings, timed=True)
            if not ok or updates is None:
                continue
            try:
                if not isinstance(updates, dict) or not set(updates) <= {"customer", "interaction"}:
                    raise ContextError([("<return>", "expected None or a dict with 'customer'/'interaction' updates")])
                ctx = _merge_unset(ctx, updates)
            except ContextError as exc:
                self.host.warn(name, "recommender_enrich_context", f"malformed data: {exc}", warnings)
        return ctx

    def _adjust(self, tenant: Tenant, ctx: Context, recs: list[dict[str, Any]],
                warnings: list[PluginWarning]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        vetoed: list[dict[str, Any]] = []
        for name, fn, args in tenant.adjusters:
            before = {r["gesture_id"]: r for r in recs}
            ok, new = self.host.call(name, "recommender_adjust_recommendations", fn, args,
                                     # deep copies: rule matches are shared between results
                                     {"recommendations": [Recommendation.model_validate(r).model_copy(deep=True)
                                                          for r in recs],
                                      "context": ctx}, warnings, timed=True)
            if not ok or new is None:
                continue
            if not isinstance(new, list) or not all(isinstance(r, Recommendation) for r in new):
                self.host.warn(name, "recommender_adjust_recommendations",
                               "malformed data: expected None or a list of Recommendation", warnings)
                continue
            added = [r.gesture_id for r in new if r.gesture_id not in before]
            if added:
                self.host.warn(name, "recommender_adjust_recommendations",
                               f"malformed data: cannot add gestures no rule matched: {', '.join(added)}", warnings)
                continue
            kept = {r.gesture_id for r in new}
            for gid, rec in before.items():
                if gid not in kept:
                    vetoed.append({"gesture_id": gid, "title": rec["title"], "tier": rec["tier"], "cost": rec["cost"],
                                   "score": rec["score"], "reason": "vetoed", "detail": f"vetoed by plugin {name}",
                                   "rules": [m.rule_id for m in rec["rules"]], "available_on": None})
            recs = [dict(r) for r in sorted(new, key=lambda r: rank_key(r.tier, r.score, r.gesture_id))]
        return recs, vetoed

    def _decide(self, ctx: Context, budget: float | None, max_extras: int | None,
                explain: bool, store: Memory | None) -> RecommendationResult:
        tenant = self._tenant(ctx.business)
        book = tenant.book
        warnings = list(tenant.warnings)
        if tenant.enrichers:
            ctx = self._enrich(tenant, ctx, warnings)
        if store is not None:
            ctx = _merge_unset(ctx, store.enrich(ctx))
        row = book.read_row(ctx)
        fired, mismatched = book.matcher.match_row(row)
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
                    cands[gid] = Candidate(g, [(rule, matched[ri])], g.cost_for(ctx), 0.0)
                else:
                    cand.matches.append((rule, matched[ri]))
        rel = relationship(ctx)
        for cand in cands.values():
            cand.score = score(cand.gesture.tier, cand.priority, cand.cost, ctx, rel)
        holds = []
        if store is not None and cands:
            offers = [Offer(g, c.gesture.category, c.gesture.tier, c.cost) for g, c in cands.items()]
            for hold in store.screen(ctx, offers):
                cand = cands.pop(hold.gesture_id, None)
                if cand is not None:
                    holds.append((cand, hold))
        # A None in the row is an absent field (or an explicit null): only then can absence block a rule.
        missing = book.blocked_by_absence(ctx, row, set(matched), mismatched) if None in row else set()
        limits = dict(budget=ctx.interaction.budget if budget is None else budget,
                      max_extras=self.max_extras if max_extras is None else max_extras)
        vetoed: list[dict[str, Any]] = []
        for _ in range(2):  # a plugin's veto frees its place: arbitrate once more without it
            out = {w["gesture_id"] for w in vetoed}
            decision = arbitrate([c for g, c in cands.items() if g not in out], ctx, **limits)
            recs = [recommendation(c, ctx, book, row, missing) for c in decision.chosen]
            if not (tenant.adjusters and recs):
                break
            recs, new_vetoes = self._adjust(tenant, ctx, recs, warnings)
            vetoed.extend(new_vetoes)
            if not new_vetoes:
                break
        held = [withheld(c, reason, detail) for c, reason, detail in decision.withheld] + vetoed
        for cand, hold in holds:
            reason = "needs_approval" if hold.reason == "abuse_review" else hold.reason
            held.append(withheld(cand, reason, hold.detail, hold.available_on))
        chash = context_hash(ctx)
        fields: dict[str, Any] = dict(
            recommendations=recs,
            needs_approval=[w for w in held if w["reason"] == "needs_approval"],
            withheld=[w for w in held if w["reason"] != "needs_approval"],
            missing_inputs=sorted(missing),
            type_mismatches=sorted(mismatched),
            warnings=warnings,
            receipt={"id": hashlib.sha256(f"{book.version}:{chash}".encode()).hexdigest()[:24],
                     "context_hash": chash, "ruleset_version": book.version},
            ruleset_version=book.version,
            business=ctx.business.id,
        )
        if not explain:
            result = RecommendationResult.model_validate(fields)  # one validation of the whole tree
            if store is not None:
                result.decision_id = store.record_decision(ctx, result)
            return result
        matched_ids = {book.rules[ri].id for ri in matched}
        return Explanation.model_validate(dict(
            fields, near_misses=near_misses(ctx, book, matched_ids, book.atom_truth(ctx)),
            rules_evaluated=len(book.rules), rules_matched=sorted(matched_ids)))


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
