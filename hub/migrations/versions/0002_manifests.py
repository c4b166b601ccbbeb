"""Create the manifest tables: manifests, manifest_lines, manifest_confirmations.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "manifests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("manifest_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("declaration_no", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("portals", sa.JSON(), nullable=False),
        sa.Column("window_start", Time, nullable=True),
        sa.Column("window_end", Time, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("closed_at", Time, nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.UniqueConstraint("manifest_id", name="uq_manifests_manifest_id"),
    )
    op.create_index("ix_manifests_declaration_no", "manifests", ["declaration_no"])
    op.create_index("ix_manifests_status", "manifests", ["status"])

    op.create_table(
        "manifest_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "manifest_id",
            sa.String(64),
            sa.ForeignKey(
                "manifests.manifest_id",
                ondelete="CASCADE",
                name="fk_manifest_lines_manifest_id",
            ),
            nullable=False,
        ),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("sscc", sa.String(18), nullable=True),
        sa.Column("epcs", sa.JSON(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("hs_code", sa.String(16), nullable=True),
        sa.Column("batch", sa.String(64), nullable=True),
        sa.Column("gross_kg", sa.Float(), nullable=True),
        sa.Column("contents", sa.JSON(), nullable=False),
        sa.UniqueConstraint(
            "manifest_id", "line_no", name="uq_manifest_lines_manifest_id_line_no"
        ),
    )

    op.create_table(
        "manifest_confirmations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "manifest_id",
            sa.String(64),
            sa.ForeignKey(
                "manifests.manifest_id",
                ondelete="CASCADE",
                name="fk_manifest_confirmations_manifest_id",
            ),
            nullable=False,
        ),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("epcs", sa.JSON(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("confirmed_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("confirmed_at", Time, nullable=False),
    )
    op.create_index(
        "ix_manifest_confirmations_manifest_id",
        "manifest_confirmations",
        ["manifest_id"],
    )


def downgrade() -> None:
    op.drop_table("manifest_confirmations")
    op.drop_table("manifest_lines")
    op.drop_table("manifests")
