"""Client keys: issued by the gateway, stored only as a hash, checked in constant time.

A token is ``p2o-`` and 32 random bytes (256 bits). A plain SHA-256 of it is enough: a slow
password hash protects guessable secrets, and nobody guesses 256 random bits, so a stolen
database gives nothing to try offline. The lookup is by hash (a dictionary probe on a value
the caller cannot steer towards a stored one), then :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from poe2openai.errors import ApiError
from poe2openai.team.store import Store

PREFIX = "p2o-"


def new_token() -> str:
    """A fresh client key."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """The stored form of a client key."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One issued key (never its token)."""

    id: str
    label: str
    hash: bytes
    created: float
    expires: float | None = None
    models: tuple[str, ...] = ()  # names or fnmatch patterns, any case; empty: every model
    rpm: int | None = None
    revoked: float | None = None
    budget_day: int | None = None  # Poe points per UTC day
    budget_month: int | None = None  # Poe points per UTC calendar month

    def allows(self, model: str) -> bool:
        """Whether this key may use ``model``."""
        low = model.lower()
        return not self.models or any(fnmatch.fnmatchcase(low, p.lower()) for p in self.models)

    def public(self) -> dict[str, Any]:
        """What the admin page sees."""
        return {
            "id": self.id,
            "label": self.label,
            "created": self.created,
            "expires": self.expires,
            "models": list(self.models),
            "rpm": self.rpm,
            "revoked": self.revoked,
            "budget_day": self.budget_day,
            "budget_month": self.budget_month,
        }


def _row(row: Any) -> ClientKey:
    return ClientKey(
        id=row["id"],
        label=row["label"],
        hash=bytes(row["hash"]),
        created=row["created"],
        expires=row["expires"],
        models=tuple(orjson.loads(row["models"])),
        rpm=row["rpm"],
        revoked=row["revoked"],
        budget_day=row["budget_day"],
        budget_month=row["budget_month"],
    )


def _field_error(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_key_field")


def read_fields(body: Any, partial: bool) -> dict[str, Any]:
    """Validated ``label``, ``expires`` (Unix seconds or null), ``models``, ``rpm``, ``budget_day``
    and ``budget_month`` (Poe points, or null)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object", code="invalid_key_field")
    unknown = set(body) - {"label", "expires", "models", "rpm", "budget_day", "budget_month"}
    if unknown:
        raise _field_error(sorted(unknown)[0], f"Unknown field {sorted(unknown)[0]!r}")
    out: dict[str, Any] = {}
    if "label" in body or not partial:
        label = body.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise _field_error("label", "label must be a non-empty string of at most 200 characters")
        out["label"] = label.strip()
    if "expires" in body:
        exp = body["expires"]
        if exp is not None and (
            isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp) or exp <= 0
        ):
            raise _field_error("expires", "expires must be a Unix time in seconds, or null")
        out["expires"] = float(exp) if exp is not None else None
    if "models" in body:
        models = body["models"]
        if not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models):
            raise _field_error("models", "models must be a list of model names or patterns")
        out["models"] = tuple(m.strip() for m in models)
    if "rpm" in body:
        rpm = body["rpm"]
        if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
            raise _field_error("rpm", "rpm must be a whole number of requests per minute (at least 1), or null")
        out["rpm"] = rpm
    for name in ("budget_day", "budget_month"):
        if name in body:
            budget = body[name]
            if budget is not None and (
                isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= 10**12
            ):
                raise _field_error(name, f"{name} must be a whole number of Poe points (0 or more), or null")
            out[name] = budget
    return out


@dataclass
class RpmWindow:
    """Requests of one key in the last minute (sans-IO: the caller passes the time)."""

    times: deque[float] = field(default_factory=deque)

    def admit(self, cap: int, now: float) -> float | None:
        """Count a request, or the seconds until one fits (not counted)."""
        while self.times and self.times[0] <= now - 60:
            self.times.popleft()
        if len(self.times) >= cap:
            return self.times[0] + 60 - now
        self.times.append(now)
        return None


class ClientKeys:
    """The issued keys, read from the store once and kept in memory; writes go to both."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._by_id: dict[str, ClientKey] = {}
        self._by_hash: dict[bytes, ClientKey] = {}
        self._windows: dict[str, RpmWindow] = {}
        self.reload()

    def reload(self) -> None:
        """Read the keys from the store again (another worker may have changed them)."""
        self._by_id.clear()
        self._by_hash.clear()
        for row in self.store.rows("SELECT * FROM client_keys"):
            self._keep(_row(row))

    def _keep(self, key: ClientKey) -> None:
        old = self._by_id.get(key.id)
        if old is not None:
            self._by_hash.pop(old.hash, None)
        self._by_id[key.id] = key
        self._by_hash[key.hash] = key

    def all(self) -> list[ClientKey]:
        """Every key, oldest first."""
        return sorted(self._by_id.values(), key=lambda k: k.created)

    def get(self, key_id: str) -> ClientKey:
        """One key by id (404 when unknown)."""
        key = self._by_id.get(key_id)
        if key is None:
            raise ApiError(404, "No client key with that id", code="key_not_found")
        return key

    def find(self, token: str) -> ClientKey | None:
        """The key whose token this is, revoked or expired ones included."""
        wanted = digest(token)
        key = self._by_hash.get(wanted)
        if key is None or not hmac.compare_digest(key.hash, wanted):
            return None
        return key

    async def create(self, fields: dict[str, Any]) -> tuple[ClientKey, str]:
        """A new key and its token (the only time the token exists outside the caller)."""
        token = new_token()
        key = ClientKey(
            id="ck_" + secrets.token_hex(8),
            label=fields["label"],
            hash=digest(token),
            created=self.clock(),
            expires=fields.get("expires"),
            models=fields.get("models", ()),
            rpm=fields.get("rpm"),
            budget_day=fields.get("budget_day"),
            budget_month=fields.get("budget_month"),
        )
        await self.store.run(
            self.store.execute,
            "INSERT INTO client_keys (id, label, hash, created, expires, models, rpm, budget_day, budget_month)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id,
                key.label,
                key.hash,
                key.created,
                key.expires,
                orjson.dumps(list(key.models)).decode(),
                key.rpm,
                key.budget_day,
                key.budget_month,
            ),
        )
        self._keep(key)
        return key, token

    async def edit(self, key_id: str, fields: dict[str, Any]) -> ClientKey:
        """Change a key's label, expiry, models, cap or budgets."""
        key = replace(self.get(key_id), **fields)
        await self.store.run(
            self.store.execute,
            "UPDATE client_keys SET label = ?, expires = ?, models = ?, rpm = ?, budget_day = ?, budget_month = ?"
            " WHERE id = ?",
            (
                key.label,
                key.expires,
                orjson.dumps(list(key.models)).decode(),
                key.rpm,
                key.budget_day,
                key.budget_month,
                key.id,
            ),
        )
        self._keep(key)
        return key

    async def revoke(self, key_id: str) -> ClientKey:
        """Refuse the key from now on (the record stays, for the usage it had)."""
        key = self.get(key_id)
        if key.revoked is None:
            key = replace(key, revoked=self.clock())
            await self.store.run(
                self.store.execute, "UPDATE client_keys SET revoked = ? WHERE id = ?", (key.revoked, key.id)
            )
            self._keep(key)
        return key

    def admit(self, key: ClientKey, now: float) -> float | None:
        """Count a request against the key's cap; the seconds to wait when over it."""
        if key.rpm is None:
            return None
        return self._windows.setdefault(key.id, RpmWindow()).admit(key.rpm, now)
