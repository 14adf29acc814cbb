"""Many recommendations at once: the answers of ``recommend()`` in a loop, at a lower cost.

``recommend_many(recommender, contexts)`` returns one :class:`RecommendationResult` per
context, in order, equal to what ``recommender.recommend(context)`` returns for each. Every
distinct context goes through the same pipeline as ``recommend()`` (:mod:`recommender.pipeline`),
so the answers cannot drift apart; the batch saves what a loop repeats:

* a list of dicts is validated in one pydantic call (a ``TypeAdapter`` over the list), and
  an invalid context is reported with its index (``2.interaction.issue: ...``) before any
  context is evaluated;
* contexts go through the pipeline's stages together, 512 at a time (every match, then every
  ranking, every explanation, one validation of all results), which keeps each stage's code
  and data hot in the CPU's caches: the main saving (``bench/README.md``);
* a context that occurs more than once (the same object, or the same JSON text) is answered
  once; every occurrence gets an equal result, a separate object with its own lists, whose
  items (recommendations, withheld gestures, the receipt) are shared and should be treated
  as read-only. Telling equal but distinct dicts apart would cost a serialisation per
  context (about 4 us, 5% of a small recommend()), so they are evaluated separately.

* the cyclic garbage collector is paused for the batch: results are acyclic trees of many
  small objects, and a batch keeps them all alive, so each collection would walk a growing
  heap for nothing (at 10,000 rules this halved throughput). Collection resumes afterwards.

Decisions with side effects keep the loop's semantics: with a ``store`` (every decision is
logged) or for a business whose plugins enrich contexts or adjust recommendations (plugins
run once per call), every context is evaluated on its own, without dedupe.
"""

from __future__ import annotations

import gc
from typing import Any, Iterable

from pydantic import TypeAdapter, ValidationError

from .context import Context, parse_context
from .errors import ContextError
from .memory_protocol import Memory
from .pipeline import decide
from .results import RecommendationResult

__all__ = ["recommend_many"]

_CONTEXTS = TypeAdapter(list[Context])
_STAGE = 512  # contexts run through the pipeline's stages together (bounds the work in flight)


def recommend_many(recommender: Any, contexts: Iterable[Context | dict[str, Any] | str | bytes], *,
                   budget: float | None = None, max_extras: int | None = None,
                   store: Memory | None = None) -> list[RecommendationResult]:
    """``[recommender.recommend(c, budget=..., max_extras=..., store=...) for c in contexts]``,
    computed as a batch.

    Raises :class:`ContextError` for the first invalid context, its index leading the path.
    """
    raw = list(contexts)
    parsed = _validate(raw)
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _run(recommender, raw, parsed, budget, max_extras, store)
    finally:
        if paused:
            gc.enable()


def _run(recommender: Any, raw: list[Any], parsed: list[Context], budget: float | None,
         max_extras: int | None, store: Memory | None) -> list[RecommendationResult]:
    one: dict[str, Any] = dict(budget=budget, max_extras=max_extras, store=store)
    if store is not None:  # every decision is enriched, screened and logged on its own
        return [decide(recommender, [ctx], **one)[0] for ctx in parsed]
    out: list[RecommendationResult | None] = [None] * len(parsed)
    staged: list[int] = []  # positions answered by the staged run
    first: dict[Any, int] = {}  # context identity -> position of its first occurrence
    copies: list[tuple[int, int]] = []  # (position, position of the equal context answered)
    plugins: dict[tuple[str, str | None], bool] = {}
    for i, (item, ctx) in enumerate(zip(raw, parsed)):
        business = ctx.business
        tkey = (business.id, business.vertical)
        per_call = plugins.get(tkey)
        if per_call is None:
            tenant = recommender._tenant(business)
            per_call = plugins[tkey] = bool(tenant.enrichers or tenant.adjusters)
        if per_call:  # plugins run once per call, in call order: no staging, no dedupe
            out[i] = decide(recommender, [ctx], **one)[0]
            continue
        key = item if isinstance(item, (str, bytes)) else id(item)
        if key in first:
            copies.append((i, first[key]))
        else:
            first[key] = i
            staged.append(i)
    for start in range(0, len(staged), _STAGE):
        part = staged[start:start + _STAGE]
        for i, result in zip(part, decide(recommender, [parsed[i] for i in part], **one)):
            out[i] = result
    for i, j in copies:
        out[i] = _copy(out[j])  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def _validate(items: list[Any]) -> list[Context]:
    if all(type(c) is dict for c in items):
        try:
            return _CONTEXTS.validate_python(items)
        except ValidationError as exc:
            raise ContextError.from_pydantic(exc) from None
    out = []
    for i, c in enumerate(items):
        try:
            out.append(parse_context(c))
        except ContextError as exc:
            raise ContextError([(f"{i}.{path}" if path else str(i), msg) for path, msg in exc.errors]) from None
    return out


def _copy(result: RecommendationResult) -> RecommendationResult:
    """A separate result with its own lists; the items in them are shared with ``result``."""
    lists = {name: list(value) for name, value in result.__dict__.items() if isinstance(value, list)}
    return result.model_copy(update=lists)
