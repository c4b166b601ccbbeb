"""Appending to the hash chain of audit records, and checking it.

Each record's hash is the SHA-256 of a canonical JSON form of its content, its
sequence number and the previous record's hash, so that editing a record, or
removing or reordering one in the middle, breaks a link. The newest sequence number
and hash are kept in `audit_head` with an HMAC-SHA256 signature (RFC 2104) under a
key that is not in the database. Removing the newest records, or rewriting the
whole chain, then no longer matches the signed head.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditHead, AuditRecord

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_ID = 1
VERIFY_BATCH = 1000


@dataclass(frozen=True)
class Actor:
    """The author of a change: a user, an API key or a command-line operator."""

    name: str
    role: str | None
    client_ip: str | None


def _json_value(value: Any) -> Any:
    # Stored and hashed values must be the same after a round trip through the
    # database's JSON column, so anything not plain JSON becomes a string first.
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    role: str | None,
    client_ip: str | None,
    action: str,
    target: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> str:
    """Return the hex SHA-256 of a record's canonical JSON form."""
    content = {
        "seq": seq,
        "at": _time_text(at),
        "actor": actor,
        "role": role,
        "client_ip": client_ip,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    text = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_hash(record: AuditRecord) -> str:
    return record_hash(
        seq=record.seq,
        at=record.at,
        actor=record.actor,
        role=record.role,
        client_ip=record.client_ip,
        action=record.action,
        target=record.target,
        before=record.before,
        after=record.after,
        prev_hash=record.prev_hash,
    )


def sign_head(key: bytes, seq: int, record_digest: str) -> str:
    """Return the hex HMAC-SHA256 of the chain head under `key`."""
    return hmac.new(key, f"{seq}:{record_digest}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditTrail:
    """The chain key, actor and time with which changes of one request are recorded."""

    key: bytes
    actor: Actor
    now: datetime

    async def record(
        self,
        session: AsyncSession,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
    ) -> AuditRecord:
        """Append one record in the session's transaction; the caller commits."""
        return await append(
            session,
            self.key,
            self.actor,
            action,
            target,
            before=before,
            after=after,
            now=self.now,
        )


async def append(
    session: AsyncSession,
    key: bytes,
    actor: Actor,
    action: str,
    target: str,
    *,
    before: Any = None,
    after: Any = None,
    now: datetime,
) -> AuditRecord:
    """Append one record and move the signed head to it, in the caller's transaction.

    The head row is locked (SELECT … FOR UPDATE on PostgreSQL), so two writers
    append one after the other.

    NOTE: on SQLite, and for the very first record on PostgreSQL, two writers can
    read the same head. The second insert then fails on the primary key and its
    transaction rolls back (the API returns 503), so the chain never forks, but
    that change must be retried.
    """
    head = await session.scalar(
        select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
    )
    seq = 1 if head is None else head.seq + 1
    prev_hash = GENESIS_HASH if head is None else head.hash
    before_value = _json_value(before)
    after_value = _json_value(after)
    digest = record_hash(
        seq=seq,
        at=now,
        actor=actor.name,
        role=actor.role,
        client_ip=actor.client_ip,
        action=action,
        target=target,
        before=before_value,
        after=after_value,
        prev_hash=prev_hash,
    )
    record = AuditRecord(
        seq=seq,
        at=now,
        actor=actor.name,
        role=actor.role,
        client_ip=actor.client_ip,
        action=action,
        target=target,
        before=before_value,
        after=after_value,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(record)
    signature = sign_head(key, seq, digest)
    if head is None:
        session.add(AuditHead(id=HEAD_ID, seq=seq, hash=digest, signature=signature))
    else:
        head.seq = seq
        head.hash = digest
        head.signature = signature
    await session.flush()
    logger.info("audit %s: %s by %s on %s", seq, action, actor.name, target)
    return record


@dataclass(frozen=True)
class ChainReport:
    """Outcome of a check of the whole chain."""

    ok: bool
    records: int
    broken_seq: int | None = None
    reason: str = "chain intact"


def _broken(records: int, seq: int, reason: str) -> ChainReport:
    return ChainReport(ok=False, records=records, broken_seq=seq, reason=reason)


async def verify_chain(session: AsyncSession, key: bytes) -> ChainReport:
    """Walk every record in order and return the first broken link, if any."""
    expected = 1
    prev_hash = GENESIS_HASH
    while True:
        batch = list(
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.seq >= expected)
                .order_by(AuditRecord.seq)
                .limit(VERIFY_BATCH)
            )
        )
        if not batch:
            break
        for record in batch:
            checked = expected - 1
            if record.seq != expected:
                return _broken(
                    checked,
                    expected,
                    f"record {expected} is missing: the record after "
                    f"{expected - 1} is {record.seq}",
                )
            if record.prev_hash != prev_hash:
                return _broken(
                    checked,
                    record.seq - 1,
                    f"record {record.seq - 1} changed after record {record.seq} "
                    "was appended: the stored link no longer matches",
                )
            if _stored_hash(record) != record.hash:
                return _broken(
                    checked,
                    record.seq,
                    f"record {record.seq} does not match its hash: it was altered",
                )
            prev_hash = record.hash
            expected += 1
    count = expected - 1

    head = await session.get(AuditHead, HEAD_ID)
    if head is None:
        if count == 0:
            return ChainReport(ok=True, records=0, reason="no audit records")
        return _broken(count, count, "the signed chain head is missing")
    if not hmac.compare_digest(sign_head(key, head.seq, head.hash), head.signature):
        return _broken(
            count,
            head.seq,
            "the chain head's signature is invalid: the head was altered, or the "
            "audit key is not the one that signed it",
        )
    if head.seq > count:
        return _broken(
            count,
            count + 1,
            f"records {count + 1} to {head.seq} are missing: the signed head names "
            f"record {head.seq} but the newest stored record is {count}",
        )
    if head.seq < count:
        return _broken(
            count,
            head.seq + 1,
            f"record {head.seq + 1} and later were added without the audit key",
        )
    if head.hash != prev_hash:
        return _broken(
            count, count, f"record {count} does not match the signed chain head"
        )
    return ChainReport(ok=True, records=count)
