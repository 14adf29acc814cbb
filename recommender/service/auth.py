"""API keys: who is calling, for which tenant, with which scopes.

A key travels as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. It is checked by
one of three verifiers: the memory store's :class:`~recommender.memory.keys.KeyStore`
(when a store is configured), the hashed ``api_keys`` of the config file (so the service
runs without a database), or none at all (``--no-auth``, development only).

Missing or unknown key: 401. A key without the scope an endpoint needs, or for another
tenant than the one the request is about: 403.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from .settings import SCOPES, ApiKeyEntry

__all__ = ["Principal", "Verifier", "ConfigKeys", "StoreKeys", "NoAuth", "extract_key", "AuthError"]


@dataclass(frozen=True)
class Principal:
    """The caller: ``tenant`` None means any tenant (no-auth mode)."""

    key_id: str
    tenant: str | None
    scopes: frozenset[str]
    name: str = ""

    def can(self, scope: str) -> bool:
        """``admin`` allows everything (as in the memory store's KeyStore)."""
        return scope in self.scopes or "admin" in self.scopes

    def tenant_for(self, requested: str | None) -> str | None:
        """The tenant a request acts for, or raise :class:`AuthError` (403) if not allowed."""
        if self.tenant is None:
            return requested
        if requested is not None and requested != self.tenant:
            raise AuthError(403, "forbidden_tenant",
                            f"this API key belongs to tenant {self.tenant!r}, not {requested!r}")
        return self.tenant


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


class Verifier(Protocol):
    #: True when verify() may block (database I/O): the service then calls it off the event loop.
    blocking: bool

    def verify(self, plaintext: str) -> Principal | None: ...


def extract_key(headers: Any) -> str | None:
    """The API key of a request (``X-API-Key`` first, then ``Authorization: Bearer``)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class NoAuth:
    """Development mode: every request may do everything, for any tenant."""

    blocking = False
    _all = Principal("anonymous", None, frozenset(SCOPES), "no-auth")

    def verify(self, plaintext: str | None) -> Principal:
        return self._all


class ConfigKeys:
    """Keys listed (hashed) in the config file."""

    blocking = False

    def __init__(self, entries: Iterable[ApiKeyEntry]):
        self._by_hash: dict[str, Principal] = {}
        for i, e in enumerate(entries):
            digest = e.hash.split(":", 1)[1]
            self._by_hash[digest] = Principal(f"config:{e.name or i}", e.tenant, frozenset(e.scopes), e.name)

    def __len__(self) -> int:
        return len(self._by_hash)

    def verify(self, plaintext: str) -> Principal | None:
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        # a lookup by the key's hash: timing reveals nothing about a stored key
        return self._by_hash.get(digest)


class StoreKeys:
    """Keys from the memory store's KeyStore, with a short cache of verified keys.

    A revoked key stops working within ``ttl`` seconds (in every worker); unknown keys
    are not cached, so a newly created key works at once.
    """

    blocking = True

    def __init__(self, keystore: Any, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._keys = keystore
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, plaintext: str) -> Principal | None:
        """A still-fresh verified principal for this key, without I/O (None if unknown or stale)."""
        if self._ttl <= 0:
            return None
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return None

    def verify(self, plaintext: str) -> Principal | None:
        hit = self.cached(plaintext)
        if hit is not None:
            return hit
        info = self._keys.verify(plaintext)
        if info is None or getattr(info, "revoked_at", None) is not None:
            return None
        principal = Principal(str(info.id), info.tenant, frozenset(info.scopes), getattr(info, "name", "") or "")
        if self._ttl > 0:
            digest = hashlib.sha256(plaintext.encode()).hexdigest()
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (self._clock() + self._ttl, principal)
        return principal

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
