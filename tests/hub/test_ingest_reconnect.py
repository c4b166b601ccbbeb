"""A broker restart in the middle of a stream: the hub reconnects, subscribes again
and stores every movement once, with the edge resending what was not confirmed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from bwms.contract import Kind, topic
from bwms.site import Site
from hub.ingest import MovementConsumer
from hub.settings import HubSettings
from hub.storage.db import Database
from hub.storage.models import Movement
from tests.hub.support import Publisher, movement, wait_until
from tests.support.brokers import PrivateMosquitto


async def test_broker_restart_stores_all_once(
    make_settings: Callable[..., HubSettings],
    private_broker: Callable[..., PrivateMosquitto],
    site: Site,
    database: Database,
    site_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without persistence the restarted broker loses the hub's session, so only
    # subscribing again on reconnect brings the movements back.
    broker = private_broker(persistence=False)
    consumer = MovementConsumer(make_settings(mqtt_url=broker.url), site, database)
    edge = Publisher(broker.url, site_id)
    events = [movement(site_id, seq=n) for n in range(1, 21)]
    door = topic(site_id, "door-3", Kind.MOVEMENT)

    def unconfirmed() -> list[dict[str, object]]:
        return [e for e in events if edge.acked(str(e["event_id"])) == 0]

    caplog.set_level(logging.INFO, logger="hub.ingest")
    await consumer.start()
    try:
        await consumer.wait_subscribed(5)
        await edge.ready()
        for payload in events[:10]:
            await edge.publish(payload)
        await asyncio.to_thread(broker.restart)
        for payload in events[10:]:
            edge.client.publish(door, json.dumps(payload).encode(), qos=1)

        # Like the edge's outbox: resend whatever is still unconfirmed.
        deadline = time.monotonic() + 15
        while unconfirmed() and time.monotonic() < deadline:
            try:
                await wait_until(lambda: not unconfirmed(), timeout_s=1.5)
            except TimeoutError:
                for payload in unconfirmed():
                    edge.client.publish(door, json.dumps(payload).encode(), qos=1)
        await consumer.wait_stored([str(e["event_id"]) for e in events], timeout_s=5)
    finally:
        edge.close()
        await consumer.stop()

    async with database.session() as session:
        stored = await session.scalar(select(func.count()).select_from(Movement))
    messages = [r.getMessage() for r in caplog.records]
    assert stored == 20
    assert unconfirmed() == []
    assert consumer.disconnects == 1
    assert sum("lost connection" in m for m in messages) == 1
    assert sum("reconnected" in m for m in messages) == 1


async def test_broker_down_at_start(
    make_settings: Callable[..., HubSettings],
    site: Site,
    database: Database,
    site_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The hub may start before the broker: it keeps retrying, logs that once, and
    # stores movements once the broker is up.
    broker = PrivateMosquitto()
    consumer = MovementConsumer(make_settings(mqtt_url=broker.url), site, database)
    payload = movement(site_id)
    caplog.set_level(logging.INFO, logger="hub.ingest")
    await consumer.start()
    try:
        await asyncio.sleep(2.5)
        connected_before = consumer.connected
        await asyncio.to_thread(broker.start)
        await consumer.wait_subscribed(5)
        edge = Publisher(broker.url, site_id)
        try:
            await edge.ready()
            await edge.publish(payload)
            await consumer.wait_stored([payload["event_id"]], timeout_s=5)
        finally:
            edge.close()
    finally:
        await consumer.stop()
        broker.close()

    messages = [r.getMessage() for r in caplog.records]
    assert connected_before is False
    assert sum("cannot reach broker" in m for m in messages) == 1
    assert consumer.counters.stored == 1
