"""Audit records written by API changes, and the audit search and export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub.app import create_app
from hub.settings import HubSettings
from tests.hub.support import sign_in
from tests.hub.test_manifests_api import manifest


@pytest.fixture
async def app(make_settings: Callable[..., HubSettings]) -> AsyncIterator[FastAPI]:
    # httpx's ASGI transport presents the client as 127.0.0.1, the proxy here.
    hub = create_app(
        make_settings(auth_trusted_proxies=["127.0.0.0/8"]), start_consumer=False
    )
    async with hub.router.lifespan_context(hub):
        yield hub


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


@pytest.fixture
async def closed(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """Customs headers after a keeper created and closed manifest IN-1."""
    keeper = await sign_in(app, client, "keeper", username="kim")
    forwarded = {**keeper, "X-Forwarded-For": "198.51.100.4, 203.0.113.7"}
    await client.post("/api/v1/manifests", json=manifest("IN-1"), headers=forwarded)
    await client.post("/api/v1/manifests/IN-1/close", headers=forwarded)
    return await sign_in(app, client, "customs", username="carla")


async def records(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_manifest_changes_audited(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, target="manifest:IN-1")

    assert [r["action"] for r in found] == ["manifest.create", "manifest.close"]


async def test_audit_names_actor_and_role(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, action="manifest.close")

    assert (found[0]["actor"], found[0]["role"]) == ("kim", "keeper")


async def test_close_before_and_after(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, action="manifest.close")

    assert found[0]["before"]["closed_at"] is None
    assert found[0]["after"]["closed_by"] == "kim"


async def test_client_ip_from_trusted_proxy(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, action="manifest.create")

    assert found[0]["client_ip"] == "203.0.113.7"


async def test_search_by_actor(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, actor="kim")

    assert {r["action"] for r in found} == {
        "auth.sign_in",
        "manifest.create",
        "manifest.close",
    }


async def test_search_by_time(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    found = await records(client, closed, since="2099-01-01T00:00:00Z")

    assert found == []


async def test_export_csv(client: httpx.AsyncClient, closed: dict[str, str]) -> None:
    response = await client.get(
        "/api/v1/audit", params={"format": "csv", "actor": "kim"}, headers=closed
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))

    assert response.headers["content-type"].startswith("text/csv")
    assert [row["action"] for row in rows][-1] == "manifest.close"


async def test_export_json_lines(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/audit", params={"format": "jsonl", "actor": "kim"}, headers=closed
    )
    lines = [json.loads(line) for line in response.text.splitlines()]

    assert [line["action"] for line in lines][-1] == "manifest.close"


async def test_chain_verifies_after_api_changes(
    client: httpx.AsyncClient, closed: dict[str, str]
) -> None:
    response = await client.get("/api/v1/audit/verify", headers=closed)

    assert response.json()["ok"] is True


async def test_user_changes_audited(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await sign_in(app, client, "admin", username="root")
    await client.post(
        "/api/v1/users",
        json={"username": "gus", "password": "a long enough password", "role": "guard"},
        headers=admin,
    )
    await client.patch("/api/v1/users/gus", json={"role": "viewer"}, headers=admin)
    await client.patch("/api/v1/users/gus", json={"disabled": True}, headers=admin)

    found = await records(client, admin, target="user:gus")

    assert [r["action"] for r in found] == ["user.create", "user.role", "user.disable"]


async def test_untrusted_peer_forwarded_ignored(
    make_settings: Callable[..., HubSettings],
) -> None:
    hub = create_app(make_settings(), start_consumer=False)
    async with hub.router.lifespan_context(hub):
        transport = httpx.ASGITransport(app=hub)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub"
        ) as http:
            keeper = await sign_in(hub, http, "keeper")
            await http.post(
                "/api/v1/manifests",
                json=manifest("IN-2"),
                headers={**keeper, "X-Forwarded-For": "203.0.113.7"},
            )
            admin = await sign_in(hub, http, "admin")
            found = await records(http, admin, action="manifest.create")

    assert found[0]["client_ip"] == "127.0.0.1"
