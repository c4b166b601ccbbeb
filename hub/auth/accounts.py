"""User changes made outside the HTTP API: by `bwms user …` and the demo.

Each function runs one transaction that changes the user and appends its audit
record, as the API routes do.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

from hub.audit.chain import Actor, AuditTrail
from hub.auth import service
from hub.storage.db import Database


def operator(name: str | None = None) -> Actor:
    """Return the actor of a command-line change: the operating-system user."""
    try:
        login = name or getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return Actor(name=f"cli:{login}", role=None, client_ip=None)


def _trail(audit_key: bytes, actor: Actor) -> AuditTrail:
    return AuditTrail(key=audit_key, actor=actor, now=datetime.now(UTC))


async def add_user(
    database: Database,
    audit_key: bytes,
    actor: Actor,
    username: str,
    password: str,
    role: str,
) -> None:
    """Create a user. Raises service.AuthError subclasses or StorageError."""
    async with database.transaction() as session:
        await service.create_user(
            session, _trail(audit_key, actor), username, password, role
        )


async def change_password(
    database: Database, audit_key: bytes, actor: Actor, username: str, password: str
) -> None:
    """Set a user's password; this unlocks the account and signs the user out."""
    async with database.transaction() as session:
        await service.set_password(
            session, _trail(audit_key, actor), username, password
        )


async def change_user(
    database: Database,
    audit_key: bytes,
    actor: Actor,
    username: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
) -> None:
    """Change a user's role or disabled flag."""
    async with database.transaction() as session:
        await service.update_user(
            session, _trail(audit_key, actor), username, role=role, disabled=disabled
        )
