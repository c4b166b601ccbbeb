"""Users, sign-in, refresh tokens and API keys over the hub's database.

Functions that write only flush; the caller commits, so that the audit record of a
change is stored in the same transaction as the change. Functions take `now` so
that tests can place the clock.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.chain import AuditTrail
from hub.auth import passwords, tokens, totp
from hub.auth.models import ApiKey, RefreshToken, User
from hub.auth.permissions import Role

logger = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class AuthError(Exception):
    """Base of the errors of this module."""


class UserExists(AuthError):
    """A user name that is already taken."""


class UserNotFound(AuthError, LookupError):
    """A user name that is not stored."""


class InvalidUser(AuthError, ValueError):
    """A user name, role or password that breaks a rule."""


class LastAdmin(AuthError):
    """A change that would leave no enabled admin."""


class SignInFailed(AuthError):
    """Wrong credentials, a locked or disabled account, or a missing TOTP code."""


class RefreshInvalid(AuthError):
    """A refresh token that is unknown, expired, revoked or reused."""


class ApiKeyNotFound(AuthError, LookupError):
    """An API key id that is not stored."""


class TotpError(AuthError):
    """A two-factor enrolment step that does not apply or a wrong code."""


class UserOut(BaseModel):
    """A user as the API returns it, without secrets."""

    username: str
    role: str
    disabled: bool
    totp_enabled: bool
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


class ApiKeyOut(BaseModel):
    """An API key without its secret."""

    key_id: str
    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


def user_out(user: User) -> UserOut:
    """Return the API view of a user."""
    return UserOut.model_validate(user, from_attributes=True)


def _snapshot(user: User) -> dict[str, Any]:
    # What audit records keep of a user: never the password hash or TOTP secret.
    return {
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "totp_enabled": user.totp_enabled,
    }


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidUser(
            f"unknown role {value!r}: expected one of {', '.join(r.value for r in Role)}"
        ) from None


def _check_username(username: str) -> None:
    if not USERNAME_PATTERN.match(username):
        raise InvalidUser(
            f"invalid user name {username!r}: use 1 to 64 letters, digits, '.', '_', "
            "'@' or '-', starting with a letter or digit"
        )


# --- users ------------------------------------------------------------------------


async def find_user(session: AsyncSession, username: str) -> User | None:
    """Return the user with this name, or None."""
    user: User | None = await session.scalar(
        select(User).where(User.username == username)
    )
    return user


async def get_user(session: AsyncSession, username: str) -> User:
    """Return the user with this name, or raise UserNotFound."""
    user = await find_user(session, username)
    if user is None:
        raise UserNotFound(f"user {username} not found")
    return user


async def list_users(session: AsyncSession) -> list[UserOut]:
    """Return every user, by name."""
    rows = await session.scalars(select(User).order_by(User.username))
    return [user_out(user) for user in rows]


async def count_users(session: AsyncSession) -> int:
    """Return how many users are stored."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def create_user(
    session: AsyncSession, trail: AuditTrail, username: str, password: str, role: str
) -> User:
    """Store a new user and audit it. Raises InvalidUser or UserExists."""
    _check_username(username)
    checked_role = _role(role)
    try:
        password_hash = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise InvalidUser(str(exc)) from exc
    if await find_user(session, username) is not None:
        raise UserExists(f"user {username} already exists")
    user = User(
        username=username,
        password_hash=password_hash,
        role=checked_role.value,
        disabled=False,
        token_version=1,
        totp_enabled=False,
        failed_logins=0,
        created_at=trail.now,
        updated_at=trail.now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise UserExists(f"user {username} already exists") from exc
    await trail.record(
        session, "user.create", f"user:{username}", after=_snapshot(user)
    )
    logger.info("user %s: created with role %s", username, role)
    return user


async def _enabled_admins(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN.value, User.disabled.is_(False))
        )
        or 0
    )


