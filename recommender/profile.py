"""A business's profile: the numbers the shipped rules read instead of fixed constants.

"Loyal" at a bank is ten years; at a gym it is two. A 50 credit is a gesture at a garage
and an insult at a private bank. So the packs test derived facts (``customer.loyal``,
``customer.high_value``, ``interaction.severity``) and each business sets the scale they
are derived on, the money each staff level may give, how rare the unexpected extra is and
how much an agent is shown. Sources, each overriding the last: the defaults below, a
plugin's ``recommender_business_profile`` (a trade's defaults), ``Recommender(profiles=)``
(configuration: ``"default"`` and business ids), and a tenant's own profile in the store.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from typing_extensions import Annotated

from .context import MAX_NUMBER
from .errors import ContextError

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Profile", "ProfileError", "merge_profiles", "derive_customer"]

Money = Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]


class ProfileError(ContextError):
    """A profile key or value is invalid; ``errors`` names each key."""


class Listing(BaseModel):
    """How many gestures of each tier an agent is shown; the rest are reported as withheld."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recover: Annotated[int, Field(ge=0, le=20)] = 2
    meet: Annotated[int, Field(ge=0, le=20)] = 2
    exceed: Annotated[int, Field(ge=0, le=20)] = 1


class MoneyLimits(BaseModel):
    """What each staff level may give away on their own, per gesture, in the profile's currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    synthetic: Money = 10.0
    genuine: Money = 50.0
    super: Money = 250.0


class Profile(BaseModel):
    """Per-business parameters (see docs/advice.md for each, with worked examples)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    #: A customer is loyal from this tenure, or from this many lifetime visits.
    loyal_tenure_years: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 3.0
    loyal_visits: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    #: A customer is high-value from this lifetime value.
    high_value: Money = 2000.0
    #: With a store: loyal / high-value also from this percentile of the business's own
    #: customers (tenure / lifetime value), so the scale follows the business.
    loyal_percentile: Annotated[float, Field(ge=50, le=100, allow_inf_nan=False)] = 80.0
    high_value_percentile: Annotated[float, Field(ge=50, le=100, allow_inf_nan=False)] = 80.0
    #: Money at stake from which a negative case counts one severity step higher (ten times
    #: this: two steps).
    major_amount: Money = 100.0
    #: A wait this long is a negative experience in itself.
    long_wait_minutes: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)] = 15.0
    money_limits: MoneyLimits = Field(default_factory=MoneyLimits)
    #: The share of interactions with an extra on offer that get one (the exceptional ~10%).
    extras_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.10
    #: The key of the extras draw: set your own so customers cannot predict it.
    extras_key: Annotated[str, Field(min_length=1, max_length=200)] = "recommender-extras"
    listing: Listing = Field(default_factory=Listing)

    @field_validator("money_limits")
    @classmethod
    def _ordered(cls, v: MoneyLimits) -> MoneyLimits:
        if not v.synthetic <= v.genuine <= v.super:
            raise ValueError("money limits must not fall with authority (synthetic <= genuine <= super)")
        return v

    def limit_for(self, level: str) -> float:
        return float(getattr(self.money_limits, level))


def _validate(data: Mapping[str, Any], where: str) -> Profile:
    try:
        return Profile.model_validate(dict(data))
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1]), _keys(err["loc"][:-1]), n=1)
                msg = "unknown profile key" + (f" (did you mean {close[0]!r}?)" if close else "")
            errors.append((f"{where}.{path}" if where else path, msg))
        raise ProfileError(errors) from None


def _keys(parent: tuple[Any, ...]) -> list[str]:
    model: Any = Profile
    for part in parent:
        model = model.model_fields[str(part)].annotation
    return list(model.model_fields)


def merge_profiles(*layers: Mapping[str, Any] | None, where: str = "profile") -> Profile:
    """The profile from layered partial dicts (later wins; nested sections merge key by key)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            raise ProfileError([(where, f"a profile is a mapping, got {type(layer).__name__}")])
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = dict(value) if isinstance(value, Mapping) else value
    return _validate(merged, where)


def _judge(*signals: bool | None) -> bool | None:
    """True when a known signal says so, False when the known ones all say no, None (unknown:
    rules on it do not match) when none is known."""
    known = [s for s in signals if s is not None]
    return any(known) if known else None


def _at_least(value: float | None, bar: float) -> bool | None:
    return None if value is None else value >= bar


def derive_customer(ctx: "Context", profile: Profile) -> dict[str, Any]:
    """``loyal``, ``high_value`` and ``returning`` on this business's scale, unless given."""
    c = ctx.customer
    derived = {
        "loyal": _judge(_at_least(c.tenure_years, profile.loyal_tenure_years),
                        _at_least(c.visits, profile.loyal_visits),
                        _at_least(c.tenure_percentile, profile.loyal_percentile)),
        "high_value": _judge(_at_least(c.lifetime_value, profile.high_value),
                             _at_least(c.value_percentile, profile.high_value_percentile),
                             True if c.is_vip else None),
        "returning": _at_least(c.visits, 2),
    }
    return {k: v for k, v in derived.items() if v is not None and getattr(c, k) is None}
