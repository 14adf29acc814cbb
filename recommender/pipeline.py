"""The decision pipeline: validated contexts in, results out, in stages over a batch.

``Recommender.recommend()`` runs it on a batch of one context; ``recommend_many`` on many at
once. Each stage runs over the whole batch before the next starts (every match, then every
ranking, every explanation, then one validation of all results), so a stage's code and data
stay hot in the CPU's caches: per context, a batch costs markedly less than a loop of
single calls (``bench/README.md``), and the answers are the same because the code is.

Stages: start (the tenant) -> read (store enrichment, the row of rule fields) -> match ->
candidates (scores, store screening) -> absence (missing inputs) -> choose (arbitration,
explanations) -> assemble (receipt and the result's fields) -> validate.

A context whose business has enriching or adjusting plugins takes its own way through the
same stages (:func:`_plugin_steps`): enrichers, then our stages up to choose, then adjusters,
folded through one :meth:`PluginHost.chain`, so the whole request pays one thread hand-off
when hooks run under a time limit.
"""

from __future__ import annotations

import hashlib
import weakref
from datetime import date
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .context import Context, Scalars, parse_context
from .errors import ContextError
from .explain import asked_late, inputs_of, near_misses, recommendation, withheld
from .memory_protocol import Memory, Offer
from .plugins import PluginHost, Step
from .extras import day_of, draw
from .issues import Assessment, assess, derive_interaction
from .learning import Trace, choice_probabilities, choice_seed, evidence_text, learned_score, thompson_order
from .profile import Profile, derive_customer
from .ranking import Candidate, Decision, Limits, arbitrate, rank_key, scorer
from .results import Explanation, PluginWarning, Recommendation, RecommendationResult
from .tenants import Tenant

if TYPE_CHECKING:
    from .core import Recommender

__all__ = ["decide", "decide_async", "context_hash"]

_RESULTS = TypeAdapter(list[RecommendationResult])
_ENRICH, _ADJUST = "recommender_enrich_context", "recommender_adjust_recommendations"
#: the context's sections an enricher may update
_ENRICHED = frozenset({"customer", "interaction"})


def context_hash(ctx: Context) -> str:
    """A stable hash of the normalised context (key order and absent-vs-null do not matter:
    fields serialise in model order, maps are sorted at validation, nulls are left out)."""
    return hashlib.sha256(ctx.__pydantic_serializer__.to_json(ctx, exclude_none=True)).hexdigest()[:24]


@dataclass(slots=True)
class _Draft:
    """One context on its way through the stages."""

    ctx: Context
    tenant: Tenant
    warnings: list[PluginWarning]
    row: Sequence[Any] = ()
    matched: dict[int, int] = field(default_factory=dict)  # rule index -> first branch that fired
    mismatched: list[str] = field(default_factory=list)
    profile: Profile = field(default_factory=Profile)
    assessment: Assessment = field(default_factory=lambda: Assessment(None, 0))
    notes: list[str] = field(default_factory=list)
    day: date | None = None
    #: the memory store (None: none), and what the decision took from it (the stored profile's
    #: revision, the extras draw's steer): passed to ``record_decision`` to be logged
    memory: Any = None
    memo: dict[str, Any] = field(default_factory=dict)
    cands: dict[str, Candidate] = field(default_factory=dict)
    holds: list[tuple[Candidate, Any]] = field(default_factory=list)
    #: absent field -> how many rules its absence kept from matching (script gaps count 0)
    missing: dict[str, int] = field(default_factory=dict)
    decision: Decision | None = None
    recs: list[dict[str, Any]] = field(default_factory=list)
    vetoed: list[dict[str, Any]] = field(default_factory=list)
    #: plugins only: whether the adjusters run on ``recs`` now, and len(vetoed) before they did
    adjust: bool = False
    round_start: int = 0
    #: the first choice's limits, and each chosen candidate's rendered recommendation: a
    #: choice run again after a veto reuses both (they do not depend on what was vetoed)
    limits: Limits | None = None
    rendered: dict[str, tuple[Candidate, float, float | None, dict[str, Any]]] = field(default_factory=dict)
    #: plugins only: the host that calls the hooks, the call's budget and extras cap (the
    #: steps are the tenant's, made once, not the call's)
    host: PluginHost | None = None
    budget: float | None = None
    max_extras: int | None = None
    #: learning from outcomes (with a store): whether it is on, and what is logged for it
    learn: bool = True
    trace: Trace | None = None
    rule_scores: dict[str, float] = field(default_factory=dict)
    customer_key: str = ""


