"""Learning from outcomes: which of the gestures the rules allow is offered first.

Rules decide *what may be offered*; outcomes decide *what is offered first* (docs/learning.md).
This module is the model, with no SQL: the memory store keeps the evidence
(:mod:`recommender.memory.learning`) and hands it back as :class:`Stats`.

* Each gesture's **acceptance** in a **segment** (the business, always, plus the configured
  dimensions: issue family, tier, value band, staff level by default) is a Beta posterior:
  ``Beta(a0 + accepted, b0 + declined)``, the prior ``(a0, b0)`` centred on the rule's
  priority (:func:`prior_mean`) with ``prior_strength`` pseudo-outcomes. Outcomes are
  weighted by recency: each one counts ``0.5 ** (age / half_life_days)``, applied as the
  evidence is updated (so reading it needs no clock and replays exactly).
* The documented score (docs/ranking.md) is multiplied by ``p / p0``, the posterior mean over
  the prior mean: the expected value of offering the gesture (its value times the chance it is
  taken) relative to what the rule's priority assumed. Until ``min_evidence`` outcomes are in
  the segment, ``p / p0`` is 1: the rule's own order stands.
* Which extra is given, when the extras draw falls on an interaction, is chosen by Thompson
  sampling: one draw from each eligible extra's posterior, from a generator seeded with the
  extras draw's keyed hash (:func:`choice_seed`), so the same customer on the same day with
  the same evidence gets the same extra; :func:`choice_probabilities` is the chance each had,
  logged with the decision for off-policy evaluation.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from .context import Context
    from .profile import Profile

__all__ = ["LearningConfig", "Stats", "Posterior", "SEGMENT_DIMENSIONS", "DEFAULT_SEGMENTS", "prior_mean",
           "segment_key", "posterior", "learned_score", "decay", "choice_seed", "thompson_order",
           "choice_probabilities", "evidence_text", "update", "counts_of", "extras_probability", "Trace", "LearningMemory", "CHOICE_DRAWS",
           "beta_cdf", "credible_interval", "CREDIBLE_MASS"]

#: Each segment dimension a business may learn by (the business itself is always one): its
#: label in the segment key, and its value for a gesture of a tier in a context (None: unknown).
_SEGMENT_PARTS: dict[str, tuple[str, Callable[["Context", str], str | None]]] = {
    "family": ("family", lambda ctx, tier: ctx.interaction.family),
    "tier": ("tier", lambda ctx, tier: tier),
    "value_band": ("value", lambda ctx, tier: _value_band(ctx)),
    "staff_level": ("staff", lambda ctx, tier: ctx.staff.level),
    "severity": ("severity", lambda ctx, tier: _severity_band(ctx)),
    "channel": ("channel", lambda ctx, tier: ctx.interaction.channel),
    "store": ("store", lambda ctx, tier: ctx.business.store_id),
    "vertical": ("vertical", lambda ctx, tier: ctx.business.vertical),
}
SEGMENT_DIMENSIONS = tuple(_SEGMENT_PARTS)
DEFAULT_SEGMENTS = ("family", "tier", "value_band", "staff_level")
#: Monte-Carlo draws behind a logged choice probability (deterministic: a fixed generator).
CHOICE_DRAWS = 2000
#: The share of the posterior a shown credible interval holds (equal tails).
CREDIBLE_MASS = 0.95


@dataclass(frozen=True)
class LearningConfig:
    """How outcomes are learned from.

    ``segments``: the dimensions outcomes are pooled by (besides the business);
    ``half_life_days``: an outcome this old counts half as much as one today;
    ``min_evidence``: outcomes a gesture needs in a segment before its learned acceptance
    changes the order; ``prior_strength``: how many outcomes the rule's priority is worth.
    """

    segments: tuple[str, ...] = DEFAULT_SEGMENTS
    half_life_days: float = 90.0
    min_evidence: int = 30
    prior_strength: float = 4.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.segments if s not in SEGMENT_DIMENSIONS]
        if unknown:
            raise ValueError(f"learning.segments: unknown dimension(s) {', '.join(unknown)} "
                             f"(one of {', '.join(SEGMENT_DIMENSIONS)})")
        if not self.half_life_days > 0 or not self.prior_strength > 0 or self.min_evidence < 0:
            raise ValueError("learning: half_life_days and prior_strength must be > 0, min_evidence >= 0")


@dataclass(frozen=True)
class Stats:
    """The evidence kept for one gesture in one segment: recency-weighted counts and the raw
    number of outcomes (acceptances and declines) behind them."""

    accepted: float = 0.0
    declined: float = 0.0
    delivered: float = 0.0
    n: int = 0


def prior_mean(priority: int) -> float:
    """What a rule's priority says about acceptance before any outcome: 0.2 at priority 0 to
    0.8 at 100."""
    return 0.2 + 0.6 * max(0, min(priority, 100)) / 100


@dataclass(frozen=True)
class Posterior:
    """A gesture's acceptance in a segment: ``Beta(alpha, beta)`` after ``n`` outcomes."""

    segment: str
    alpha: float
    beta: float
    n: int
    prior: float  # the prior mean (from the rule's priority)
    learned: bool  # enough evidence to change the order
    delivered: float | None = None  # recency-weighted share of acceptances delivered

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def factor(self) -> float:
        """What the score is multiplied by: posterior over prior mean, 1 until learned."""
        return self.mean / self.prior if self.learned else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"acceptance": round(self.mean, 4), "outcomes": self.n, "alpha": round(self.alpha, 4),
                "beta": round(self.beta, 4), "prior": round(self.prior, 4), "segment": self.segment,
                "learned": self.learned,
                "delivery": None if self.delivered is None else round(self.delivered, 4)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Posterior":
        return cls(segment=str(data.get("segment", "")), alpha=float(data["alpha"]), beta=float(data["beta"]),
                   n=int(data.get("outcomes", 0)), prior=float(data.get("prior", 0.5)),
                   learned=bool(data.get("learned", False)), delivered=data.get("delivery"))


