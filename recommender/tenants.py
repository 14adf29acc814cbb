"""One business's view: the plugins selected for it and the rulebook built from them.

Each business gets its own compiled rulebook, so a tenant's gestures and rules can never
leak into another tenant's recommendations. Plugin contributions are collected one plugin
at a time; a plugin whose contributions are invalid is left out with a warning, except a
gesture or rule id defined by two sources, which is an error naming both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import ValidationError

from .context import Business
from .errors import RulePackError
from .issues import IssueCode, Vocabulary
from .cache import load_packs  # the packs' loader, valid files kept on disk (recommender.cache)
from .packs import Gesture, Pack, pack_from_data
from .plugins import PluginConfig, PluginHost
from .profile import ProfileError, merge_profiles
from .results import PluginWarning
from .rulebook import RuleBook

__all__ = ["Tenant", "build_tenant", "build_key", "selection"]


@dataclass
class Tenant:
    business: Business
    plugins: list[str]
    book: RuleBook
    warnings: list[PluginWarning]
    enrichers: list[tuple[str, Callable[..., Any], list[str]]]
    adjusters: list[tuple[str, Callable[..., Any], list[str]]]
    observers: list[tuple[str, Callable[..., Any], list[str]]]
    #: plugin name -> (gesture ids, rule ids) it contributed
    contributions: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    #: the issue codes in force: the core's plus the selected plugins'
    vocabulary: Vocabulary = field(default_factory=Vocabulary)


_Item = TypeVar("_Item", Gesture, IssueCode)


def _registered(model: type[_Item], item: Any, plugin: str, noun: str, key: str) -> _Item:
    """What a plugin's ``register()`` was given, validated as ``model`` and stamped with the
    plugin; a malformed item raises with the first field at fault (the host reports it)."""
    data = item.model_dump() if isinstance(item, model) else item
    if not isinstance(data, dict):
        raise TypeError(f"register() takes a {noun} as a dict or a {model.__name__}, got {type(item).__name__}")
    try:
        return model.model_validate({**data, "source": f"plugin:{plugin}"})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"invalid {noun} {data.get(key, '?')!r}: {where}: {first['msg']}") from None


def _collect(host: PluginHost, name: str, fn: Callable[..., Any], args: list[str], business: Business,
             warnings: list[PluginWarning], hook: str) -> list[Pack]:
    """Run one plugin's registration hook; return its packs (raises only for built-ins)."""
    packs: list[Pack] = []
    gestures: list[Gesture] = []
    builtin = host.infos[name].source == "builtin"

    def register(item: Any) -> None:
        if hook == "recommender_register_gestures":
            gestures.append(_registered(Gesture, item, name, "gesture", "id"))
        elif isinstance(item, Pack):
            packs.append(item)
        elif isinstance(item, (str, Path)):
            packs.extend(load_packs([item], origin="core" if builtin else f"plugin:{name}"))
        elif isinstance(item, dict):
            label = "memory" if builtin else f"plugin:{name}"
            packs.append(pack_from_data(item, f"<{label}:{item.get('pack', '?')}>"))
        else:
            raise TypeError(f"register() takes a pack path or dict, got {type(item).__name__}")

    if builtin:  # the core's own packs: any problem is the user's to fix, never skipped
        fn(**{k: {"register": register, "business": business}[k] for k in args})
    else:
        ok, _ = host.call(name, hook, fn, args, {"register": register, "business": business}, warnings)
        if not ok:
            return []
    if gestures:
        packs.append(Pack(name=f"plugin-{name}-gestures", version="1", source=f"plugin:{name}",
                          gestures=tuple(gestures), rules=(), digest=str(hash(tuple(g.id for g in gestures)))))
    return packs


_REGISTRATION = ("recommender_register_gestures", "recommender_register_rule_packs")


def build_key(host: PluginHost, config: PluginConfig, business: Business) -> tuple[Any, ...]:
    """What a rulebook depends on: the plugins selected, and the business itself only when a
    selected registration hook asks for it. Businesses with equal keys share one rulebook,
    so a new ``business.id`` or ``vertical`` in a request does not compile a new one."""
    selected = selection(host, config, business)
    per_business = any("business" in args for hook in (*_REGISTRATION, "recommender_register_issue_codes")
                       for _, _, args in host.impls(hook, selected))
    return (tuple(selected), (business.id, business.vertical) if per_business else None)