def decide(rec: "Recommender", contexts: Sequence[Context], *, budget: float | None, max_extras: int | None,
           store: Memory | None = None, explain: bool = False, full: bool = False) -> list[RecommendationResult]:
    """The results for ``contexts``, in order. With ``explain``, :class:`Explanation` objects;
    ``full`` lists every near miss and missing input instead of the top few."""
    limit = rec.max_extras if max_extras is None else max_extras
    drafts = [_start(rec, ctx, store) for ctx in contexts]
    plain = []
    for i, d in enumerate(drafts):
        if d.tenant.enrichers or d.tenant.adjusters:
            d.host, d.budget, d.max_extras = rec.host, budget, limit
            drafts[i] = rec.host.chain(_steps_for(d.tenant), d, d.warnings)
        else:
            plain.append(d)
    _stages(plain, store, budget, limit)
    return _finish(drafts, store, explain, full)


async def decide_async(rec: "Recommender", ctx: Context, *, budget: float | None, max_extras: int | None,
                       explain: bool = False, full: bool = False) -> RecommendationResult:
    """:func:`decide` for one context and no store, on an event loop: hooks that run under a
    time limit run on a worker thread (with our stages between them) while the loop serves
    others; everything else is short CPU work and runs right here."""
    limit = rec.max_extras if max_extras is None else max_extras
    d = _start(rec, ctx)
    if d.tenant.enrichers or d.tenant.adjusters:
        d.host, d.budget, d.max_extras = rec.host, budget, limit
        d = await rec.host.achain(_steps_for(d.tenant), d, d.warnings)
    else:
        _stages([d], None, budget, limit)
    return _finish([d], None, explain, full)[0]


def _stages(drafts: list["_Draft"], store: Memory | None, budget: float | None, max_extras: int | None) -> None:
    """Our stages up to choose, each over the whole batch before the next."""
    for d in drafts:
        _read(d, store)
    for d in drafts:
        _match(d)
    for d in drafts:
        _candidates(d, store)
    for d in drafts:
        _absence(d)
    for d in drafts:
        _choose(d, budget, max_extras)


def _finish(drafts: list["_Draft"], store: Memory | None, explain: bool, full: bool = False) -> list[RecommendationResult]:
    """Assemble and validate the results (logged to the store, unless explanations)."""
    fields = [_assemble(d, full) for d in drafts]
    if explain:
        out: list[RecommendationResult] = []
        for d, f in zip(drafts, fields):
            book = d.tenant.book
            matched_ids = {book.rules[ri].id for ri in d.matched}
            misses = near_misses(d.ctx, book, matched_ids, book.atom_truth(d.ctx), full)
            out.append(Explanation.model_validate(dict(
                f, near_misses=misses if full else misses[:SHOWN],
                rules_evaluated=len(book.rules), rules_matched=sorted(matched_ids))))
        return out
    results = _RESULTS.validate_python(fields)  # one validation of every result tree
    if store is not None:
        for d, result in zip(drafts, results):
            record: Any = store.record_decision  # our store takes what the decision took from it
            result.decision_id = record(d.ctx, result, **d.memo) if d.memo else record(d.ctx, result)
    return results


# -- stages ------------------------------------------------------------------------


def _start(rec: "Recommender", ctx: Context, store: Memory | None = None) -> _Draft:
    tenant = rec._tenant(ctx.business)
    if store is None:
        profile, warnings = rec.profile_for(ctx.business)
        return _Draft(ctx, tenant, [*tenant.warnings, *warnings], profile=profile, learn=rec.learning)
    # With a store: the tenant's own stored profile is the last layer (kept per tenant by the store).
    layer = getattr(store, "profile_layer", None)
    stored = layer(ctx.business.id) if layer is not None else None
    profile, warnings = rec.profile_for(ctx.business, stored)
    d = _Draft(ctx, tenant, [*tenant.warnings, *warnings], profile=profile, learn=rec.learning, memory=store)
    if stored is not None:
        d.memo["profile_revision"] = stored.revision
    return d


def _read(d: _Draft, store: Memory | None) -> None:
    """What the store remembers fills fields the caller left unset; then what is derived from
    the vocabulary and the business's profile; then the row of rule fields."""
    if store is not None:
        d.ctx = merge_unset(d.ctx, store.enrich(d.ctx))
    _derive(d)
    d.row = d.tenant.book.read_row(d.ctx)


