"""GET /api/v1/health, /api/v1/portals and /api/v1/site without an MQTT consumer."""

from __future__ import annotations

import httpx


async def test_health_without_consumer(client: httpx.AsyncClient, site_id: str) -> None:
    response = await client.get("/api/v1/health")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["site"] == site_id
    assert body["database"]["reachable"] is True
    assert body["mqtt"]["enabled"] is False


async def test_portals_from_site_file(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/portals")

    portals = response.json()
    assert [p["id"] for p in portals] == ["door-3", "gate-1"]
    assert [p["kind"] for p in portals] == ["dock_door", "gate"]
    assert portals[0]["status"] is None


async def test_site_served(client: httpx.AsyncClient, site_id: str) -> None:
    response = await client.get("/api/v1/site")

    body = response.json()
    assert body["site"]["id"] == site_id
    assert body["portals"][1]["reader"]["port"] == 5086


async def test_openapi_lists_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    paths = response.json()["paths"]
    for path in (
        "/api/v1/movements",
        "/api/v1/movements/{event_id}",
        "/api/v1/dead-letters",
        "/api/v1/health",
        "/api/v1/portals",
        "/api/v1/site",
    ):
        assert path in paths, path