def _value_band(ctx: "Context") -> str:
    hv = ctx.customer.high_value
    return "unknown" if hv is None else ("high" if hv else "standard")


def _severity_band(ctx: "Context") -> str:
    s = ctx.interaction.severity
    return "unknown" if s is None else ("none" if s == 0 else "minor" if s <= 2 else "major")


def segment_key(ctx: "Context", tier: str, dims: Sequence[str] = DEFAULT_SEGMENTS) -> str:
    """The segment of a gesture of ``tier`` offered in ``ctx``, e.g.
    ``family=billing_error|tier=recover|value=high|staff=genuine`` (the business is the
    store's tenant column). Stored evidence is keyed by it: the text must never change."""
    parts = [(_SEGMENT_PARTS[d][0], _SEGMENT_PARTS[d][1](ctx, tier)) for d in dims if d in _SEGMENT_PARTS]
    return "|".join(f"{label}={value or 'unknown'}" for label, value in parts) or "all"


def posterior(stats: Stats | None, priority: int, segment: str, config: LearningConfig) -> Posterior:
    """The posterior of a gesture whose best matching rule has ``priority``."""
    p0 = prior_mean(priority)
    s = config.prior_strength
    st = stats or Stats()
    accepted = st.accepted
    delivered = None if accepted <= 0 else min(1.0, st.delivered / accepted)
    return Posterior(segment=segment, alpha=p0 * s + st.accepted, beta=(1 - p0) * s + st.declined, n=st.n,
                     prior=p0, learned=st.n >= config.min_evidence, delivered=delivered)


def learned_score(score: float, post: Posterior | None) -> float:
    """The documented score times ``p / p0`` once learned (unchanged before)."""
    if post is None or not post.learned:
        return score
    return round(score * post.factor, 2)


def decay(age_days: float, half_life_days: float) -> float:
    """The weight of an outcome ``age_days`` old."""
    return 0.5 ** (max(age_days, 0.0) / half_life_days)