def _derive(d: _Draft) -> None:
    """``interaction.family``/``severity`` and ``customer.loyal``/``high_value``/``returning``,
    unless the caller gave them; unknown inputs leave them unknown."""
    ctx, vocab = d.ctx, d.tenant.vocabulary
    d.assessment = a = assess(ctx, vocab, d.profile)
    i = ctx.interaction
    if a.family is None:
        d.notes.append(vocab.unknown_note(i.issue))
    iupd, notes = derive_interaction(ctx, d.profile)
    d.notes.extend(notes)
    if i.family is None and a.family is not None:
        iupd["family"] = a.family
    if i.severity is None:
        iupd["severity"] = a.severity
    cupd = derive_customer(ctx, d.profile)
    if iupd or cupd:
        update: dict[str, Any] = {}
        if iupd:
            update["interaction"] = i.model_copy(update=iupd)
        if cupd:
            update["customer"] = ctx.customer.model_copy(update=cupd)
        d.ctx = ctx.model_copy(update=update)


def _match(d: _Draft) -> None:
    fired, d.mismatched = d.tenant.book.matcher.match_row(d.row)
    matched = d.matched
    for ri, bi in fired:
        matched.setdefault(ri, bi)


def _candidates(d: _Draft, store: Memory | None) -> None:
    book, ctx, matched, cands = d.tenant.book, d.ctx, d.matched, d.cands
    for ri in sorted(matched):
        rule = book.rules[ri]
        for gid in rule.gesture_ids:
            cand = cands.get(gid)
            if cand is None:
                g = book.gestures[gid]
                cands[gid] = Candidate(g, [(rule, matched[ri])], g.cost_for(ctx), 0.0)
            else:
                cand.matches.append((rule, matched[ri]))
    if not cands:
        return
    score = scorer(ctx)
    for cand in cands.values():
        cand.score = score(cand.gesture.tier, cand.priority, cand.cost)
    if store is not None:
        offers = [Offer(g, c.gesture.category, c.gesture.tier, c.cost) for g, c in cands.items()]
        for hold in store.screen(ctx, offers):
            cand = cands.pop(hold.gesture_id, None)
            if cand is not None:
                d.holds.append((cand, hold))
        _learned(d, store)


def _learned(d: _Draft, store: Memory) -> None:
    """With a store: what is logged for learning, and (learning on) each candidate's learned
    acceptance in its segment, which scales its score once the segment has enough evidence."""
    d.trace = Trace()
    propensities = getattr(store, "propensities", None) if d.learn else None
    if propensities is None or not d.cands:
        return
    posts = propensities(d.ctx, [(g, c.gesture.tier, c.priority) for g, c in d.cands.items()])
    for g, cand in d.cands.items():
        post = posts.get(g)
        if post is not None:
            d.rule_scores[g] = cand.score
            cand.evidence = post
            cand.score = learned_score(cand.score, post)


def _absence(d: _Draft) -> None:
    # A None in the row is an absent field (or an explicit null): only then can absence block a rule.
    if None in d.row:
        d.missing = d.tenant.book.blocked_by_absence(d.row, set(d.matched))


def _limits(d: _Draft, budget: float | None, max_extras: int | None) -> Limits:
    ctx, profile = d.ctx, d.profile
    listing = profile.listing.model_dump()
    if max_extras is not None:
        listing["exceed"] = max_extras
    if d.assessment.severity >= 3:  # a major case steps up to a senior owner as well
        listing["recover"] += 1
    drawn, d.day = True, day_of(ctx)
    if any(c.gesture.tier == "exceed" for c in d.cands.values()):
        d.customer_key = ident = ctx.customer.id or ctx.customer.name or context_hash(ctx)
        won = draw(ctx, profile, d.assessment, ident, d.day, _steer(d))
        drawn = won.won
        if d.trace is not None:
            d.trace.extras_chance, d.trace.extra_drawn = won.chance, drawn
    return Limits(money=profile.limit_for(ctx.staff.level), currency=profile.currency, listing=listing,
                  budget=ctx.interaction.budget if budget is None else budget, extra_drawn=drawn,
                  extras_rate=profile.extras_rate, no_contact=d.assessment.family == "contact_preference")


def _steer(d: _Draft) -> float:
    """The store's steer of the extras draw from the tenant's realised rate (1.0 without a
    store); the steer used is logged with the decision, so a replay uses it again."""
    steer_of = getattr(d.memory, "extras_steer", None) if d.memory is not None else None
    if steer_of is None:
        return 1.0
    steer = float(steer_of(d.ctx, d.profile.extras_rate))
    d.memo["extras_steer"] = steer
    return steer


