"""Engine set-up and migrations of the hub database, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, delete, func, select, text

from hub.movements import prepare_movement, store_movements
from hub.storage.base import Base
from hub.storage.db import Database, StorageError, display_url
from hub.storage.models import Movement, MovementTag
from tests.hub.support import movement, sgtin

CORE_TABLES = {"movements", "movement_tags", "dead_letters"}


def _core_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    differences = compare_metadata(context, Base.metadata)
    core = []
    for difference in differences:
        # A difference is a tuple, or a list of tuples for column changes, and its
        # items name the table. Only the core tables are compared here.
        text_form = repr(difference)
        if any(f"'{table}'" in text_form for table in CORE_TABLES):
            core.append(difference)
    return core


async def test_migration_matches_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        differences = await connection.run_sync(_core_differences)

    assert differences == []


async def test_migrate_twice_harmless(database: Database) -> None:
    await database.migrate()

    async with database.engine.connect() as connection:
        version = await connection.scalar(
            text("SELECT version_num FROM alembic_version")
        )
    assert version is not None


async def test_sqlite_wal_and_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'hub.sqlite3'}")
    try:
        async with database.engine.connect() as connection:
            journal = await connection.scalar(text("PRAGMA journal_mode"))
            foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))
    finally:
        await database.close()

    assert journal == "wal"
    assert foreign_keys == 1


async def test_tags_deleted_with_movement(database: Database, site_id: str) -> None:
    payload = movement(site_id, epcs=[sgtin(1), sgtin(2)])
    received_at = datetime.now(UTC)
    async with database.transaction() as session:
        await store_movements(session, [prepare_movement(payload, received_at)])

    async with database.transaction() as session:
        await session.execute(delete(Movement))
    async with database.session() as session:
        tags = await session.scalar(select(func.count()).select_from(MovementTag))

    assert tags == 0


async def test_times_loaded_as_utc(database: Database, site_id: str) -> None:
    shanghai = timezone(timedelta(hours=8))
    received_at = datetime(2025, 3, 1, 16, 0, 0, 123456, tzinfo=shanghai)
    async with database.transaction() as session:
        await store_movements(
            session, [prepare_movement(movement(site_id), received_at)]
        )

    async with database.session() as session:
        row = await session.scalar(select(Movement))

    assert row is not None
    assert row.received_at == datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
    assert row.received_at.tzinfo == UTC


def test_display_url_masks_password() -> None:
    shown = display_url("postgresql+asyncpg://hub:s3cret@127.0.0.1:5432/bwms")

    assert shown == "postgresql+asyncpg://hub:***@127.0.0.1:5432/bwms"


def test_invalid_url_raises_storage_error() -> None:
    with pytest.raises(StorageError, match="invalid database URL 'not a url'"):
        Database("not a url")


async def test_unreachable_database_raises_storage_error() -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    database = Database("postgresql+asyncpg://bwms@127.0.0.1:1/bwms")
    try:
        with pytest.raises(StorageError, match="cannot migrate database"):
            await database.migrate()
    finally:
        await database.close()
