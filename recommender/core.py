"""The :class:`Recommender`: context in, ranked and explained gestures out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .context import Business, Context, parse_context
from .memory_protocol import Memory
from .outcomes import OutcomeEvent
from .packs import Pack, pack_from_data
from .pipeline import context_hash, decide, decide_async
from .plugins import PluginConfig, PluginHost
from .profile import Profile, ProfileError, merge_profiles
from .results import Explanation, PluginWarning, RecommendationResult
from .rulebook import RuleBook
from .tenants import Tenant, build_key, build_tenant, profile_layers

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


class Recommender:
    """Recommends service gestures for an interaction context.

    ``Recommender()`` loads the shipped general packs plus installed plugins;
    ``Recommender(["my_rules/"])`` loads the given files and folders instead of the shipped
    packs; ``packs=`` adds in-memory packs. ``plugins=`` registers plugin objects,
    ``plugins_dir=`` loads drop-in ``.py`` plugins, ``autoload=False`` skips installed
    ones, ``plugin_config`` selects plugins per business (see :class:`PluginConfig`).
    ``profiles`` sets business profiles (``{"default": {...}, "acme": {...}}``: loyalty and
    value scales, money limits per staff level, the extras rate, the listing caps; see
    :class:`~recommender.profile.Profile`); ``max_extras`` overrides the profiles' cap on
    extras listed per interaction. ``learning=False`` ranks by the rules alone even with a
    store that has learned from outcomes (docs/learning.md).
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
        max_extras: int | None = None,
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        learning: bool = True,
    ) -> None:
        from .builtin.core_packs import CorePacks

        self.rule_paths = [Path(p) for p in (rules if rules is not None else [default_rules_dir()])]
        extra = [p if isinstance(p, Pack) else pack_from_data(p, f"<memory:{p.get('pack', '?')}>") for p in packs]
        self.max_extras = max_extras
        #: learn from outcomes (with a store that keeps them; docs/learning.md)
        self.learning = learning
        self.profiles = self._check_profiles(profiles)
        #: (business.id, vertical) -> its profile and the warnings of plugins that gave layers
        self._profiles: dict[tuple[str, str | None], tuple[Profile, list[PluginWarning]]] = {}
        #: the same with a tenant's stored profile on top: (the stored layer, the profile, warnings)
        self._stored_profiles: dict[tuple[str, str | None], tuple[Any, Profile, list[PluginWarning]]] = {}
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

    @staticmethod
    def _check_profiles(profiles: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
        """Configured profiles by business id (``"default"`` for all), each checked now."""
        out: dict[str, dict[str, Any]] = {}
        for name, layer in (profiles or {}).items():
            merge_profiles(layer, where=f"profiles.{name}")
            out[str(name)] = dict(layer)
        return out

    def profile_for(self, business: Business, stored: Any = None) -> tuple[Profile, list[PluginWarning]]:
        """The business's profile: core defaults, its plugins' trade defaults, then the
        configured ``default`` and its own entry (see :mod:`recommender.profile`); then
        ``stored``, the tenant's own profile from a memory store (a record with ``revision``
        and ``profile``, the partial layer), when given. A stored layer that no longer fits the
        layers under it (configuration changed since) is left out with a warning."""
        key = (business.id, business.vertical)
        got = self._profiles.get(key)
        if got is None:
            tenant = self._tenant(business)
            warnings: list[PluginWarning] = []
            layers = profile_layers(self.host, tenant.plugins, business, warnings)
            profile = merge_profiles(*layers, self.profiles.get("default"), self.profiles.get(business.id),
                                     where=f"profiles.{business.id}")
            got = (profile, warnings)
            if len(self._profiles) >= _MAX_TENANTS:
                self._profiles.clear()
            self._profiles[key] = got
        if stored is None:
            return got
        hit = self._stored_profiles.get(key)
        if hit is not None and (hit[0] is stored or (hit[0].revision, hit[0].profile)
                                == (stored.revision, stored.profile)):
            return hit[1], hit[2]
        try:
            profile = merge_profiles(got[0].model_dump(), stored.profile, where="profile")
            warnings = got[1]
        except ProfileError as exc:
            profile = got[0]
            warnings = [*got[1], PluginWarning(plugin="memory", hook="tenant_profile", message=(
                f"the tenant's stored profile (revision {stored.revision}) is left out: {exc}"))]
        if len(self._stored_profiles) >= _MAX_TENANTS:
            self._stored_profiles.clear()
        self._stored_profiles[key] = (stored, profile, warnings)
        return profile, warnings

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
            self._profiles, self._stored_profiles = {}, {}
        for tenant in old.values():
            tenant.book.retire()
        return tenants[("default", None)].book.version

    def plugin_businesses(self) -> list[Business]:
        """The businesses whose rulebooks show every plugin at work: the default business, and
        one of each vertical a plugin declares or the plugin configuration names."""
        verticals = {v for i in self.host.infos.values() for v in (i.verticals or ())}
        verticals.update(self.plugin_config.verticals)
        return [Business(), *(Business(vertical=v) for v in sorted(verticals))]

    def plugin_info(self) -> list[dict[str, Any]]:
        """Plugins found: name, version, source, hooks, the verticals each declares (None: every
        business), and what each contributed to the default business's rulebook or, for a
        plugin that declares verticals, to theirs (see :meth:`plugin_businesses`)."""
        contributed: dict[str, tuple[list[str], list[str]]] = {}
        for business in self.plugin_businesses():
            for name, (gestures, rules) in self._tenant(business).contributions.items():
                have = contributed.setdefault(name, ([], []))
                have[0].extend(g for g in gestures if g not in have[0])
                have[1].extend(r for r in rules if r not in have[1])
        return [
            {"name": i.name, "version": i.version, "source": i.source, "path": i.path, "hooks": i.hooks,
             "verticals": i.verticals,
             "gestures": contributed.get(i.name, ([], []))[0], "rules": contributed.get(i.name, ([], []))[1]}
            for i in self.host.infos.values()
        ]

    def recommend(self, context: ContextLike, *, budget: float | None = None,
                  max_extras: int | None = None, store: Memory | None = None) -> RecommendationResult:
        """Rank the gestures worth making now for ``context`` (a model, dict or JSON).

        With a ``store``, the context is enriched from the customer's history, contact
        policy and budgets are applied, and the decision is logged (``decision_id``).
        """
        return decide(self, [parse_context(context)], budget=budget, max_extras=max_extras, store=store)[0]

    async def arecommend(self, context: ContextLike, *, budget: float | None = None,
                         max_extras: int | None = None) -> RecommendationResult:
        """:meth:`recommend` for asyncio code, without a store (its calls block).

        Plugin hooks that run under a time limit run on a worker thread (with our stages
        between them) while the event loop goes on; the rest is short CPU work, done on the
        loop. The first call for a business compiles its rulebook, which takes long at
        thousands of rules: make that call in a thread, or at start-up.
        """
        return await decide_async(self, parse_context(context), budget=budget, max_extras=max_extras)

    async def aexplain(self, context: ContextLike, *, budget: float | None = None,
                       max_extras: int | None = None, full: bool = False) -> Explanation:
        """:meth:`explain` for asyncio code (see :meth:`arecommend`)."""
        return await decide_async(self, parse_context(context), budget=budget, max_extras=max_extras,  # type: ignore[return-value]
                                  explain=True, full=full)

    def recommend_many(self, contexts: Iterable[ContextLike], *, budget: float | None = None,
                       max_extras: int | None = None, store: Memory | None = None) -> list[RecommendationResult]:
        """``[self.recommend(c, ...) for c in contexts]`` as a batch (backtests): one validation
        call for the list, repeated contexts answered once (see :mod:`recommender.batch`)."""
        from .batch import recommend_many

        return recommend_many(self, contexts, budget=budget, max_extras=max_extras, store=store)

    def explain(self, context: ContextLike, *, budget: float | None = None,
                max_extras: int | None = None, store: Memory | None = None, full: bool = False) -> Explanation:
        """Like :meth:`recommend`, plus near misses and every rule that matched.

        Near misses and missing inputs come ranked (what the agent or customer can change
        first), the top five of each; ``full=True`` lists them all. An explanation is a
        what-if: it is never logged as a decision.
        """
        return decide(self, [parse_context(context)], budget=budget, max_extras=max_extras, store=store,  # type: ignore[return-value]
                      explain=True, full=full)[0]

    def record_outcome(self, store: Any, decision_id: str, gesture_id: str, outcome: str, *,
                       idempotency_key: str, note: str | None = None, actual_cost: float | None = None,
                       tenant: str = "default", vertical: str | None = None) -> Any:
        """Store an outcome, then tell the plugins selected for the business that observe outcomes.

        Without ``vertical``, when plugins are selected per vertical, the business's vertical
        is read from the logged decision's context.
        """
        stored = store.record_outcome(decision_id, gesture_id, outcome, idempotency_key=idempotency_key,
                                      note=note, actual_cost=actual_cost, tenant=tenant)
        if vertical is None and hasattr(store, "get_decision"):
            business = (store.get_decision(decision_id).context or {}).get("business") or {}
            vertical = business.get("vertical")
        event = OutcomeEvent(decision_id=decision_id, gesture_id=gesture_id, outcome=outcome,  # type: ignore[arg-type]
                             tenant=tenant, note=note, actual_cost=actual_cost,
                             customer_id=getattr(stored, "customer_id", None))
        warnings: list[PluginWarning] = []
        for name, fn, args in self._tenant(Business(id=tenant, vertical=vertical)).observers:
            self.host.call(name, "recommender_record_outcome", fn, args, {"outcome": event}, warnings)
        return stored