def update(stats: Stats, updated_at: datetime | None, at: datetime, accepted: float, declined: float,
           delivered: float, half_life_days: float) -> tuple[Stats, datetime]:
    """Evidence after one outcome at ``at``: what was there ages by the time since it was last
    updated and the new outcome counts 1; an outcome recorded late for an earlier time counts
    as old as it is. Returns the new evidence and its time."""
    counted = 1 if (accepted or declined) else 0
    if updated_at is None:
        return Stats(accepted, declined, delivered, counted), at
    age = (at - updated_at).total_seconds() / 86400
    if age >= 0:
        keep, weight, stamp = decay(age, half_life_days), 1.0, at
    else:
        keep, weight, stamp = 1.0, decay(-age, half_life_days), updated_at
    return Stats(stats.accepted * keep + accepted * weight, stats.declined * keep + declined * weight,
                 stats.delivered * keep + delivered * weight, stats.n + counted), stamp


def counts_of(outcome: str, before: set[str]) -> tuple[float, float, float]:
    """What one new outcome adds (accepted, declined, delivered), given the outcomes already
    recorded for the same decision gesture: an acceptance counts once (``accepted`` then
    ``delivered`` is one acceptance and one delivery); ``offered`` adds nothing."""
    if outcome == "accepted":
        return (0.0 if "delivered" in before else 1.0), 0.0, 0.0
    if outcome == "delivered":
        return (0.0 if "accepted" in before else 1.0), 0.0, 1.0
    if outcome == "declined" and not before & {"accepted", "delivered"}:
        return 0.0, 1.0, 0.0
    return 0.0, 0.0, 0.0


def choice_seed(ctx: "Context", profile: "Profile", customer_key: str, day: date) -> bytes:
    """The seed of the extras choice: the extras draw's keyed hash (HMAC-SHA256 with the
    profile's ``extras_key`` of the business, the customer and the day), on its own label."""
    message = f"{ctx.business.id}|{customer_key}|{day.isoformat()}|extra-choice".encode()
    return hmac.new(profile.extras_key.encode(), message, hashlib.sha256).digest()


def _params(posts: Mapping[str, Posterior]) -> list[tuple[str, float, float]]:
    return [(g, p.alpha, p.beta) for g, p in sorted(posts.items())]