def selection(host: PluginHost, config: PluginConfig, business: Business) -> list[str]:
    builtins = [n for n, i in host.infos.items() if i.source == "builtin"]
    others = [n for n, i in host.infos.items() if i.source != "builtin"]
    serves = {n: host.infos[n].verticals for n in others}
    return builtins + config.select(business.id, business.vertical, others, serves)


def _vocabulary(host: PluginHost, selected: list[str], business: Business,
                warnings: list[PluginWarning]) -> Vocabulary:
    """The core issue codes plus each selected plugin's; a plugin whose codes are invalid
    or clash is left out with a warning naming the code."""
    vocab = Vocabulary()
    hook = "recommender_register_issue_codes"
    for name, fn, args in host.impls(hook, selected):
        codes: list[IssueCode] = []

        def register(item: Any, plugin: str = name, codes: list[IssueCode] = codes) -> None:
            codes.append(_registered(IssueCode, item, plugin, "issue code", "code"))

        ok, _ = host.call(name, hook, fn, args, {"register": register, "business": business}, warnings)
        if not ok:
            continue
        trial = Vocabulary(vocab.codes.values())
        try:
            for code in codes:
                trial.add(code)
        except ValueError as exc:
            host.warn(name, hook, f"issue codes left out: {exc}", warnings)
            continue
        vocab = trial
    return vocab


def profile_layers(host: PluginHost, selected: list[str], business: Business,
                   warnings: list[PluginWarning]) -> list[dict[str, Any]]:
    """Each selected plugin's profile defaults for ``business`` that validate (in call order)."""
    hook = "recommender_business_profile"
    layers: list[dict[str, Any]] = []
    for name, fn, args in host.impls(hook, selected):
        ok, got = host.call(name, hook, fn, args, {"business": business}, warnings)
        if not ok or got is None:
            continue
        try:
            merge_profiles(got, where=f"plugin {name}")
        except ProfileError as exc:
            host.warn(name, hook, f"profile left out: {exc}", warnings)
            continue
        layers.append(dict(got))
    return layers


def build_tenant(host: PluginHost, config: PluginConfig, business: Business) -> Tenant:
    selected = selection(host, config, business)
    warnings: list[PluginWarning] = list(host.load_warnings)
    by_plugin: dict[str, list[Pack]] = {}
    for hook in _REGISTRATION:
        for name, fn, args in host.impls(hook, selected):
            try:
                by_plugin.setdefault(name, []).extend(_collect(host, name, fn, args, business, warnings, hook))
            except RulePackError as exc:
                if host.infos[name].source == "builtin":
                    raise
                host.warn(name, hook, f"rule pack rejected: {exc}", warnings)
                by_plugin[name] = []
    # Built-ins first: a clash between a plugin and the core packs is then reported on the
    # plugin's pack, and that plugin is left out rather than the core.
    order = sorted(by_plugin, key=lambda n: host.infos[n].source != "builtin")
    while True:
        packs = [p for name in order for p in by_plugin[name]]
        try:
            book = RuleBook.build(packs)
            break
        except RulePackError as exc:
            owners = {p.source: name for name, ps in by_plugin.items() for p in ps}
            if any(p.code == "duplicate" for p in exc.problems):
                raise
            culprits = {owners.get(p.path) for p in exc.problems}
            if None in culprits or any(host.infos[c].source == "builtin" for c in culprits if c):
                raise
            for culprit in culprits:
                assert culprit is not None
                msgs = "; ".join(str(p) for p in exc.problems if owners.get(p.path) == culprit)
                host.warn(culprit, "recommender_register_rule_packs", f"contributions left out: {msgs}", warnings)
                by_plugin[culprit] = []
    contributions = {
        name: ([g.id for p in ps for g in p.gestures], [r.id for p in ps for r in p.rules])
        for name, ps in by_plugin.items()
    }
    return Tenant(
        business=business, plugins=selected, book=book, warnings=warnings,
        enrichers=host.impls("recommender_enrich_context", selected),
        adjusters=host.impls("recommender_adjust_recommendations", selected),
        observers=host.impls("recommender_record_outcome", selected),
        contributions=contributions,
        vocabulary=_vocabulary(host, selected, business, warnings),
    )
