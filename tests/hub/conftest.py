"""Fixtures of the hub tests: a database on SQLite and PostgreSQL, a site file, a
running consumer on the shared broker, and a publisher playing the edge."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bwms.site import Site, load_site
from hub.ingest import MovementConsumer
from hub.settings import HubSettings
from hub.storage.db import Database
from tests.hub.support import SITE_TOML, Publisher, purge_session


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # HubSettings reads BWMS_HUB_* variables; a developer's shell must not steer tests.
    for name in os.environ:
        if name.startswith("BWMS_HUB_"):
            monkeypatch.delenv(name)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Database URL of a fresh database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def site_file(tmp_path: Path, site_id: str) -> Path:
    """Site file of the test's own site: door-3 (dock door) and gate-1 (gate)."""
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML.format(site_id=site_id))
    return path


@pytest.fixture
def site(site_file: Path) -> Site:
    return load_site(site_file)


@pytest.fixture
def make_settings(
    site_file: Path, db_url: str, shared_broker: str, site_id: str, tmp_path: Path
) -> Iterator[Callable[..., HubSettings]]:
    """Factory of hub settings for the test's site, database and the shared broker.

    Persistent sessions left on the broker under the test's client ids are removed
    when the test ends.
    """
    client_ids: set[tuple[str, str]] = set()

    def make(**overrides: object) -> HubSettings:
        values: dict[str, object] = {
            "site_file": site_file,
            "database_url": db_url,
            "data_dir": tmp_path / "data",
            "mqtt_url": shared_broker,
            "mqtt_client_id": f"test-hub-{site_id}-{uuid.uuid4().hex[:6]}",
            "mqtt_reconnect_max_s": 1,
            "ack_flush_ms": 5,
            "api_port": 0,
        }
        values.update(overrides)
        settings = HubSettings(**values)  # type: ignore[arg-type]
        client_ids.add((settings.mqtt_url, settings.client_id_for(site_id)))
        return settings

    yield make
    for url, client_id in client_ids:
        purge_session(url, client_id)


@pytest.fixture
def settings(make_settings: Callable[..., HubSettings]) -> HubSettings:
    return make_settings()


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """Migrated database."""
    db = Database(db_url)
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
async def consumer(
    settings: HubSettings, site: Site, database: Database
) -> AsyncIterator[MovementConsumer]:
    """A running consumer whose subscriptions are granted."""
    running = MovementConsumer(settings, site, database)
    await running.start()
    await running.wait_subscribed(5)
    yield running
    await running.stop()


@pytest.fixture
async def publisher(shared_broker: str, site_id: str) -> AsyncIterator[Publisher]:
    """An edge-like publisher subscribed to the site's confirmations."""
    edge = Publisher(shared_broker, site_id)
    await edge.ready()
    yield edge
    edge.close()
