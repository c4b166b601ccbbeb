"""Sign-in routes: OAuth2 password flow, browser sessions, refresh, two-factor.

`POST /auth/token` follows the OAuth2 password grant (RFC 6749 §4.3) with one more
form field, `totp`, for the two-factor code. `POST /auth/session` checks the same
form but returns the tokens in HttpOnly, SameSite=Strict cookies for browsers.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hub.api import SessionDep
from hub.auth import service, tokens, totp
from hub.auth.deps import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    CSRF_HEADER,
    REFRESH_COOKIE,
    Principal,
    anonymous_trail,
    get_auth,
    public,
    require,
    trail_for,
)
from hub.auth.models import User
from hub.auth.permissions import ROLE_PERMISSIONS

router = APIRouter(tags=["auth"])

REFRESH_COOKIE_PATH = "/api/v1/auth"


class TokenOut(BaseModel):
    """Tokens of a sign-in; `mfa_enrolment_required` limits them to enrolment."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")
    mfa_enrolment_required: bool = False


class SessionOut(BaseModel):
    """A browser session; the tokens themselves are in HttpOnly cookies."""

    username: str
    role: str
    csrf_token: str = Field(
        description=f"Send it in the {CSRF_HEADER} header on writes."
    )
    expires_in: int
    mfa_enrolment_required: bool = False


class RefreshIn(BaseModel):
    """A refresh token; browsers send none and use the refresh cookie instead."""

    refresh_token: str | None = Field(default=None, max_length=200)


class MeOut(BaseModel):
    """The signed-in user or API key."""

    name: str
    role: str
    kind: str
    permissions: list[str]
    mfa_enrolment_required: bool


class TotpEnrolOut(BaseModel):
    """A new TOTP secret and the otpauth:// URI to show as a QR code."""

    secret: str
    otpauth_uri: str


class TotpCodeIn(BaseModel):
    """A code from the authenticator app."""

    code: str = Field(min_length=6, max_length=8)


def _grant_error(detail: str) -> JSONResponse:
    # RFC 6749 §5.2: a rejected grant is a 400 with error=invalid_grant.
    return JSONResponse(
        status_code=400,
        content={
            "error": "invalid_grant",
            "error_description": detail,
            "detail": detail,
        },
    )


def _access_token(
    request: Request, user: User, *, mfa_pending: bool, csrf: str | None = None
) -> str:
    auth = get_auth(request)
    return tokens.issue_access_token(
        auth.jwt_key,
        username=user.username,
        user_id=user.id,
        role=user.role,
        version=user.token_version,
        now=auth.clock(),
        ttl_s=auth.settings.auth_access_token_ttl_s,
        csrf=csrf,
        mfa_pending=mfa_pending,
    )


async def _sign_in(
    request: Request,
    session: SessionDep,
    username: str,
    password: str,
    code: str | None,
) -> service.SignIn | JSONResponse:
    auth = get_auth(request)
    trail = anonymous_trail(request, username)
    try:
        result = await service.sign_in(
            session, trail, auth.policy(), username, password, code
        )
    except service.SignInFailed as exc:
        # The failure count and any lockout must be stored although sign-in failed.
        await session.commit()
        return _grant_error(str(exc))
    return result


@router.post("/auth/token", response_model=TokenOut, dependencies=[public()])
async def post_token(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    totp_code: Annotated[
        str | None, Form(alias="totp", max_length=8, description="TOTP code.")
    ] = None,
) -> Any:
    """Sign in with a password (and TOTP code) and return access and refresh tokens."""
    outcome = await _sign_in(request, session, username, password, totp_code)
    if isinstance(outcome, JSONResponse):
        return outcome
    auth = get_auth(request)
    settings = auth.settings
    refresh = await service.issue_refresh_token(
        session,
        outcome.user,
        now=auth.clock(),
        ttl_s=settings.auth_refresh_token_ttl_s,
        cookie=False,
    )
    body = TokenOut(
        access_token=_access_token(
            request, outcome.user, mfa_pending=outcome.mfa_pending
        ),
        expires_in=settings.auth_access_token_ttl_s,
        refresh_token=refresh,
        refresh_expires_in=settings.auth_refresh_token_ttl_s,
        mfa_enrolment_required=outcome.mfa_pending,
    )
    await session.commit()
    return body


def _set_session_cookies(
    request: Request, response: Response, access: str, refresh: str, csrf: str
) -> None:
    settings = get_auth(request).settings
    secure = settings.auth_cookie_secure
    response.set_cookie(
        ACCESS_COOKIE,
        access,
        max_age=settings.auth_access_token_ttl_s,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        refresh,
        max_age=settings.auth_refresh_token_ttl_s,
        path=REFRESH_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    # Page scripts read this one to copy it into the CSRF header.
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=settings.auth_refresh_token_ttl_s,
        path="/",
        secure=secure,
        httponly=False,
        samesite="strict",
    )


