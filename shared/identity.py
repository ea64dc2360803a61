"""Who is calling: bearer JWTs verified against the configured issuer's JWKS (PyJWT).

A city's identity provider (Keycloak or any OpenID Connect issuer) signs the tokens; every service
verifies them itself: signature against the issuer's published keys, issuer, audience, expiry. The
claims give the grant: subject, role, divisions (fail closed: none given means none) and, for a
department's or a unit's system, the unit. `LocalIssuer` is the development and test issuer that
`onewindow dev`, the drill stack and the tests run: a key of their own, never a built-in one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, Field

from shared.cloudevents import Actor
from shared.settings import Settings

# The roles OneWindow knows; a token's role claim may be a list (Keycloak realm roles): the first
# of these it holds is the grant's role.
ROLES = ("clerk", "hotline", "grid", "citizen", "operator", "department", "mediator", "auditor")


class TokenGrant(BaseModel):
    """What a verified token may do: its subject, role, the division codes it may act in ("*" = all;
    none given = none: grants fail closed) and, for units' systems, the unit it speaks for."""

    role: str
    divisions: list[str] = Field(default_factory=list)
    subject: str = "anonymous"
    unit: str | None = None
    expires_at: float | None = None
    grid: str | None = None  # a grid worker's grid (网格), when the token names it


class InvalidToken(Exception):
    """The token is not one of the issuer's, has expired, or carries no usable grant."""


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path (`realm_access.roles` in Keycloak's tokens)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def grant_from_claims(claims: dict[str, Any], settings: Settings) -> TokenGrant:
    """The grant a verified token's claims give, or InvalidToken when the role is missing or unknown."""
    role = _claim(claims, settings.auth_role_claim)
    if isinstance(role, list):
        role = next((r for r in ROLES if r in role), None)
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidToken("the token carries no OneWindow role")
    divisions = _claim(claims, settings.auth_divisions_claim) or []
    if isinstance(divisions, str):
        divisions = divisions.split()
    if not isinstance(divisions, list) or not all(isinstance(d, str) and d for d in divisions):
        raise InvalidToken("the divisions claim is not a list of division codes")
    unit = _claim(claims, settings.auth_unit_claim)
    grid = _claim(claims, settings.auth_grid_claim)
    return TokenGrant(role=role, divisions=divisions, subject=str(claims["sub"]),
                      unit=unit if isinstance(unit, str) else None, expires_at=float(claims["exp"]),
                      grid=grid if isinstance(grid, str) else None)


class _FileKeys:
    """A JWKS read from a file, read again when it changes (a rotated key appears without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path, self._mtime, self._set = path, -1.0, None
        self._lock = threading.Lock()

    def key_for(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._set = jwt.PyJWKSet.from_json(self.path.read_text(encoding="utf-8"))
                self._mtime = mtime
            keys = self._set.keys
        for k in keys:
            if kid is None or k.key_id == kid:
                return k.key
        raise InvalidToken("no key of the issuer matches the token")


class _UrlKeys:
    """The issuer's JWKS endpoint (cached; fetched again for a key id it has not seen)."""

    def __init__(self, url: str) -> None:
        self.client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    def key_for(self, token: str) -> Any:
        try:
            return self.client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as e:
            raise InvalidToken(str(e)) from e


class TokenVerifier:
    """Verifies bearer tokens against the configured issuer; a verified token's grant is remembered
    until it expires, so a busy client costs one signature check per token, not per request."""

    def __init__(self, settings: Settings, cache_size: int = 10_000) -> None:
        if not settings.auth_issuer or not (settings.auth_jwks_url or settings.auth_jwks_file):
            raise ValueError("no token issuer: set ONEWINDOW_AUTH_ISSUER and ONEWINDOW_AUTH_JWKS_URL (or "
                             "ONEWINDOW_AUTH_JWKS_FILE); `onewindow dev` runs a local issuer of its own")
        self.settings = settings
        self.keys = _UrlKeys(settings.auth_jwks_url) if settings.auth_jwks_url else _FileKeys(settings.auth_jwks_file)
        self._cache: OrderedDict[str, TokenGrant] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def cached(self, token: str) -> TokenGrant | None:
        """The grant of a token verified before and not expired since, or None (verify it with `grant`)."""
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None and cached.expires_at is not None and cached.expires_at > time.time():
            return cached
        return None

    def grant(self, token: str) -> TokenGrant:
        """The grant of a valid token; InvalidToken (with the reason) otherwise."""
        if (cached := self.cached(token)) is not None:
            return cached
        s = self.settings
        try:
            claims = jwt.decode(
                token, self.keys.key_for(token), algorithms=s.auth_algorithms, audience=s.auth_audience,
                issuer=s.auth_issuer, leeway=s.auth_leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except InvalidToken:
            raise
        except (jwt.PyJWTError, ValueError) as e:
            raise InvalidToken(str(e)) from e
        grant = grant_from_claims(claims, s)
        with self._lock:
            self._cache[token] = grant
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return grant


class LocalIssuer:
    """A development and test issuer: an EC P-256 key kept in a directory, its JWKS beside it, and
    tokens signed with it. Production uses the city's identity provider instead."""

    ISSUER = "https://onewindow.invalid/dev-issuer"

    def __init__(self, directory: Path, issuer: str = ISSUER, audience: str = "onewindow") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.issuer, self.audience = issuer, audience
        key_file = directory / "issuer-key.pem"
        if key_file.is_file():  # one key per state directory: tokens printed earlier stay valid
            self.key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            key_file.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
            key_file.chmod(0o600)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        # RFC 7638 thumbprint as the key id
        members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")

    def env(self) -> dict[str, str]:
        """The variables that make a service trust this issuer."""
        return {"ONEWINDOW_AUTH_ISSUER": self.issuer, "ONEWINDOW_AUTH_AUDIENCE": self.audience,
                "ONEWINDOW_AUTH_JWKS_FILE": str(self.jwks_file)}

    def mint(self, subject: str, role: str, divisions: list[str], *, unit: str | None = None,
             ttl_seconds: int = 12 * 3600, now: float | None = None, **claims: Any) -> str:
        """A signed token for a subject with a role and divisions, valid for `ttl_seconds`."""
        issued = int(now if now is not None else time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": subject, "iat": issued,
                   "exp": issued + ttl_seconds, "role": role, "divisions": divisions, **claims}
        if unit:
            payload["unit"] = unit
        return jwt.encode(payload, self.key, algorithm="ES256", headers={"kid": self.kid})


def actor_of(grant: TokenGrant) -> Actor:
    """The author an authenticated act records on the events it causes (never taken from a body)."""
    return Actor(id=grant.subject, role=grant.role, unit=grant.unit)