def _choose(d: _Draft, budget: float | None, max_extras: int | None) -> None:
    ctx, tenant = d.ctx, d.tenant
    out = {w["gesture_id"] for w in d.vetoed}
    cands = [c for g, c in d.cands.items() if g not in out]
    limits = d.limits
    if limits is None:
        limits = d.limits = _limits(d, budget, max_extras)
    if d.trace is not None and d.trace.extras_chance is not None:
        _choose_extra(d, cands, limits)
    d.decision = arbitrate(cands, ctx, limits)
    d.recs = [_render(d, c) for c in d.decision.chosen]
    if d.trace is not None:
        _evidence(d)
    d.adjust, d.round_start = bool(tenant.adjusters and d.recs), len(d.vetoed)


def _render(d: _Draft, cand: Candidate) -> dict[str, Any]:
    """The recommendation for a chosen candidate; a choice run again after a veto renders
    only what changed (a candidate whose score or cost is as before reads the same)."""
    if not d.tenant.adjusters:  # chosen once
        return recommendation(cand, d.ctx, d.tenant.book, d.row, d.missing)
    gid = cand.gesture.id
    hit = d.rendered.get(gid)
    if hit is not None and hit[0] is cand and hit[1] == cand.score and hit[2] == cand.cost:
        return dict(hit[3])
    out = d.rendered[gid] = (cand, cand.score, cand.cost,
                             recommendation(cand, d.ctx, d.tenant.book, d.row, d.missing))
    return out[3]


def _choose_extra(d: _Draft, cands: list[Candidate], limits: Limits) -> None:
    """With a store: which extra the interaction gets if the extras draw falls on it, and the
    chance each eligible extra has (``trace.choices``, logged for off-policy evaluation,
    whether or not the draw was won). With learning on, by Thompson sampling among the
    extras the guardrails allow: each one's rule score is scaled by a draw from its posterior
    over the prior mean, drawn with the extras draw's keyed hash, so the order replays
    exactly. Without learning, the rules' order decides (probability 1)."""
    assert d.trace is not None
    extras = [c for c in cands if c.gesture.tier == "exceed"]
    if not extras:
        return
    # (field by field: the compiled build's dataclasses have no __dict__)
    trial = Limits(money=limits.money, currency=limits.currency, budget=limits.budget, extra_drawn=True,
                   listing={**limits.listing, "exceed": len(extras)}, extras_rate=limits.extras_rate,
                   no_contact=limits.no_contact)
    eligible = {c.gesture.id: c for c in arbitrate(cands, d.ctx, trial).chosen if c.gesture.tier == "exceed"}
    k = limits.listing["exceed"]
    if len(eligible) <= k or any(c.evidence is None for c in eligible.values()):
        ranked = sorted(eligible.values(), key=Candidate.sort_key)[:k]
        d.trace.choices = {c.gesture.id: 1.0 for c in ranked}
        return
    posts = {g: c.evidence for g, c in eligible.items()}
    weights = {g: d.rule_scores[g] / c.evidence.prior for g, c in eligible.items()}
    d.trace.choices = choice_probabilities(posts, k=k, weights=weights)
    if not limits.extra_drawn:
        return
    seed = choice_seed(d.ctx, d.profile, d.customer_key, d.day or day_of(d.ctx))
    for g, value in thompson_order(posts, seed, weights=weights):
        eligible[g].score = round(value, 2)


def _evidence(d: _Draft) -> None:
    """Each listed gesture's learned acceptance, in a sentence, and its choice probability."""
    assert d.trace is not None
    for rec in d.recs:
        cand = d.cands.get(rec["gesture_id"])
        post = cand.evidence if cand is not None else None
        if post is not None:
            rec["evidence"] = {**post.as_dict(), "text": evidence_text(post),
                               "choice_probability": d.trace.choices.get(rec["gesture_id"])}


#: Near misses and missing inputs shown by default (``full=True`` shows them all).
SHOWN = 5


def _held(d: _Draft, cand: Candidate, reason: str, detail: str) -> dict[str, Any]:
    """A withheld gesture; one awaiting approval carries what would be said, and why."""
    out = withheld(cand, reason, detail)
    if reason == "needs_approval":
        rec = recommendation(cand, d.ctx, d.tenant.book, d.row, {})
        out["script"], out["agent_reason"] = rec["script"], rec["agent_reason"]
    return out


def _missing_inputs(missing: dict[str, int], ctx: Context) -> list[str]:
    """Absent inputs, those that would change the most rules first; a derived field is
    reported as the inputs it is derived from. As for near misses, signals of a failure on a
    case where nothing is known to have gone wrong, and system data, come last."""
    counts: dict[str, int] = {}
    for f, n in missing.items():
        for src in inputs_of(f):
            counts[src] = max(counts.get(src, 0), n)
    return sorted(counts, key=lambda f: (asked_late(f, ctx), -counts[f], f))


