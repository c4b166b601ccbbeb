"""The hub's persistent MQTT session: movements published while it is away arrive
when it comes back, because the broker queued them under its fixed client id."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from bwms.site import Site
from hub.ingest import MovementConsumer
from hub.settings import HubSettings
from hub.storage.db import Database
from hub.storage.models import Movement
from tests.hub.support import Publisher, movement


async def test_published_while_away_received(
    settings: HubSettings,
    site: Site,
    database: Database,
    publisher: Publisher,
    site_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The very first connect must already create a persistent session; a clean
    # first session would drop what is published before the hub comes back.
    first = MovementConsumer(settings, site, database)
    await first.start()
    await first.wait_subscribed(5)
    await first.stop()

    away = [movement(site_id, seq=n) for n in range(1, 4)]
    for payload in away:
        await publisher.publish(payload)

    second = MovementConsumer(settings, site, database)
    with caplog.at_level(logging.INFO, logger="hub.ingest"):
        await second.start()
        try:
            await second.wait_stored([p["event_id"] for p in away], timeout_s=5)
        finally:
            await second.stop()

    async with database.session() as session:
        stored = await session.scalar(select(func.count()).select_from(Movement))
    assert stored == 3
    assert any("session kept: True" in r.getMessage() for r in caplog.records)
