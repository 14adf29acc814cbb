"""The unexpected extra: rare, aimed, unpredictable to customers, reproducible for us.

An extra (a gesture of tier ``exceed``) given every time stops being a surprise and becomes
an expectation whose absence disappoints (docs/advice.md). So whether an interaction gets
one is drawn: with probability ``extras_rate`` times an aim that favours value and risk (a
high-value or loyal customer, a new customer not yet won, a small slip an extra can turn
around), capped so that no kind of customer gets it nearly every time. The draw is a keyed
hash of the business, the customer and the day: the same customer on the same day gets the
same answer (replays and receipts agree), a customer cannot work out when the next one
comes without the business's key, and no attribute value decides it on its own.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import Context
    from .issues import Assessment
    from .profile import Profile

__all__ = ["Draw", "draw", "day_of", "aim", "MAX_CHANCE"]

#: No interaction's chance exceeds this, however well aimed: the extra stays a surprise.
MAX_CHANCE = 0.5


@dataclass(frozen=True)
class Draw:
    chance: float   # the probability this interaction gets an extra
    roll: float     # the keyed hash in [0, 1)
    day: date

    @property
    def won(self) -> bool:
        return self.roll < self.chance


def day_of(ctx: "Context", today: date | None = None) -> date:
    """The interaction's day: ``occurred_at`` if given, else ``today`` (UTC)."""
    at = ctx.interaction.occurred_at
    if at is not None:
        return (at.astimezone(timezone.utc) if at.tzinfo else at).date()
    return today or datetime.now(timezone.utc).date()


def aim(ctx: "Context", assessment: "Assessment") -> float:
    """How much more (or less) likely than the base rate this interaction should get an extra."""
    c = ctx.customer
    weight = 1.0
    if c.high_value:
        weight *= 1.5
    if c.loyal:
        weight *= 1.3
    if c.is_new:
        weight *= 1.5  # not yet won: the first impressions decide whether they come back
    if 0 < assessment.severity <= 2:
        weight *= 1.2  # a small slip put right, plus a surprise, can leave them happier than before
    elif assessment.severity >= 3:
        weight *= 0.5  # a serious failure wants recovery, not a treat
    return weight


def draw(ctx: "Context", profile: "Profile", assessment: "Assessment", customer_key: str,
         today: date | None = None, steer: float = 1.0) -> Draw:
    """The extras draw for ``ctx``. ``customer_key`` identifies the customer (their id, or the
    context's hash for an anonymous one); ``steer`` (from the store's realised rate) scales
    the chance towards the business's target."""
    day = day_of(ctx, today)
    message = f"{ctx.business.id}|{customer_key}|{day.isoformat()}".encode()
    digest = hmac.new(profile.extras_key.encode(), message, hashlib.sha256).digest()
    roll = int.from_bytes(digest[:8], "big") / 2**64
    if profile.extras_rate >= 1.0:  # "always": for testing a pack's extras, never for customers
        return Draw(chance=1.0, roll=roll, day=day)
    chance = min(profile.extras_rate * aim(ctx, assessment) * steer, MAX_CHANCE, 4 * profile.extras_rate)
    return Draw(chance=chance, roll=roll, day=day)