def _assemble(d: _Draft, full: bool = False) -> dict[str, Any]:
    assert d.decision is not None
    held = [_held(d, c, reason, detail) for c, reason, detail in d.decision.withheld] + d.vetoed
    for cand, hold in d.holds:
        reason = "needs_approval" if hold.reason == "abuse_review" else hold.reason
        held.append(withheld(cand, reason, hold.detail, hold.available_on))
    version = d.tenant.book.version
    chash = context_hash(d.ctx)
    day = d.day.isoformat() if d.day else ""
    missing = _missing_inputs(d.missing, d.ctx)
    a = d.assessment
    return dict(
        recommendations=d.recs,
        needs_approval=[w for w in held if w["reason"] == "needs_approval"],
        withheld=[w for w in held if w["reason"] != "needs_approval"],
        assessment={"family": a.family, "severity": a.severity, "band": a.band, "reasons": a.reasons,
                    "signals": a.signals},
        missing_inputs=missing if full else missing[:SHOWN],
        type_mismatches=sorted(d.mismatched),
        warnings=d.warnings,
        notes=d.notes,
        receipt={"id": hashlib.sha256(f"{version}:{chash}:{day}".encode()).hexdigest()[:24],
                 "context_hash": chash, "ruleset_version": version, "day": d.day},
        ruleset_version=version,
        business=d.ctx.business.id,
        learning=None if d.trace is None else d.trace.as_dict(
            {g: c.evidence for g, c in d.cands.items() if c.evidence is not None}),
    )


# -- a business with plugins ------------------------------------------------------------


def _steps_for(tenant: Tenant) -> list[Step]:
    """The tenant's :func:`_plugin_steps`, made once for its hooks. The tenant is held weakly
    (its id is checked against it) and the steps hold only the hooks: a tenant or a
    recommender that is let go is freed as before, with its worker threads."""
    key = id(tenant)
    hit = _STEPS.get(key)
    if hit is not None and hit[0]() is tenant and hit[1] is tenant.enrichers and hit[2] is tenant.adjusters:
        return hit[3]
    steps = _plugin_steps(tenant)
    if len(_STEPS) >= _MAX_STEPS:
        _STEPS.clear()  # cheap to make again
    _STEPS[key] = (weakref.ref(tenant), tenant.enrichers, tenant.adjusters, steps)
    return steps


#: id(tenant) -> (the tenant, weakly; its enrichers and adjusters; its steps)
_STEPS: dict[int, tuple["weakref.ref[Tenant]", list[Any], list[Any], list[Step]]] = {}
_MAX_STEPS = 256


def _plugin_steps(tenant: Tenant) -> list[Step]:
    """A context of a business with plugins: its enrichers, our stages, its adjusters, and,
    while an adjuster vetoes a gesture (which frees its place), our choice once more without
    what was vetoed and the adjusters again, up to :data:`REVIEW_ROUNDS` rounds; then
    :func:`_settle`, so that no withheld reason names a vetoed gesture. Folded through
    :meth:`PluginHost.chain`, all of it runs on one worker thread when hooks run under a time
    limit (one hand-off per request); once no round vetoes, the remaining steps are passed over
    (``when``: not timed, not watched). The chain reports into the draft's own warnings list,
    which the drafts it makes share."""
    enrich = [Step(name, _ENRICH, partial(_enrich_with, name, fn, args)) for name, fn, args in tenant.enrichers]
    adjust = [Step(name, _ADJUST, partial(_adjust_with, name, fn, args), _adjusting)
              for name, fn, args in tenant.adjusters]
    again = Step(None, "", _choose_again, _adjusting)
    rounds = [step for _ in range(REVIEW_ROUNDS - 1) for step in (again, *adjust)] if adjust else []
    return [*enrich, Step(None, "", _ours), *adjust, *rounds, Step(None, "", _settle, _vetoed)]


#: Rounds of adjusters at most: the first, and a re-run of the choice after each round that
#: vetoed something. Each re-run needs a new veto, so a round that vetoes nothing ends it.
REVIEW_ROUNDS = 4


def _ours(d: _Draft, _: list[PluginWarning]) -> _Draft:
    _read(d, d.memory)
    _match(d)
    _candidates(d, d.memory)
    _absence(d)
    _choose(d, d.budget, d.max_extras)
    return d


