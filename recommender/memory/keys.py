"""API keys for the HTTP service: ``rk_<id>_<secret>``, shown once, stored as a hash.

The secret is 32 random bytes, so a plain SHA-256 of it is as strong as a slow password
hash would be (there is nothing to brute-force); verification looks the key up by its id
and compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, insert, select, update

from .base import check_tenant
from .errors import InvalidStoreInput
from .models import ApiKey, table_of
from .values import check_text

if TYPE_CHECKING:
    from .store import Store

__all__ = ["KeyStore", "KeyInfo", "SCOPES"]

SCOPES = ("recommend", "outcome", "approve", "admin")
PREFIX = "rk"
_K = table_of(ApiKey)
_ID = re.compile(r"[0-9a-f]{16}")


class KeyInfo(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant: str
    scopes: list[str]
    name: str = ""
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """True for a live key with ``scope`` (``admin`` allows everything)."""
        return self.active and (scope in self.scopes or "admin" in self.scopes)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: object) -> KeyInfo:
    return KeyInfo(id=row.id, tenant=row.tenant, scopes=list(row.scopes), name=row.name,  # type: ignore[attr-defined]
                   created_at=row.created_at, revoked_at=row.revoked_at)  # type: ignore[attr-defined]


class KeyStore:
    """Create, list, revoke and verify API keys in a :class:`Store`'s database."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    def create(self, tenant: str, scopes: Iterable[str], name: str = "") -> tuple[KeyInfo, str]:
        """A new key for ``tenant``: returns its info and the plaintext (shown once, never stored)."""
        check_tenant(tenant)
        wanted = list(dict.fromkeys(scopes))
        bad = [s for s in wanted if s not in SCOPES]
        if bad or not wanted:
            raise InvalidStoreInput(f"invalid scope(s) {', '.join(map(repr, bad)) or '(none given)'}: "
                                    f"choose from {', '.join(SCOPES)}")
        check_text(name, "name", max_length=200, empty=True)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.store._now()
        ordered = [s for s in SCOPES if s in wanted]

        def write(conn: Connection) -> None:
            conn.execute(insert(_K).values(id=key_id, tenant=tenant, scopes=ordered, name=name,
                                           secret_hash=_hash(secret), created_at=now, revoked_at=None))

        self.store._write(write)
        info = KeyInfo(id=key_id, tenant=tenant, scopes=ordered, name=name, created_at=now)
        return info, f"{PREFIX}_{key_id}_{secret}"

    def list(self, tenant: str | None = None) -> list[KeyInfo]:
        query = select(_K).order_by(_K.c.created_at, _K.c.id)
        if tenant is not None:
            check_tenant(tenant)
            query = query.where(_K.c.tenant == tenant)
        return self.store._read(lambda conn: [_info(r) for r in conn.execute(query)])

    def get(self, key_id: str) -> KeyInfo | None:
        if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
            return None
        return self.store._read(
            lambda conn: (lambda r: _info(r) if r is not None else None)(
                conn.execute(select(_K).where(_K.c.id == key_id)).first()))

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no live key has that id."""
        if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
            return False
        now = self.store._now()

        def write(conn: Connection) -> bool:
            res = conn.execute(update(_K).where(_K.c.id == key_id, _K.c.revoked_at.is_(None)).values(revoked_at=now))
            return bool(res.rowcount)

        return self.store._write(write)

    def verify(self, plaintext: str) -> KeyInfo | None:
        """The key's info when ``plaintext`` is a live key, else None (never raises on bad input)."""
        if not isinstance(plaintext, str) or len(plaintext) > 200:
            return None
        parts = plaintext.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        key_id, secret = parts[1], parts[2]
        if not _ID.fullmatch(key_id) or not secret.isascii():  # never sent to the database
            return None
        row = self.store._read(lambda conn: conn.execute(select(_K).where(_K.c.id == key_id)).first())
        if row is None:
            hmac.compare_digest(_hash(secret), _hash(""))  # same work either way
            return None
        if not hmac.compare_digest(_hash(secret), row.secret_hash) or row.revoked_at is not None:
            return None
        return _info(row)
