"""FastAPI dependencies that authenticate a request and check its permission.

A request is signed in by `Authorization: Bearer <access token or API key>`, or by
the browser session cookie. A write made with the cookie must also send the CSRF
token in the `X-CSRF-Token` header (double-submit). The value is in a cookie that
page scripts can read and in the signed access token, so another site can neither
read it nor plant one that matches.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from hub.api import SessionDep
from hub.audit.chain import Actor, AuditTrail
from hub.auth import service, tokens
from hub.auth.models import User
from hub.auth.permissions import PERMISSIONS, Role, allows
from hub.settings import HubSettings

logger = logging.getLogger(__name__)

ACCESS_COOKIE = "bwms_access"
REFRESH_COOKIE = "bwms_refresh"
CSRF_COOKIE = "bwms_csrf"
CSRF_HEADER = "X-CSRF-Token"
# RFC 9110 §9.2.1: these methods are safe, so they need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = "public"

# Declares the bearer scheme in the OpenAPI document, so /docs can sign in.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True)
class AuthContext:
    """Keys, clock and rules of sign-in, built once per app."""

    settings: HubSettings
    jwt_key: bytes
    audit_key: bytes
    clock: Callable[[], datetime]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def policy(self) -> service.SignInPolicy:
        """Return the lockout and two-factor rules."""
        return service.SignInPolicy(
            max_failed_logins=self.settings.auth_max_failed_logins,
            lockout_s=self.settings.auth_lockout_s,
            totp_roles=frozenset(self.settings.auth_totp_roles),
        )


@dataclass(frozen=True)
class Principal:
    """The signed-in user or API key of a request."""

    name: str
    role: Role
    kind: str
    user_id: int | None
    client_ip: str | None
    mfa_pending: bool = False
    via_cookie: bool = False

    def actor(self) -> Actor:
        """Return this principal as the actor of audit records."""
        return Actor(name=self.name, role=self.role.value, client_ip=self.client_ip)


def get_auth(request: Request) -> AuthContext:
    """Return the app's sign-in context."""
    context: AuthContext = request.app.state.auth
    return context


def client_ip(
    request: Request,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> str | None:
    """Return the client address, taken from X-Forwarded-For only behind a trusted proxy.

    The header is read from the right, skipping addresses of trusted proxies, so a
    value the client wrote at the left end cannot pose as its address.
    """
    peer = request.client.host if request.client else None
    if peer is None or not _is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(
    address: str, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _unauthorized(detail: str) -> HTTPException:
    # RFC 6750 §3: a 401 names the scheme the client should use.
    return HTTPException(
        status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def _principal_of_api_key(
    session: AsyncSession, key: str, ip: str | None
) -> Principal:
    row = await service.find_api_key(session, key)
    if row is None:
        raise _unauthorized("invalid or revoked API key")
    return Principal(
        name=f"api-key:{row.key_id}:{row.name}",
        role=Role(row.role),
        kind="api_key",
        user_id=None,
        client_ip=ip,
    )


async def authenticate(
    request: Request, session: AsyncSession, bearer: str | None
) -> Principal | None:
    """Return the principal that signed the request, None for anonymous requests.

    Raises HTTPException 401 for invalid credentials and 403 for a missing CSRF token.
    """
    auth = get_auth(request)
    ip = client_ip(request, auth.trusted_proxies)
    via_cookie = False
    if bearer:
        if tokens.api_key_id(bearer) is not None:
            return await _principal_of_api_key(session, bearer, ip)
        token = bearer
    elif request.headers.get("authorization"):
        raise _unauthorized("unsupported Authorization scheme: use Bearer")
    elif request.cookies.get(ACCESS_COOKIE):
        token = request.cookies[ACCESS_COOKIE]
        via_cookie = True
    else:
        return None

    try:
        claims = tokens.decode_access_token(auth.jwt_key, token, now=auth.clock())
    except tokens.TokenInvalid as exc:
        raise _unauthorized(str(exc)) from exc
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not claims.csrf or not hmac.compare_digest(sent, claims.csrf):
            raise HTTPException(
                status_code=403,
                detail=f"CSRF token missing or wrong: send the {CSRF_COOKIE} cookie's "
                f"value in the {CSRF_HEADER} header",
            )
    user = await session.get(User, claims.user_id)
    if (
        user is None
        or user.disabled
        or user.username != claims.username
        or user.token_version != claims.version
    ):
        raise _unauthorized("access token revoked: sign in again")
    return Principal(
        name=user.username,
        role=Role(user.role),
        kind="user",
        user_id=user.id,
        client_ip=ip,
        mfa_pending=claims.mfa_pending,
        via_cookie=via_cookie,
    )


def require(permission: str) -> Any:
    """Return a dependency that lets a request through only with `permission`.

    Anonymous requests get 401, and a role without the permission gets 403. The
    dependency function carries the permission as `.permission`, so tests can list
    what each route requires.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def check(
        request: Request,
        session: SessionDep,
        bearer: Annotated[str | None, Depends(bearer_scheme)],
    ) -> Principal:
        principal = await authenticate(request, session, bearer)
        if principal is None:
            raise _unauthorized("not signed in")
        if principal.mfa_pending and permission != "account:self":
            raise HTTPException(
                status_code=403,
                detail="two-factor enrolment required: enrol at /api/v1/auth/totp, "
                "then sign in again",
            )
        if not allows(principal.role, permission):
            logger.info(
                "%s: role %s lacks %s for %s %s",
                principal.name,
                principal.role.value,
                permission,
                request.method,
                request.url.path,
            )
            raise HTTPException(
                status_code=403,
                detail=f"role {principal.role.value} lacks permission {permission}",
            )
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def public() -> Any:
    """Return the dependency of a route that anyone may call; see PUBLIC_ROUTES."""

    async def open_to_all() -> None:
        return None

    open_to_all.permission = PUBLIC  # type: ignore[attr-defined]
    return Depends(open_to_all)


def trail_for(request: Request, principal: Principal) -> AuditTrail:
    """Return the audit trail of a change made by `principal` now."""
    auth = get_auth(request)
    return AuditTrail(key=auth.audit_key, actor=principal.actor(), now=auth.clock())


def anonymous_trail(request: Request, name: str) -> AuditTrail:
    """Return the audit trail of a sign-in by `name`, who has no token yet."""
    auth = get_auth(request)
    actor = Actor(
        name=name, role=None, client_ip=client_ip(request, auth.trusted_proxies)
    )
    return AuditTrail(key=auth.audit_key, actor=actor, now=auth.clock())