def _adjusting(d: _Draft) -> bool:
    """Whether the adjusters review ``d.recs`` now (set by the choice, cleared by a round
    that vetoes nothing)."""
    return d.adjust


def _vetoed(d: _Draft) -> bool:
    return bool(d.vetoed)


def _choose_again(d: _Draft, _: list[PluginWarning]) -> _Draft:
    """After the adjusters: choose once more without what they vetoed (then adjust again)."""
    if d.adjust and len(d.vetoed) > d.round_start:
        if not _drop_vetoed(d):
            _choose(d, d.budget, d.max_extras)
    else:
        d.adjust = False
    return d


def _drop_vetoed(d: _Draft) -> bool:
    """The choice run again without this round's vetoes, when the vetoes free nothing: the
    first choice with the vetoed gestures left out of its list. Whether it applied.

    Arbitration walks the candidates in order, and a chosen gesture bears on those after it
    only through what it takes: its tier's listing cap, the budget (its cost), its exclusive
    group and its conflicts. When no candidate was withheld for its tier's cap, for the
    budget (with a cost), or for a group or conflict that names it (``blocked_by``), every
    other candidate meets the same fate, with the same reason and detail, in the same
    order, as in a full run without it. Not with an extras draw among learned gestures
    (``_choose_extra`` reweighs them for the new list): then it runs in full.
    tests/test_pipeline_plugins.py compares both ways."""
    decision = d.decision
    if decision is None or (d.trace is not None and d.trace.extras_chance is not None):
        return False
    out = {w["gesture_id"] for w in d.vetoed[d.round_start:]}
    gone = [c for c in decision.chosen if c.gesture.id in out]
    if len(gone) != len(out):
        return False
    tiers = {c.gesture.tier for c in gone}
    spends = any(c.cost for c in gone)
    blocked_by = decision.blocked_by
    for cand, reason, _ in decision.withheld:
        if ((reason == "listing_cap" and cand.gesture.tier in tiers) or (reason == "over_budget" and spends)
                or (reason in ("exclusive_group", "conflict") and blocked_by.get(cand.gesture.id) in out)):
            return False
    chosen = [c for c in decision.chosen if c.gesture.id not in out]
    d.decision = Decision(chosen, decision.withheld, blocked_by)
    d.recs = [_render(d, c) for c in chosen]
    if d.trace is not None:
        _evidence(d)
    d.adjust, d.round_start = bool(d.tenant.adjusters and d.recs), len(d.vetoed)
    return True


def _settle(d: _Draft, _: list[PluginWarning]) -> _Draft:
    """After the last round: a withheld reason never names a gesture that was vetoed. Only an
    adjuster still vetoing in the last of :data:`REVIEW_ROUNDS` rounds leaves such a reason
    (the choice is not run again without adjusters to review it): it is restated without
    the vetoed gesture."""
    decision = d.decision
    if decision is None or not d.vetoed or not decision.blocked_by:
        return d
    out = {w["gesture_id"]: w["detail"] for w in d.vetoed}
    if out.keys().isdisjoint(decision.blocked_by.values()):
        return d  # no withheld reason names a vetoed gesture
    restated, changed = [], False
    for cand, reason, detail in decision.withheld:
        blocker = decision.blocked_by.get(cand.gesture.id)
        if blocker in out:
            detail, changed = (f"held back by a gesture that was then {out[blocker]}; the choice was not run again "
                               f"after {REVIEW_ROUNDS} rounds of plugin review"), True
        restated.append((cand, reason, detail))
    if changed:
        d.decision = replace(decision, withheld=restated)
    return d


# Plugin steps return a new draft and never change the one they are given: a step that runs
# past its time limit is abandoned, and the chain goes on from the draft it was given.


def _copy(d: _Draft) -> _Draft:
    """A shallow copy of a draft, field by field (a fraction of ``dataclasses.replace``'s
    cost, which walks the fields' descriptions; the compiled build's dataclasses have no
    ``__dict__`` to copy). tests/test_pipeline_plugins.py checks that it copies every field."""
    return _Draft(d.ctx, d.tenant, d.warnings, d.row, d.matched, d.mismatched, d.profile, d.assessment, d.notes,
                  d.day, d.memory, d.memo, d.cands, d.holds, d.missing, d.decision, d.recs, d.vetoed, d.adjust,
                  d.round_start, d.limits, d.rendered, d.host, d.budget, d.max_extras, d.learn, d.trace,
                  d.rule_scores, d.customer_key)


