"""Database engine, sessions and migrations of the hub.

SQLite (aiosqlite) is the default, in WAL mode with foreign keys on; PostgreSQL
(asyncpg) is used when the URL names it. The schema is created and upgraded by the
Alembic migrations in `hub/migrations`, applied when the hub starts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# SQLite waits this long for another connection's write lock before it raises
# "database is locked"; the API reads while the consumer writes.
SQLITE_BUSY_TIMEOUT_MS = 5_000


class StorageError(Exception):
    """The database could not be reached or rejected a statement."""


def display_url(url: str) -> str:
    """Return the database URL with any password masked, for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(invalid database URL)"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets API readers run while the consumer commits a batch.
        cursor.execute("PRAGMA journal_mode=WAL")
        # SQLite leaves foreign keys off per connection unless asked, and the
        # movement_tags cascade depends on them.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """Create an async engine for `url`, creating the SQLite folder when needed."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"invalid database URL {url!r}: {exc}") from exc
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create database folder {folder}: {exc}"
            ) from exc
    try:
        engine = create_async_engine(parsed, pool_pre_ping=not is_sqlite)
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot use database {display_url(url)}: {exc}") from exc
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """Build the Alembic configuration of the hub's migrations.

    With `connection`, env.py migrates through it instead of opening its own.
    """
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


class Database:
    """The hub's engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """Dialect name: `sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        """URL with the password masked."""
        return display_url(self.url)

    async def migrate(self) -> None:
        """Apply every Alembic migration up to head."""
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(_upgrade)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(
                f"cannot migrate database {self.display_url}: {exc}"
            ) from exc
        logger.info("database %s: migrated to head", self.display_url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Open a session inside one transaction, committed when the block ends.

        SQLAlchemy and driver errors leave as StorageError and roll back.
        """
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database {self.display_url}: {exc}") from exc

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open a session for reads; errors leave as StorageError."""
        try:
            async with self.sessions() as session:
                yield session
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database {self.display_url}: {exc}") from exc

    async def ping(self) -> bool:
        """Return whether a trivial query succeeds."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("database %s: ping failed: %s", self.display_url, exc)
            return False
        return True

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
