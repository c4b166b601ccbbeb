"""Tables of the audit trail. Migration 0003 creates them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.base import Base
from hub.storage.models import UTCDateTime


class AuditRecord(Base):
    """One change of state: who, when, from where, what, and the values around it."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor", "actor"),
        Index("ix_audit_log_action", "action"),
        Index("ix_audit_log_target", "target"),
    )

    # Assigned by the chain, not by the database, so that it is known before the
    # record's hash is computed and a gap shows a deleted record.
    seq: Mapped[int] = mapped_column(
        BigInteger(), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[Any] = mapped_column(JSON(), nullable=True)
    after: Mapped[Any] = mapped_column(JSON(), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest record's sequence number and hash, signed with a key kept outside
    the database, so that removing the newest records is detected."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger())
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text())