def _enrich_with(name: str, fn: Any, args: list[str], d: _Draft, warnings: list[PluginWarning]) -> _Draft:
    ctx, host = d.ctx, d.host
    assert host is not None
    ok, updates = host.call(name, _ENRICH, fn, args, {"context": ctx, "business": ctx.business}, warnings)
    if not ok or updates is None:
        return d
    try:
        if not isinstance(updates, dict) or not updates.keys() <= _ENRICHED:
            raise ContextError([("<return>", "expected None or a dict with 'customer'/'interaction' updates")])
        merged = merge_unset(ctx, updates)
    except ContextError as exc:
        host.warn(name, _ENRICH, f"malformed data: {exc}", warnings)
        return d
    if merged is ctx:
        return d
    d = _copy(d)
    d.ctx = merged
    return d


def _adjust_with(name: str, fn: Any, args: list[str], d: _Draft, warnings: list[PluginWarning]) -> _Draft:
    """The recommendations as the adjuster leaves them; one it leaves out is vetoed."""
    host = d.host
    if not d.adjust or host is None:
        return d
    recs, ctx = d.recs, d.ctx
    handed = [_handed(r) for r in recs]
    # what each handed model held, to tell one left untouched (ours, valid) from one the
    # adjuster changed in place or made anew, which is validated here: its errors name the plugin
    held = {id(m): (_state(m), r) for m, r in zip(handed, recs)}
    ok, new = host.call(name, _ADJUST, fn, args, {"recommendations": handed, "context": ctx}, warnings)
    if not ok or new is None:
        return d
    if not isinstance(new, list) or not all(isinstance(r, Recommendation) for r in new):
        host.warn(name, _ADJUST, "malformed data: expected None or a list of Recommendation", warnings)
        return d
    before = {r["gesture_id"]: r for r in recs}
    added = [r.gesture_id for r in new if r.gesture_id not in before]
    if added:
        host.warn(name, _ADJUST, f"malformed data: cannot add gestures no rule matched: {', '.join(added)}", warnings)
        return d
    out: list[dict[str, Any]] = []
    for i, r in enumerate(new):
        was = held.get(id(r))
        if was is not None and _untouched(r, was[0]):
            out.append(was[1])
            continue
        try:
            out.append(dict(Recommendation.model_validate(r.__dict__)))
        except ValidationError as exc:
            bad = ContextError.from_pydantic(exc, prefix=f"recommendations[{i}]")
            host.warn(name, _ADJUST, f"malformed data: {'; '.join(f'{p}: {m}' for p, m in bad.errors)}", warnings)
            return d
    kept = {r["gesture_id"] for r in out}
    if len(out) == len(recs) and all(a is b for a, b in zip(out, recs)):
        return d  # nothing vetoed, nothing changed
    vetoed = d.vetoed + [{"gesture_id": gid, "title": r["title"], "tier": r["tier"], "cost": r["cost"],
                          "score": r["score"], "reason": "vetoed", "detail": f"vetoed by plugin {name}",
                          "rules": [m.rule_id for m in r["rules"]], "available_on": None}
                         for gid, r in before.items() if gid not in kept]
    out.sort(key=lambda r: rank_key(r["tier"], r["score"], r["gesture_id"]))
    d = _copy(d)
    d.recs, d.vetoed = out, vetoed
    return d


def _handed(rec: dict[str, Any]) -> Recommendation:
    """The model an adjuster is handed for a rendered recommendation: what validating it
    gives, built directly (less than half the cost) when the dict holds every field in the type
    validation would give it: ours are rendered so (:func:`explain.recommendation`; its rule
    matches are immutable, the list is copied). With evidence, or a value of another type,
    it is validated. tests/test_pipeline_plugins.py compares both on every rendering."""
    cost = rec["cost"]
    if rec.keys() != _RENDERED or rec["score"].__class__ is not float or (cost is not None and cost.__class__ is not float):
        return _MAKE(rec)
    return _built(Recommendation, {**rec, "rules": list(rec["rules"]), "evidence": None}, set(_RENDERED))


_MAKE = Recommendation.__pydantic_validator__.validate_python  # model_validate, less a Python call
_NEW, _SET = object.__new__, object.__setattr__
#: the fields of a rendered recommendation (all but ``evidence``, added with a store)
_RENDERED = frozenset(Recommendation.model_fields) - {"evidence"}


def _untouched(rec: Recommendation, state: dict[str, Any]) -> bool:
    """Whether ``rec`` holds what :func:`_state` found in it when it was handed. Without
    evidence, its fields compared as they are (the rule list by its contents) suffice."""
    return (rec.__dict__ if state["evidence"] is None else _state(rec)) == state


