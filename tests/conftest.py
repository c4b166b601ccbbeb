"""Fixtures shared by every test package: brokers, PostgreSQL and unique ids."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.brokers import SHARED_HOST, SHARED_PORT, PrivateMosquitto, wait_listening

REPO = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO.parent / "shared"
PG_ADMIN_URL = os.environ.get("BWMS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def shared_broker() -> str:
    """URL of the machine's Mosquitto on 127.0.0.1:1883; never stopped by a test."""
    try:
        wait_listening(SHARED_HOST, SHARED_PORT, timeout_s=3)
    except TimeoutError:
        pytest.fail("Mosquitto is not running on 127.0.0.1:1883; .ci/run starts it")
    return f"mqtt://{SHARED_HOST}:{SHARED_PORT}"


@pytest.fixture
def private_broker() -> Iterator[Callable[..., PrivateMosquitto]]:
    """Factory of Mosquitto processes of the test's own, each on a free port."""
    started: list[PrivateMosquitto] = []

    def make(**options: object) -> PrivateMosquitto:
        broker = PrivateMosquitto(**options)  # type: ignore[arg-type]
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.close()


@pytest.fixture
def site_id() -> str:
    """A site id unique to this test, so tests on the shared broker never cross."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def fixtures_dir() -> Path:
    """Folder of the real-reader LLRP byte fixtures."""
    path = SHARED_DIR / "llrp-fixtures" / "edgex-device-rfid-llrp-go"
    if not path.is_dir():
        pytest.fail(f"LLRP fixtures folder is missing: {path}")
    return path


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test."""
    name = "bwms_test_" + uuid.uuid4().hex[:10]
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