def _clear_session_cookies(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("/auth/session", response_model=SessionOut, dependencies=[public()])
async def post_session(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    totp_code: Annotated[
        str | None, Form(alias="totp", max_length=8, description="TOTP code.")
    ] = None,
) -> Any:
    """Sign a browser in: the tokens are set as cookies, the CSRF token returned."""
    outcome = await _sign_in(request, session, username, password, totp_code)
    if isinstance(outcome, JSONResponse):
        return outcome
    auth = get_auth(request)
    csrf = secrets.token_urlsafe(24)
    refresh = await service.issue_refresh_token(
        session,
        outcome.user,
        now=auth.clock(),
        ttl_s=auth.settings.auth_refresh_token_ttl_s,
        cookie=True,
    )
    access = _access_token(
        request, outcome.user, mfa_pending=outcome.mfa_pending, csrf=csrf
    )
    body = SessionOut(
        username=outcome.user.username,
        role=outcome.user.role,
        csrf_token=csrf,
        expires_in=auth.settings.auth_access_token_ttl_s,
        mfa_enrolment_required=outcome.mfa_pending,
    )
    await session.commit()
    response = JSONResponse(body.model_dump())
    _set_session_cookies(request, response, access, refresh, csrf)
    return response


def _refresh_token_of(request: Request, payload: RefreshIn | None) -> tuple[str, bool]:
    """Return the refresh token and whether it came from the cookie."""
    if payload is not None and payload.refresh_token:
        return payload.refresh_token, False
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise HTTPException(
            status_code=401,
            detail="refresh token missing",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Double-submit check: the header must repeat the CSRF cookie.
    sent = request.headers.get(CSRF_HEADER, "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong")
    return cookie, True


@router.post("/auth/refresh", response_model=TokenOut, dependencies=[public()])
async def post_refresh(
    request: Request,
    session: SessionDep,
    payload: Annotated[RefreshIn | None, Body()] = None,
) -> Any:
    """Replace a refresh token with a new one and issue a new access token."""
    token, from_cookie = _refresh_token_of(request, payload)
    auth = get_auth(request)
    settings = auth.settings
    try:
        user, new_refresh, cookie_session = await service.rotate_refresh_token(
            session, token, now=auth.clock(), ttl_s=settings.auth_refresh_token_ttl_s
        )
    except service.RefreshInvalid as exc:
        await session.commit()
        raise HTTPException(
            status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    await session.commit()
    # A role that must use TOTP but has not enrolled stays limited to enrolment.
    pending = user.role in settings.auth_totp_roles and not user.totp_enabled
    if from_cookie:
        csrf = secrets.token_urlsafe(24)
        access = _access_token(request, user, mfa_pending=pending, csrf=csrf)
        body = SessionOut(
            username=user.username,
            role=user.role,
            csrf_token=csrf,
            expires_in=settings.auth_access_token_ttl_s,
            mfa_enrolment_required=pending,
        )
        response = JSONResponse(body.model_dump())
        _set_session_cookies(request, response, access, new_refresh, csrf)
        return response
    return TokenOut(
        access_token=_access_token(request, user, mfa_pending=pending),
        expires_in=settings.auth_access_token_ttl_s,
        refresh_token=new_refresh,
        refresh_expires_in=settings.auth_refresh_token_ttl_s,
        mfa_enrolment_required=pending,
    )


@router.post("/auth/logout", status_code=204)
async def post_logout(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("account:self")],
    payload: Annotated[RefreshIn | None, Body()] = None,
) -> Response:
    """Revoke the refresh token given, or the session cookie's, and clear cookies."""
    token = payload.refresh_token if payload is not None else None
    token = token or request.cookies.get(REFRESH_COOKIE)
    if token:
        auth = get_auth(request)
        if await service.revoke_refresh_token(session, token, now=auth.clock()):
            await trail_for(request, principal).record(
                session, "auth.sign_out", f"user:{principal.name}"
            )
        await session.commit()
    response = Response(status_code=204)
    _clear_session_cookies(response)
    return response


@router.get("/auth/me", response_model=MeOut)
async def get_me(principal: Annotated[Principal, require("account:self")]) -> MeOut:
    """Return who is signed in, the role and its permissions."""
    return MeOut(
        name=principal.name,
        role=principal.role.value,
        kind=principal.kind,
        permissions=sorted(ROLE_PERMISSIONS[principal.role]),
        mfa_enrolment_required=principal.mfa_pending,
    )


async def _own_user(session: SessionDep, principal: Principal) -> User:
    if principal.user_id is None:
        raise HTTPException(
            status_code=409, detail="API keys have no two-factor sign-in"
        )
    user = await session.get(User, principal.user_id)
    if user is None:
        raise HTTPException(status_code=401, detail="user not found")
    return user


@router.post("/auth/totp", response_model=TotpEnrolOut)
async def post_totp_enrol(
    session: SessionDep, principal: Annotated[Principal, require("account:self")]
) -> TotpEnrolOut:
    """Start two-factor enrolment: a new secret to add to an authenticator app."""
    user = await _own_user(session, principal)
    try:
        secret = await service.begin_totp(session, user)
    except service.TotpError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    await session.commit()
    return TotpEnrolOut(
        secret=secret, otpauth_uri=totp.provisioning_uri(secret, user.username)
    )


@router.post("/auth/totp/confirm", status_code=204)
async def post_totp_confirm(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("account:self")],
    payload: TotpCodeIn,
) -> Response:
    """Finish enrolment with a code from the app; sign in again afterwards."""
    user = await _own_user(session, principal)
    try:
        await service.confirm_totp(
            session, trail_for(request, principal), user, payload.code
        )
    except service.TotpError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    await session.commit()
    return Response(status_code=204)