def _state(rec: Recommendation) -> dict[str, Any]:
    """What a recommendation holds, down to the contents of its mutable parts (the rule
    match list, the evidence), to compare before and after an adjuster."""
    state = rec.__dict__.copy()
    state["rules"] = list(rec.rules)
    if rec.evidence is not None:
        state["evidence"] = rec.evidence.__dict__.copy()
    return state


def merge_unset(ctx: Context, updates: dict[str, Any]) -> Context:
    """Apply store/plugin updates (``{section: {field: value}}``) to fields the caller left
    unset; an ``attributes`` map is merged key by key, the caller's keys winning. ``ctx``
    itself when nothing changes.

    Only what changes is validated: each changed field by its own validator on a copy of its
    section, which runs the section's model checks too (pydantic's ``validate_assignment``),
    the same checks a whole re-validation would apply to it, at a fraction of the cost (the
    rest of the context is valid already). Whatever that refuses, or cannot place, is
    validated again as a whole context (:func:`_merge_whole`), so the errors read exactly as
    for a caller's context: :class:`ContextError`, each with its field path."""
    if not updates:
        return ctx
    try:
        return _merge_changed(ctx, updates)
    except (ValidationError, LookupError, TypeError):
        return _merge_whole(ctx, updates)


def _merge_changed(ctx: Context, updates: dict[str, Any]) -> Context:
    """:func:`merge_unset`, validating only the fields it changes; raises on anything it
    does not place (an unknown section or field, a section that is not a dict) or refuses."""
    sections: dict[str, Any] = {}
    for section, values in updates.items():
        model = ctx.__dict__.get(section) if section in _SECTIONS else None
        if model is None or not isinstance(values, dict):
            raise LookupError(section)
        fields = model.__dict__
        new: Any = None  # a copy of the section, once a field of it changes
        attributes = None
        for key, value in values.items():
            if key not in fields:
                raise LookupError(key)
            current = fields[key]
            if key == "attributes" and isinstance(value, dict):
                # an open map: its own validators are every check that applies to it (no
                # check of its section reads it), so the merged map alone is validated
                attributes = _scalars().validate_python({**value, **current})
                continue
            if current not in (None, [], {}):
                continue
            if new is None:
                new = _updated(model, {})
            type(model).__pydantic_validator__.validate_assignment(new, key, value)
        if attributes is not None:
            new = _updated(model if new is None else new, {"attributes": attributes})
        if new is not None:
            sections[section] = new
    return _updated(ctx, sections) if sections else ctx


def _updated(model: Any, update: dict[str, Any]) -> Any:
    """``model.model_copy(update=update)`` for a context model (extra fields forbidden, no
    private attributes), without the generic copy's Python steps (half its cost): the
    fields shallow-copied, the updated ones replaced and counted as set."""
    if model.__pydantic_extra__ is not None or model.__pydantic_private__ is not None:
        return model.model_copy(update=update)
    return _built(type(model), {**model.__dict__, **update}, model.__pydantic_fields_set__ | update.keys())


def _built(cls: Any, fields: dict[str, Any], fields_set: set[str]) -> Any:
    """A model of ``cls`` (extra fields forbidden, no private attributes) holding ``fields``
    as they are, as validation or ``model_copy`` would leave it, without their Python steps."""
    model = _NEW(cls)
    _SET(model, "__dict__", fields)
    _SET(model, "__pydantic_fields_set__", fields_set)
    _SET(model, "__pydantic_extra__", None)
    _SET(model, "__pydantic_private__", None)
    return model


@cache
def _scalars() -> Any:
    """The validator of an ``attributes`` map, as its section applies it (strict): pydantic's
    core validator, without the adapter's Python wrapper."""
    return TypeAdapter(Scalars, config=ConfigDict(strict=True)).validator


#: The context's sections that updates address (each a model of its own).
_SECTIONS = frozenset(name for name, info in Context.model_fields.items()
                      if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))


def _merge_whole(ctx: Context, updates: dict[str, Any]) -> Context:
    """:func:`merge_unset` by re-validating the whole context with the updates applied."""
    data = ctx.model_dump(exclude_unset=True)
    for section, values in updates.items():
        if not isinstance(values, dict):
            raise ContextError([(str(section), f"expected a dict of field updates, got {type(values).__name__}")])
        current = data.setdefault(section, {})
        for key, value in values.items():
            if key == "attributes" and isinstance(value, dict):
                current["attributes"] = {**value, **current.get("attributes", {})}
            elif current.get(key) in (None, [], {}):
                current[key] = value
    return parse_context(data)
