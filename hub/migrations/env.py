"""Alembic environment of the hub.

The hub runs migrations through its own connection (`hub.storage.db.Database.migrate`),
passed in `config.attributes["connection"]`. Run from the `alembic` command line, this
file opens a connection to BWMS_HUB_DATABASE_URL instead.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging.config
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import hub.storage.models  # noqa: F401  (registers the core tables on Base.metadata)
from hub.storage.base import Base

# Manifest tables are defined in their own package; import them when it exists so
# that autogenerate compares every hub table.
if importlib.util.find_spec("hub.manifests") and importlib.util.find_spec(
    "hub.manifests.models"
):
    importlib.import_module("hub.manifests.models")
import hub.audit.models  # noqa: E402,F401  (users, tokens, API keys, audit trail)
import hub.auth.models  # noqa: E402,F401

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most constraints in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_command_line() -> None:
    url = os.environ.get("BWMS_HUB_DATABASE_URL")
    if not url:
        raise SystemExit("set BWMS_HUB_DATABASE_URL to the database to migrate")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them online")

given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    if config.config_file_name is not None:
        logging.config.fileConfig(
            config.config_file_name, disable_existing_loggers=False
        )
    asyncio.run(_run_from_command_line())
