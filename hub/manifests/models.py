"""Manifest tables: manifests, their lines, and units confirmed by hand.

Migration 0002 creates exactly these tables. Lines and confirmations refer to their
manifest by its `manifest_id`, the id the customs broker gave it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.base import Base
from hub.storage.models import Id, UTCDateTime


class Manifest(Base):
    """The expected contents of one receipt or shipment under one declaration."""

    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("manifest_id", name="uq_manifests_manifest_id"),
        Index("ix_manifests_declaration_no", "declaration_no"),
        Index("ix_manifests_status", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    manifest_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    declaration_no: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    portals: Mapped[list[str]] = mapped_column(JSON())
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Last computed reconciliation status, kept so that lists can filter on it.
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class ManifestLine(Base):
    """One line of a manifest. Exactly one of gtin, sscc or epcs is set."""

    __tablename__ = "manifest_lines"
    __table_args__ = (
        UniqueConstraint("manifest_id", "line_no", name="uq_manifest_lines_manifest_id_line_no"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    manifest_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey(
            "manifests.manifest_id",
            ondelete="CASCADE",
            name="fk_manifest_lines_manifest_id",
        ),
    )
    line_no: Mapped[int] = mapped_column(Integer())
    gtin: Mapped[str | None] = mapped_column(String(14), nullable=True)
    sscc: Mapped[str | None] = mapped_column(String(18), nullable=True)
    epcs: Mapped[list[str] | None] = mapped_column(JSON(), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer())
    unit: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text())
    hs_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    batch: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gross_kg: Mapped[float | None] = mapped_column(Float(), nullable=True)
    # Pallet contents: a list of {"gtin", "quantity", "epcs"} objects.
    contents: Mapped[list[dict[str, Any]]] = mapped_column(JSON())


class ManifestConfirmation(Base):
    """Units of one line that a keeper confirmed by hand, with who, why and when."""

    __tablename__ = "manifest_confirmations"
    __table_args__ = (
        Index("ix_manifest_confirmations_manifest_id", "manifest_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    manifest_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey(
            "manifests.manifest_id",
            ondelete="CASCADE",
            name="fk_manifest_confirmations_manifest_id",
        ),
    )
    line_no: Mapped[int] = mapped_column(Integer())
    epcs: Mapped[list[str] | None] = mapped_column(JSON(), nullable=True)
    quantity: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    confirmed_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text())
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())
