"""Create the core tables: movements, movement_tags and dead_letters.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "movements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("portal", sa.String(64), nullable=False),
        sa.Column("portal_kind", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("ended_at", Time, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("clip_id", sa.String(64), nullable=True),
        sa.Column("clip_status", sa.String(16), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.UniqueConstraint("event_id", name="uq_movements_event_id"),
    )
    op.create_index(
        "ix_movements_portal_started_at", "movements", ["portal", "started_at"]
    )
    op.create_index("ix_movements_site_started_at", "movements", ["site", "started_at"])

    op.create_table(
        "movement_tags",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "movement_id",
            Id,
            sa.ForeignKey(
                "movements.id", ondelete="CASCADE", name="fk_movement_tags_movement_id"
            ),
            nullable=False,
        ),
        sa.Column("epc", sa.String(128), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("sscc", sa.String(18), nullable=True),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("last_seen", Time, nullable=False),
        sa.Column("antennas", sa.JSON(), nullable=False),
        sa.Column("peak_rssi_dbm", sa.Float(), nullable=True),
        sa.UniqueConstraint(
            "movement_id", "epc", name="uq_movement_tags_movement_id_epc"
        ),
    )
    op.create_index("ix_movement_tags_epc", "movement_tags", ["epc"])
    op.create_index("ix_movement_tags_gtin", "movement_tags", ["gtin"])
    op.create_index("ix_movement_tags_sscc", "movement_tags", ["sscc"])

    op.create_table(
        "dead_letters",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", Time, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_truncated", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("portal", sa.String(64), nullable=True),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("movement_tags")
    op.drop_table("movements")
