"""Time-based one-time passwords (RFC 6238) through pyotp, with replay protection."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

# RFC 6238 §5.2: accept one step either side for clock drift between phone and hub.
DRIFT_STEPS = 1
ISSUER = "Bonded warehouse hub"


def new_secret() -> str:
    """Return a new base32 TOTP secret of 160 bits, the size RFC 4226 §4 recommends."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """Return the otpauth:// URI that authenticator apps read from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def code_at(secret: str, moment: datetime) -> str:
    """Return the code valid at `moment`."""
    return pyotp.TOTP(secret).at(moment)


def matching_step(
    secret: str, code: str, moment: datetime, last_step: int | None
) -> int | None:
    """Return the time step `code` belongs to, or None when it is wrong or reused.

    A code whose step is not after `last_step` was used before. RFC 6238 §5.2 has
    the verifier reject it, so that an observed code cannot be replayed.
    """
    totp = pyotp.TOTP(secret)
    code = code.strip()
    if not code.isdigit():
        return None
    now_step = totp.timecode(moment)
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                return None
            return step
    return None
