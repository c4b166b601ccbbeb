"""Shared parts of the hub benchmarks: the site file, fresh databases, hub settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from hub.settings import HubSettings

SITE_ID = "bench"
PORTAL_ID = "door-3"

# The hub loads the same site file as the edge: one dock door with two antennas.
SITE_TOML = f"""
[site]
id = "{SITE_ID}"
name = "Benchmark site"

[[portals]]
id = "{PORTAL_ID}"
kind = "dock_door"
reader = {{ id = "bench-reader" }}
antennas = [{{ port = 1, side = "inside" }}, {{ port = 2, side = "outside" }}]
"""

# Server that the PostgreSQL figures use; every database the suite creates on it is
# dropped again when its benchmark ends.
PG_ADMIN_URL = os.environ.get(
    "BWMS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class BenchSetupError(Exception):
    """A server or database that a benchmark needs is not available."""


def write_site_file(folder: Path) -> Path:
    """Write the benchmark site file into `folder` and return its path."""
    path = folder / "site.toml"
    path.write_text(SITE_TOML, encoding="utf-8")
    return path


def sqlite_url(path: Path) -> str:
    """Return the hub's SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def hub_settings(
    site_file: Path, database_url: str, mqtt_url: str, client_id: str, data_dir: Path
) -> HubSettings:
    """Return hub settings with the deployed defaults for batching and confirmations."""
    return HubSettings(
        site_file=site_file,
        database_url=database_url,
        data_dir=data_dir,
        mqtt_url=mqtt_url,
        mqtt_client_id=client_id,
        api_host="127.0.0.1",
        api_port=0,
    )


async def _admin(statement: str) -> None:
    try:
        connection = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BenchSetupError(
            f"cannot connect to PostgreSQL at {PG_ADMIN_URL}: {exc}; set "
            "BWMS_BENCH_PG to an admin URL of a server on this machine"
        ) from exc
    try:
        await connection.execute(statement)
    except asyncpg.PostgresError as exc:
        raise BenchSetupError(f"PostgreSQL rejected {statement!r}: {exc}") from exc
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """Create an empty PostgreSQL database, yield its hub URL, and drop it after."""
    name = "bwms_bench_" + uuid.uuid4().hex[:10]
    await _admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plain_postgres_url(url: str) -> str:
    """Turn a hub URL (postgresql+asyncpg://) into a plain postgresql:// URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
