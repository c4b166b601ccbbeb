"""An API client over ASGI with the app's lifespan run, and no MQTT consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.app import create_app
from hub.movements import prepare_movement, store_movements
from hub.settings import HubSettings
from hub.storage.db import Database
from tests.hub.support import sign_in

StoreMovements = Callable[[list[dict[str, Any]]], Any]


@pytest.fixture
async def app_and_client(
    make_settings: Callable[..., HubSettings],
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(make_settings(), start_consumer=False)
    # httpx's ASGI transport does not send lifespan events, so run the lifespan here.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub"
        ) as client:
            client.headers.update(await sign_in(app, client, "admin"))
            yield app, client


@pytest.fixture
def client(app_and_client: tuple[Any, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


@pytest.fixture
def store(app_and_client: tuple[Any, httpx.AsyncClient]) -> StoreMovements:
    """Store movement payloads directly through the service, as the ingest would."""
    database: Database = app_and_client[0].state.db

    async def save(payloads: list[dict[str, Any]]) -> None:
        received_at = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
        async with database.transaction() as session:
            await store_movements(
                session, [prepare_movement(p, received_at) for p in payloads]
            )

    return save