def thompson_order(posts: Mapping[str, Posterior], seed: bytes,
                   weights: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """One Thompson draw per gesture from its posterior (times its weight, when given),
    highest first: ``[(gesture, value)]``."""
    rng = random.Random(int.from_bytes(seed[:16], "big"))
    w = weights or {}
    drawn = [(g, w.get(g, 1.0) * rng.betavariate(a, b)) for g, a, b in _params(posts)]
    return sorted(drawn, key=lambda x: (-x[1], x[0]))


def choice_probabilities(posts: Mapping[str, Posterior], k: int = 1, draws: int = CHOICE_DRAWS,
                         weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The chance each gesture is among the ``k`` highest Thompson values (Monte Carlo from
    a generator seeded by the posteriors themselves, so the same evidence gives the same
    numbers).

    The answer is a function of its inputs' values alone, and costs milliseconds while the
    evidence of a segment changes far less often than requests come: it is kept (a bounded
    memo, :data:`CHOICE_MEMO`) keyed by the exact text of those values (``repr``, so ``1``
    and ``1.0``, or ``0.0`` and ``-0.0``, stay apart), and a kept answer is exactly what the
    computation gives (tested against it)."""
    params = _params(posts)
    if not params:
        return {}
    if len(params) <= k:
        return {g: 1.0 for g, _, _ in params}
    w = weights or {}
    key = _memo_key(params, k, draws, w)
    if key is None:
        return _choice_probabilities(params, k, draws, w)
    hit = _CHOICES.get(key)
    if hit is None:
        hit = _choice_probabilities(params, k, draws, w)
        with _CHOICES_LOCK:
            while _CHOICES and len(_CHOICES) >= CHOICE_MEMO:
                del _CHOICES[next(iter(_CHOICES))]  # the oldest first
            if CHOICE_MEMO > 0:
                _CHOICES[key] = hit
    return dict(hit)


#: Choice probabilities kept (:func:`choice_probabilities`): sets of posteriors and weights.
CHOICE_MEMO = 4096
_CHOICES: dict[str, dict[str, float]] = {}
_CHOICES_LOCK = threading.Lock()


def _memo_key(params: list[tuple[str, float, float]], k: int, draws: int, w: Mapping[str, float]) -> str | None:
    """The exact text of what :func:`_choice_probabilities` reads (None, uncached, for inputs
    of any other type than ``str``, ``int`` and ``float``, whose text might not tell them apart)."""
    exact = (int, float)
    values = [(g, a, b, w.get(g, 1.0)) for g, a, b in params]
    if not all(type(g) is str and type(a) in exact and type(b) in exact and type(x) in exact
               for g, a, b, x in values) or type(k) is not int or type(draws) is not int:
        return None
    return repr((k, draws, values))


def _choice_probabilities(params: list[tuple[str, float, float]], k: int, draws: int,
                          w: Mapping[str, float]) -> dict[str, float]:
    """:func:`choice_probabilities`, computed (more gestures than ``k``)."""
    if k == 1:
        return _top_one(params, w)
    seed = hashlib.sha256(repr([(g, round(a, 9), round(b, 9), round(w.get(g, 1.0), 9))
                                for g, a, b in params]).encode()).digest()
    rng = random.Random(int.from_bytes(seed[:16], "big"))
    hits = {g: 0 for g, _, _ in params}
    for _ in range(draws):
        drawn = sorted(((w.get(g, 1.0) * rng.betavariate(a, b), g) for g, a, b in params), reverse=True)
        for _, g in drawn[:k]:
            hits[g] += 1
    # never log a zero for a gesture that can be chosen: it would make its weight infinite
    floor = 0.5 / draws
    return {g: round(max(h / draws, floor), 4) for g, h in hits.items()}


GRID = 512
_XS = [(i + 0.5) / GRID for i in range(GRID)]
_LOGS = [(math.log(x), math.log1p(-x)) for x in _XS]


def _top_one(params: list[tuple[str, float, float]], w: Mapping[str, float]) -> dict[str, float]:
    """``P(w_i * theta_i is the largest)`` for independent ``theta_i ~ Beta(a_i, b_i)``, by
    integration on a midpoint grid of :data:`GRID` points (exact arithmetic, so the same
    evidence gives the same numbers on every machine)."""
    xs = _XS
    dens: list[list[float]] = []
    cdfs: list[list[float]] = []
    for _, a, b in params:
        logs = [(a - 1) * lx + (b - 1) * ly for lx, ly in _LOGS]
        top = max(logs)
        d = [math.exp(v - top) for v in logs]
        total = sum(d)
        d = [v / total for v in d]  # probability mass per grid cell
        c, acc = [], 0.0
        for v in d:
            c.append(acc + v / 2)  # the CDF at the cell's middle
            acc += v
        dens.append(d)
        cdfs.append(c)

    def cdf_at(j: int, ratio: float) -> list[float]:
        """``F_j(ratio * x)`` at every grid point, linear between the cells' middles."""
        c = cdfs[j]
        if ratio == 1.0:
            return c
        row = []
        for x in xs:
            pos = ratio * x * GRID - 0.5
            if pos >= GRID - 1:
                row.append(1.0 if ratio * x >= 1.0 else c[-1] + (1 - c[-1]) * (pos - (GRID - 1)) * 2)
            elif pos <= 0:
                row.append(c[0] * max(ratio * x * GRID * 2, 0.0))
            else:
                k = int(pos)
                f = pos - k
                row.append(c[k] * (1 - f) + c[k + 1] * f)
        return row

    ws = [max(float(w.get(g, 1.0)), 1e-12) for g, _, _ in params]
    out: dict[str, float] = {}
    for i, (g, _, _) in enumerate(params):
        prod = dens[i]
        for j in range(len(params)):
            if j != i:
                prod = [a * b for a, b in zip(prod, cdf_at(j, ws[i] / ws[j]))]
        out[g] = math.fsum(prod)
    total = sum(out.values()) or 1.0
    floor = 1e-4  # never log a zero for a gesture that can be chosen: its weight would be infinite
    return {g: round(max(v / total, floor), 4) for g, v in out.items()}


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a - 1 + m2) * (a + m2)), -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-13:
            break
    return h


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def beta_cdf(x: float, a: float, b: float) -> float:
    """``P(theta <= x)`` for ``theta ~ Beta(a, b)``: the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(p: float, a: float, b: float) -> float:
    """The ``x`` with ``beta_cdf(x) == p``: Newton steps kept inside a shrinking bracket
    (bisection when a step would leave it)."""
    lo, hi = 0.0, 1.0
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1.0))
    z = 1.96 if p > 0.5 else -1.96
    x = min(max(mean + z * math.sqrt(var) * (abs(p - 0.5) / 0.475), 1e-9), 1 - 1e-9)
    lb = _log_beta(a, b)
    for _ in range(100):
        f = beta_cdf(x, a, b) - p
        if f > 0:
            hi = x
        else:
            lo = x
        dens = math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - lb)
        step = f / dens if dens > 0 else float("inf")
        nxt = x - step
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2
        if abs(nxt - x) < 1e-10 or hi - lo < 1e-10:
            return nxt
        x = nxt
    return x


def credible_interval(alpha: float, beta: float, mass: float = CREDIBLE_MASS) -> tuple[float, float]:
    """The equal-tailed interval holding ``mass`` of ``Beta(alpha, beta)``: where the acceptance
    lies with that probability given the evidence (wide with few outcomes, narrow with many;
    what the console's insights show beside the mean)."""
    tail = (1.0 - mass) / 2.0
    return round(_beta_quantile(tail, alpha, beta), 4), round(_beta_quantile(1.0 - tail, alpha, beta), 4)


def evidence_text(post: Posterior) -> str:
    """One sentence for the person serving."""
    if post.n == 0:
        return "no outcomes yet for similar customers: ranked by its rule's priority"
    share = f"{post.mean:.0%}"
    noun = "outcome" if post.n == 1 else "outcomes"
    text = f"accepted by {share} of similar customers ({post.n} {noun})"
    if not post.learned:
        text += ": too few to change the order yet"
    return text


class LearningMemory(Protocol):
    """What a store offers the pipeline for learning (optional on a :class:`Memory`)."""

    def propensities(self, ctx: "Context", offers: Iterable[tuple[str, str, int]]) -> dict[str, Posterior]:
        """Posteriors by gesture for ``(gesture_id, tier, priority)`` offers in ``ctx``."""


@dataclass
class Trace:
    """What the pipeline logs with a decision for off-policy evaluation."""

    extras_chance: float | None = None
    extra_drawn: bool | None = None
    choices: dict[str, float] = field(default_factory=dict)

    def as_dict(self, posts: Mapping[str, Posterior]) -> dict[str, Any]:
        return {"extras_chance": None if self.extras_chance is None else round(self.extras_chance, 6),
                "extra_drawn": self.extra_drawn, "choices": dict(self.choices),
                "evidence": {g: p.as_dict() for g, p in sorted(posts.items())}}

    def propensity(self, given_extras: Sequence[str]) -> float:
        """The policy's probability of the stochastic part of what was given: the extras draw
        (won or not) times the choice of the extra given (:func:`extras_probability`)."""
        return extras_probability(self.extras_chance, self.choices, given_extras)


def extras_probability(chance: float | None, choices: Mapping[str, float], given_extras: Sequence[str]) -> float:
    """The probability that a policy whose extras draw has ``chance`` and whose choice if it
    is won is ``choices`` (gesture -> probability) gives exactly the extras ``given_extras``:
    none is ``(1 - chance)``, plus ``chance`` when no extra is eligible; an extra is
    ``chance`` times its choice probability."""
    if chance is None:
        return 0.0 if given_extras else 1.0
    if not given_extras:
        return (1.0 - chance) + (chance if not choices else 0.0)
    p = chance
    for g in given_extras:
        p *= choices.get(g, 0.0)
    return p
