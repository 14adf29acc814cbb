"""A tenant's own business profile: the last profile layer, kept in the store and set over HTTP or
the CLI.

The profile (:class:`~recommender.profile.Profile`: the business's loyalty and value scales,
money limits, extras rate, listing caps) comes in layers: the core's defaults, the plugins'
trade defaults, configuration, and last the tenant's own, stored here. The stored layer is
partial (only the keys the tenant set) and validated with
:func:`~recommender.profile.merge_profiles` before anything is written: an unknown key or a bad
value is :class:`InvalidStoreInput` naming the key, and what was stored stays as it was.

Every change is a new revision (``tenant_profiles``: who set it, when): a logged decision names
the revision it was made under, so a replay applies the same layer. The recommender reads the
layer through :meth:`TenantProfiles.profile_layer`, kept per tenant for the policy's
``profile_cache_seconds`` (30): a write on this process applies to its next request; another
server sees it within that many seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import Connection, func, insert, select

from ..profile import Profile, ProfileError, merge_profiles
from .base import StoreBase, check_tenant
from .errors import InvalidStoreInput
from .models import TenantProfile, table_of
from .records import TenantProfileRecord
from .values import check_json, check_text

__all__ = ["TenantProfiles", "validate_layer", "layer_sources", "profile_keys"]

_P = table_of(TenantProfile)


def validate_layer(layer: Any, base: Iterable[Mapping[str, Any]] = (), where: str = "profile") -> dict[str, Any]:
    """``layer`` checked over the ``base`` layers (default: the core's defaults) and normalised:
    the keys it sets, with their validated values. Raises :class:`ProfileError` naming each key."""
    if not isinstance(layer, Mapping):
        raise ProfileError([(where, f"a profile is a mapping of keys to values, got {type(layer).__name__}")])
    for key, value in layer.items():
        if not isinstance(key, str):
            raise ProfileError([(where, f"profile keys are text, got {key!r}")])
        if isinstance(value, Mapping) and not all(isinstance(k, str) for k in value):
            raise ProfileError([(f"{where}.{key}", "profile keys are text")])
    merged = merge_profiles(*base, layer, where=where)
    dumped = merged.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(dumped.get(key), dict):
            out[key] = {k: dumped[key][k] for k in value}
        else:
            out[key] = dumped[key]
    return out


def profile_keys(model: Any = Profile, prefix: str = "") -> list[str]:
    """Every key of the profile as a dotted path (``money_limits.synthetic``)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            out += profile_keys(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def layer_sources(layers: Iterable[tuple[str, Mapping[str, Any] | None]]) -> dict[str, str]:
    """For each profile key, the name of the last layer that set it (``default`` if none did)."""
    sources = {key: "default" for key in profile_keys()}
    for name, layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, Mapping):
                for sub in value:
                    if f"{key}.{sub}" in sources:
                        sources[f"{key}.{sub}"] = name
            elif key in sources:
                sources[key] = name
            else:  # a whole section given as a non-mapping: every key under it
                for path in sources:
                    if path.startswith(f"{key}."):
                        sources[path] = name
    return sources


def _record(row: Any) -> TenantProfileRecord:
    return TenantProfileRecord(tenant=row.tenant, revision=row.revision, profile=dict(row.profile),
                               updated_by=row.updated_by, updated_at=row.updated_at)


class TenantProfiles(StoreBase):
    """Storing a tenant's own profile layer, and reading it (cached) for the recommender."""

    def tenant_profile(self, tenant: str) -> TenantProfileRecord | None:
        """The tenant's stored profile (None: none set, or cleared), read now (not cached)."""
        check_tenant(tenant)
        return self._read(lambda conn: self._current_profile(conn, tenant))

    def profile_layer(self, tenant: str) -> TenantProfileRecord | None:
        """:meth:`tenant_profile`, kept per tenant for the policy's ``profile_cache_seconds``
        (the recommender's seam: one dictionary lookup per request while it is kept)."""
        return self._cached("profile", tenant, self.policy.profile_cache_seconds,
                            lambda: self.tenant_profile(tenant))

    def set_tenant_profile(self, tenant: str, profile: Mapping[str, Any], *, updated_by: str,
                           base: Iterable[Mapping[str, Any]] = (), now: datetime | None = None) -> TenantProfileRecord:
        """Store ``profile`` (a partial profile: the keys the tenant sets) as the tenant's layer.

        Validated over ``base`` (the layers under it, e.g. the recommender's plugins and
        configuration; default: the core's defaults) before anything is written: an invalid
        key or value raises :class:`InvalidStoreInput` naming it (``profile.loyal_tenur_years:
        unknown profile key (did you mean 'loyal_tenure_years'?)``) and the stored profile
        stays as it was. Replaces the whole stored layer (a new revision)."""
        check_tenant(tenant)
        check_text(updated_by, "updated_by", max_length=200)
        try:
            layer = validate_layer(profile, list(base))
        except ProfileError as exc:
            raise InvalidStoreInput("; ".join(f"{path}: {msg}" for path, msg in exc.errors),
                                    field=exc.errors[0][0] if exc.errors else "profile") from None
        check_json(layer, "profile")
        when = self._now(now)

        def write(conn: Connection) -> TenantProfileRecord:
            revision = self._next_revision(conn, tenant)
            conn.execute(insert(_P).values(tenant=tenant, revision=revision, profile=layer, updated_by=updated_by,
                                           updated_at=when))
            return TenantProfileRecord(tenant=tenant, revision=revision, profile=layer, updated_by=updated_by,
                                       updated_at=when)

        try:
            return self._write(write)
        finally:
            self._invalidate("profile", tenant)

    def delete_tenant_profile(self, tenant: str, *, updated_by: str, now: datetime | None = None) -> bool:
        """Clear the tenant's stored profile (the layers under it apply again); False if none was
        set. The revisions before stay (the decisions made under them name them)."""
        check_tenant(tenant)
        check_text(updated_by, "updated_by", max_length=200)
        when = self._now(now)

        def write(conn: Connection) -> bool:
            if self._current_profile(conn, tenant) is None:
                return False
            conn.execute(insert(_P).values(tenant=tenant, revision=self._next_revision(conn, tenant), profile=None,
                                           updated_by=updated_by, updated_at=when))
            return True

        try:
            return self._write(write)
        finally:
            self._invalidate("profile", tenant)

    def tenant_profile_revision(self, tenant: str, revision: int) -> TenantProfileRecord | None:
        """A past revision of the tenant's profile (None: unknown, or the one that cleared it)."""
        check_tenant(tenant)
        row = self._read(lambda conn: conn.execute(
            select(_P).where(_P.c.tenant == tenant, _P.c.revision == revision)).first())
        return None if row is None or row.profile is None else _record(row)

    @staticmethod
    def _current_profile(conn: Connection, tenant: str) -> TenantProfileRecord | None:
        row = conn.execute(select(_P).where(_P.c.tenant == tenant).order_by(_P.c.revision.desc()).limit(1)).first()
        return None if row is None or row.profile is None else _record(row)

    @staticmethod
    def _next_revision(conn: Connection, tenant: str) -> int:
        # Two writers racing for the same revision: the primary key refuses the second, and
        # the store's write retries it on a fresh read.
        return int(conn.execute(select(func.coalesce(func.max(_P.c.revision), 0))
                                .where(_P.c.tenant == tenant)).scalar_one()) + 1
