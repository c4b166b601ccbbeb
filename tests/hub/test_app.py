"""The hub run in-process: real uvicorn on a free loopback port, consumer on the
shared broker, and clean start-up failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bwms.contract import Kind, topic
from bwms.site import SiteError
from hub.app import HubError, HubRuntime, create_app
from hub.settings import HubSettings
from tests.hub.support import Publisher, movement, sign_in, wait_until


async def test_runtime_stores_and_serves(
    make_settings: Callable[..., HubSettings], publisher: Publisher, site_id: str
) -> None:
    runtime = HubRuntime(make_settings())
    await runtime.start()
    try:
        await runtime.wait_ready(5)
        payload = movement(site_id, portal="gate-1", portal_kind="gate")
        status = {
            "schema": "bwms.status/1",
            "site": site_id,
            "portal": "gate-1",
            "state": "online",
            "at": "2025-03-01T08:00:00.000000Z",
        }
        # Not retained, so nothing is left on the shared broker after the test.
        await publisher.publish_raw(
            topic(site_id, "gate-1", Kind.STATUS), json.dumps(status).encode()
        )
        await publisher.publish(payload)
        await runtime.wait_stored([payload["event_id"]], timeout_s=5)
        await wait_until(lambda: "gate-1" in runtime.consumer.statuses)

        async with httpx.AsyncClient(base_url=runtime.url) as client:
            client.headers.update(await sign_in(runtime.app, client, "viewer"))
            health = await client.get("/api/v1/health")
            stored = await client.get(f"/api/v1/movements/{payload['event_id']}")
            portals = await client.get("/api/v1/portals")
            docs = await client.get("/docs")
    finally:
        await runtime.stop()

    assert health.status_code == 200
    assert health.json()["mqtt"]["connected"] is True
    assert health.json()["counters"]["stored"] == 1
    assert stored.json()["portal"] == "gate-1"
    assert portals.json()[1]["state"] == "online"
    assert docs.status_code == 200


async def test_runtime_wait_stored_counts(
    make_settings: Callable[..., HubSettings], publisher: Publisher, site_id: str
) -> None:
    runtime = HubRuntime(make_settings())
    await runtime.start()
    try:
        await runtime.wait_ready(5)
        for seq in (1, 2):
            await publisher.publish(movement(site_id, seq=seq))
        await runtime.wait_stored(2, timeout_s=5)
        with pytest.raises(TimeoutError, match="1 of 3 movements"):
            await runtime.wait_stored(3, timeout_s=0.2)
    finally:
        await runtime.stop()


def test_missing_site_file_raises(tmp_path: Path) -> None:
    settings = HubSettings(site_file=tmp_path / "absent.toml", data_dir=tmp_path)

    with pytest.raises(SiteError, match="cannot read site file"):
        create_app(settings, start_consumer=False)


async def test_unreachable_database_fails_start(
    make_settings: Callable[..., HubSettings],
) -> None:
    # Port 1 on loopback: the migration fails at once with connection refused.
    settings = make_settings(database_url="postgresql+asyncpg://bwms@127.0.0.1:1/bwms")
    runtime = HubRuntime(settings, start_consumer=False)

    with pytest.raises(HubError, match="hub start-up failed"):
        await runtime.start()