async def _revoke_sessions(session: AsyncSession, user: User, now: datetime) -> None:
    # Outstanding access tokens carry the old version and stop working.
    user.token_version += 1
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def update_user(
    session: AsyncSession,
    trail: AuditTrail,
    username: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's role or disabled flag and audit each change.

    A change of either signs the user out everywhere. Raises UserNotFound,
    InvalidUser, or LastAdmin when no enabled admin would remain.
    """
    user = await get_user(session, username)
    new_role = _role(role).value if role is not None else user.role
    new_disabled = disabled if disabled is not None else user.disabled
    losing_admin = user.role == Role.ADMIN.value and not user.disabled
    if losing_admin and (new_role != Role.ADMIN.value or new_disabled):
        if await _enabled_admins(session) <= 1:
            raise LastAdmin(f"user {username} is the last enabled admin")

    changed = False
    if new_role != user.role:
        before = _snapshot(user)
        user.role = new_role
        changed = True
        await trail.record(
            session,
            "user.role",
            f"user:{username}",
            before=before,
            after=_snapshot(user),
        )
    if new_disabled != user.disabled:
        before = _snapshot(user)
        user.disabled = new_disabled
        changed = True
        action = "user.disable" if new_disabled else "user.enable"
        await trail.record(
            session, action, f"user:{username}", before=before, after=_snapshot(user)
        )
    if changed:
        user.updated_at = trail.now
        await _revoke_sessions(session, user, trail.now)
        logger.info("user %s: role %s, disabled %s", username, new_role, new_disabled)
    await session.flush()
    return user


async def set_password(
    session: AsyncSession, trail: AuditTrail, username: str, password: str
) -> User:
    """Replace a user's password, unlock the account and sign the user out everywhere."""
    user = await get_user(session, username)
    try:
        user.password_hash = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise InvalidUser(str(exc)) from exc
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = trail.now
    await _revoke_sessions(session, user, trail.now)
    await trail.record(session, "user.password", f"user:{username}")
    await session.flush()
    return user


async def reset_totp(session: AsyncSession, trail: AuditTrail, username: str) -> User:
    """Delete a user's TOTP secret, so that the user enrols again at the next sign-in."""
    user = await get_user(session, username)
    before = _snapshot(user)
    user.totp_secret = None
    user.totp_enabled = False
    user.totp_last_step = None
    user.updated_at = trail.now
    await _revoke_sessions(session, user, trail.now)
    await trail.record(
        session,
        "user.totp_reset",
        f"user:{username}",
        before=before,
        after=_snapshot(user),
    )
    await session.flush()
    return user


# --- sign-in ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignInPolicy:
    """Lockout and two-factor rules, from the hub settings."""

    max_failed_logins: int = 5
    lockout_s: int = 900
    totp_roles: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class SignIn:
    """A successful password check; `mfa_pending` when TOTP enrolment is due."""

    user: User
    mfa_pending: bool


async def sign_in(
    session: AsyncSession,
    trail: AuditTrail,
    policy: SignInPolicy,
    username: str,
    password: str,
    totp_code: str | None,
) -> SignIn:
    """Check a password, and a TOTP code where the role needs one.

    A failure counts against the account, and `max_failed_logins` failures in a
    row lock it for `lockout_s`. Failures raise SignInFailed after flushing the
    count, so the caller commits before it responds. A role that needs TOTP but
    has not enrolled signs in with `mfa_pending`, which allows enrolment only.
    """
    now = trail.now
    user = await find_user(session, username)
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise SignInFailed(
            f"account locked until {user.locked_until.isoformat()} after failed sign-ins"
        )
    if not passwords.verify_password(user.password_hash if user else None, password):
        await _count_failure(session, trail, policy, user)
        raise SignInFailed("wrong user name or password")
    assert user is not None
    if user.disabled:
        raise SignInFailed("account disabled")

    needs_totp = user.role in policy.totp_roles
    if needs_totp and user.totp_enabled and user.totp_secret:
        if not totp_code:
            raise SignInFailed("TOTP code required: send it in the totp field")
        step = totp.matching_step(user.totp_secret, totp_code, now, user.totp_last_step)
        if step is None:
            await _count_failure(session, trail, policy, user)
            raise SignInFailed("wrong or reused TOTP code")
        user.totp_last_step = step

    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    mfa_pending = needs_totp and not user.totp_enabled
    await trail.record(
        session,
        "auth.sign_in",
        f"user:{username}",
        after={"mfa_pending": mfa_pending} if mfa_pending else None,
    )
    await session.flush()
    return SignIn(user=user, mfa_pending=mfa_pending)


async def _count_failure(
    session: AsyncSession, trail: AuditTrail, policy: SignInPolicy, user: User | None
) -> None:
    if user is None:
        return
    user.failed_logins += 1
    if user.failed_logins >= policy.max_failed_logins:
        user.locked_until = trail.now + timedelta(seconds=policy.lockout_s)
        user.failed_logins = 0
        logger.warning(
            "user %s: locked until %s after %s failed sign-ins",
            user.username,
            user.locked_until.isoformat(),
            policy.max_failed_logins,
        )
        await trail.record(
            session,
            "auth.lockout",
            f"user:{user.username}",
            after={"locked_until": user.locked_until.isoformat()},
        )
    await session.flush()


# --- refresh tokens ---------------------------------------------------------------


async def issue_refresh_token(
    session: AsyncSession,
    user: User,
    *,
    now: datetime,
    ttl_s: int,
    cookie: bool,
    family: str | None = None,
) -> str:
    """Store a new refresh token of `user` and return it; only its digest is kept."""
    token = tokens.new_secret_token()
    session.add(
        RefreshToken(
            token_hash=tokens.digest(token),
            user_id=user.id,
            family=family or uuid.uuid4().hex,
            cookie=cookie,
            issued_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return token


async def rotate_refresh_token(
    session: AsyncSession, token: str, *, now: datetime, ttl_s: int
) -> tuple[User, str, bool]:
    """Revoke a refresh token and return (user, new token, cookie flag).

    A token that was revoked already is a copy someone else kept. Its whole
    family is then revoked and RefreshInvalid raised. The caller commits either way.
    """
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == tokens.digest(token))
    )
    if row is None:
        raise RefreshInvalid("unknown refresh token")
    if row.revoked_at is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == row.family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await session.flush()
        logger.warning(
            "user id %s: revoked refresh token reused; its sign-in is revoked",
            row.user_id,
        )
        raise RefreshInvalid("refresh token revoked")
    if row.expires_at <= now:
        raise RefreshInvalid("refresh token expired")
    user = await session.get(User, row.user_id)
    if user is None or user.disabled:
        raise RefreshInvalid("account disabled")
    row.revoked_at = now
    new_token = await issue_refresh_token(
        session, user, now=now, ttl_s=ttl_s, cookie=row.cookie, family=row.family
    )
    return user, new_token, row.cookie


async def revoke_refresh_token(
    session: AsyncSession, token: str, *, now: datetime
) -> bool:
    """Revoke a refresh token; return whether it was valid until now."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == tokens.digest(token))
    )
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    await session.flush()
    return True


# --- two-factor enrolment ---------------------------------------------------------


async def begin_totp(session: AsyncSession, user: User) -> str:
    """Store a new TOTP secret for a user who has not enrolled yet, and return it."""
    if user.totp_enabled:
        raise TotpError("two-factor sign-in is enrolled already; an admin can reset it")
    user.totp_secret = totp.new_secret()
    await session.flush()
    return user.totp_secret


async def confirm_totp(
    session: AsyncSession, trail: AuditTrail, user: User, code: str
) -> None:
    """Turn two-factor sign-in on once the user proves the app shows the right code."""
    if user.totp_enabled:
        raise TotpError("two-factor sign-in is enrolled already")
    if not user.totp_secret:
        raise TotpError("start enrolment first")
    step = totp.matching_step(user.totp_secret, code, trail.now, user.totp_last_step)
    if step is None:
        raise TotpError("wrong TOTP code")
    before = _snapshot(user)
    user.totp_enabled = True
    user.totp_last_step = step
    user.updated_at = trail.now
    # The token that enrolled was limited to enrolment; a full sign-in follows.
    await _revoke_sessions(session, user, trail.now)
    await trail.record(
        session,
        "user.totp_enrol",
        f"user:{user.username}",
        before=before,
        after=_snapshot(user),
    )
    await session.flush()


# --- API keys ---------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession, trail: AuditTrail, name: str, role: str
) -> tuple[ApiKeyOut, str]:
    """Store a new API key and return it with its secret, which is not kept."""
    checked = _role(role)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidUser("API key name must have 1 to 64 characters")
    key_id, key = tokens.new_api_key()
    row = ApiKey(
        key_id=key_id,
        name=name,
        role=checked.value,
        key_hash=tokens.digest(key),
        created_by=trail.actor.name,
        created_at=trail.now,
    )
    session.add(row)
    await session.flush()
    view = ApiKeyOut.model_validate(row, from_attributes=True)
    await trail.record(
        session,
        "api_key.create",
        f"api_key:{key_id}",
        after=view.model_dump(mode="json"),
    )
    return view, key


async def list_api_keys(session: AsyncSession) -> list[ApiKeyOut]:
    """Return every API key, newest first, without secrets."""
    rows = await session.scalars(select(ApiKey).order_by(ApiKey.id.desc()))
    return [ApiKeyOut.model_validate(row, from_attributes=True) for row in rows]


async def revoke_api_key(session: AsyncSession, trail: AuditTrail, key_id: str) -> None:
    """Revoke an API key; revoking it again changes nothing."""
    row = await session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if row is None:
        raise ApiKeyNotFound(f"API key {key_id} not found")
    if row.revoked_at is not None:
        return
    before = ApiKeyOut.model_validate(row, from_attributes=True).model_dump(mode="json")
    row.revoked_at = trail.now
    await session.flush()
    after = ApiKeyOut.model_validate(row, from_attributes=True).model_dump(mode="json")
    await trail.record(
        session, "api_key.revoke", f"api_key:{key_id}", before=before, after=after
    )


async def find_api_key(session: AsyncSession, key: str) -> ApiKey | None:
    """Return the active API key matching `key`, or None."""
    key_id = tokens.api_key_id(key)
    if key_id is None:
        return None
    row: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.key_id == key_id)
    )
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, tokens.digest(key)):
        return None
    return row
