"""Core tables of the hub: stored movements, their tags, and rejected messages.

Migration 0001 creates exactly these tables. A change here needs a new migration,
and `tests/hub/test_migrations.py` compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from hub.storage.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY, so BIGINT ids become INTEGER there.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC and always loaded with UTC tzinfo.

    SQLite has no time zone type and drops tzinfo, so values are converted to UTC
    before they are stored and tagged as UTC when loaded. String comparison of the
    stored values then orders them in time on SQLite as well.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
        moment = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return moment.replace(tzinfo=None)
        return moment

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Movement(Base):
    """One movement event as the edge published it, stored once per event_id."""

    __tablename__ = "movements"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_movements_event_id"),
        Index("ix_movements_portal_started_at", "portal", "started_at"),
        Index("ix_movements_site_started_at", "site", "started_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    portal: Mapped[str] = mapped_column(String(64))
    portal_kind: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seq: Mapped[int] = mapped_column(BigInteger())
    tag_count: Mapped[int] = mapped_column(Integer())
    weight_kg: Mapped[float | None] = mapped_column(Float(), nullable=True)
    clip_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    tags: Mapped[list[MovementTag]] = relationship(
        back_populates="movement",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="MovementTag.id",
        lazy="raise",
    )


class MovementTag(Base):
    """One EPC of a movement, decoded so movements can be found by GTIN or SSCC."""

    __tablename__ = "movement_tags"
    __table_args__ = (
        UniqueConstraint("movement_id", "epc", name="uq_movement_tags_movement_id_epc"),
        Index("ix_movement_tags_epc", "epc"),
        Index("ix_movement_tags_gtin", "gtin"),
        Index("ix_movement_tags_sscc", "sscc"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    movement_id: Mapped[int] = mapped_column(
        Id,
        ForeignKey(
            "movements.id", ondelete="CASCADE", name="fk_movement_tags_movement_id"
        ),
    )
    epc: Mapped[str] = mapped_column(String(128))
    scheme: Mapped[str] = mapped_column(String(32))
    uri: Mapped[str | None] = mapped_column(Text(), nullable=True)
    gtin: Mapped[str | None] = mapped_column(String(14), nullable=True)
    sscc: Mapped[str | None] = mapped_column(String(18), nullable=True)
    reads: Mapped[int] = mapped_column(Integer())
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    antennas: Mapped[list[int]] = mapped_column(JSON())
    peak_rssi_dbm: Mapped[float | None] = mapped_column(Float(), nullable=True)

    movement: Mapped[Movement] = relationship(back_populates="tags", lazy="raise")


class DeadLetter(Base):
    """A rejected MQTT message, kept for operators with the reason it was rejected."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    topic: Mapped[str] = mapped_column(Text())
    payload: Mapped[str] = mapped_column(Text())
    payload_truncated: Mapped[bool] = mapped_column(Boolean())
    reason: Mapped[str] = mapped_column(Text())
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)
    portal: Mapped[str | None] = mapped_column(String(64), nullable=True)
