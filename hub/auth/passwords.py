"""Password hashing with Argon2id (RFC 9106) through argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
# Verified when the user name is unknown, so that a sign-in takes as long for a
# missing user as for a wrong password and user names cannot be probed by timing.
_DUMMY_HASH = _hasher.hash("not a password of any user")


class WeakPassword(ValueError):
    """A new password that does not meet the length rule."""


def check_new_password(password: str) -> None:
    """Raise WeakPassword unless the password has an acceptable length."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"password too short: it needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"password too long: it may have at most {MAX_PASSWORD_LENGTH} characters"
        )


def hash_password(password: str) -> str:
    """Return the Argon2id hash string of a password that passed the length rule."""
    check_new_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return whether `password` matches the hash; None checks a dummy hash."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return whether the hash was made with other Argon2 parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
