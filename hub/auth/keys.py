"""Signing keys kept outside the database: from a setting, or from a key file that
is created with a random key on first use."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

logger = logging.getLogger(__name__)

MIN_KEY_CHARS = 32


class KeyFileError(Exception):
    """A key file that cannot be read or created, or that contains too short a key."""


def load_key(value: SecretStr | None, path: Path, *, create: bool = True) -> bytes:
    """Return the key from `value`, else from `path`, creating the file when missing.

    A new file contains 256 random bits as hex and is created with mode 0600 in one
    step (O_EXCL), so that no other user can read it in between.
    """
    if value is not None:
        return value.get_secret_value().encode()
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise KeyFileError(f"key file {path} not found") from None
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    if len(text) < MIN_KEY_CHARS:
        raise KeyFileError(
            f"invalid key file {path}: {len(text)} characters, at least "
            f"{MIN_KEY_CHARS} needed; delete it to create a new key"
        )
    return text.encode()


def _create(path: Path) -> bytes:
    text = secrets.token_hex(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first; use its key.
        return load_key(None, path, create=False)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc}") from exc
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    logger.warning("key file %s: created with a new random key", path)
    return text.encode()
