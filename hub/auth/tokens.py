"""Access tokens (JWT, RFC 7519, signed HS256 through PyJWT), refresh tokens and
API keys as random secrets.

Access tokens are checked against an injected clock rather than PyJWT's own, so
that tests can move time forward. Refresh tokens and API keys are random values
whose SHA-256 digest alone is stored: with 256 bits of entropy a fast hash is
enough, and it keeps the lookup of a key on each request cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
ISSUER = "bwms-hub"
API_KEY_PREFIX = "bwms_"


class TokenInvalid(Exception):
    """An access token that is malformed, badly signed, expired or of another kind."""


@dataclass(frozen=True)
class AccessClaims:
    """The claims of a valid access token."""

    username: str
    user_id: int
    role: str
    version: int
    csrf: str | None
    mfa_pending: bool
    expires_at: datetime


def issue_access_token(
    key: bytes,
    *,
    username: str,
    user_id: int,
    role: str,
    version: int,
    now: datetime,
    ttl_s: int,
    csrf: str | None = None,
    mfa_pending: bool = False,
) -> str:
    """Return a signed access token valid for `ttl_s` seconds from `now`."""
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": username,
        "uid": user_id,
        "role": role,
        "ver": version,
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }
    if csrf is not None:
        claims["csrf"] = csrf
    if mfa_pending:
        claims["mfa"] = "pending"
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(key: bytes, token: str, *, now: datetime) -> AccessClaims:
    """Return the claims of a token signed with `key`, or raise TokenInvalid."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            # Expiry is compared below with the injected clock.
            options={"verify_exp": False, "require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"invalid access token: {exc}") from exc
    if claims.get("typ") != "access":
        raise TokenInvalid("invalid access token: not an access token")
    try:
        expires = int(claims["exp"])
        result = AccessClaims(
            username=str(claims["sub"]),
            user_id=int(claims["uid"]),
            role=str(claims["role"]),
            version=int(claims["ver"]),
            csrf=claims.get("csrf"),
            mfa_pending=claims.get("mfa") == "pending",
            expires_at=datetime.fromtimestamp(expires, now.tzinfo),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenInvalid(f"invalid access token: bad claim {exc}") from exc
    if now.timestamp() >= expires:
        raise TokenInvalid("access token expired")
    return result


def new_secret_token() -> str:
    """Return a random URL-safe token of 256 bits."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """Return the hex SHA-256 digest under which a refresh token or API key is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """Return (key id, full key); the key id is public, the rest is the secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{new_secret_token()}"


def api_key_id(key: str) -> str | None:
    """Return the key id of a string shaped like an API key, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id
