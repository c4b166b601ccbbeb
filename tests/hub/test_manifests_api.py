"""Manifest HTTP API on a real uvicorn server, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.app import HubRuntime
from hub.movements import prepare_movement, store_movements
from hub.settings import HubSettings
from tests.hub.support import (
    GTIN,
    OTHER_GTIN,
    SSCC,
    movement,
    sgtin,
    sign_in,
    sscc_epc,
)

# Movements from tests.hub.support start at 2025-03-01T08:00:00Z plus seq * 10 s.
WINDOW_START = "2025-03-01T07:00:00Z"
PAST_END = "2025-03-01T09:00:00Z"
FUTURE_END = "2099-01-01T00:00:00Z"

# Rejections happen before the database is used, so one backend is enough for them.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
async def hub(make_settings: Callable[..., HubSettings]) -> AsyncIterator[HubRuntime]:
    runtime = HubRuntime(make_settings(), start_consumer=False)
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
async def client(hub: HubRuntime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, trust_env=False) as http:
        http.headers.update(await sign_in(hub.app, http, "keeper"))
        yield http


async def store(hub: HubRuntime, *payloads: dict[str, Any]) -> None:
    """Store movements as the ingest would."""
    received_at = datetime.now(UTC)
    async with hub.app.state.db.transaction() as session:
        await store_movements(
            session, [prepare_movement(p, received_at) for p in payloads]
        )


def manifest(manifest_id: str = "IN-1", **header: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "manifest_id": manifest_id,
        "direction": "in",
        "declaration_no": "223120250000012345",
        "portals": ["door-3"],
        "window_start": WINDOW_START,
        "window_end": FUTURE_END,
        "lines": [
            {
                "line_no": 1,
                "gtin": GTIN,
                "quantity": 2,
                "unit": "CT",
                "hs_code": "8471300000",
                "description": "Laptops",
            },
            {
                "line_no": 2,
                "sscc": SSCC,
                "unit": "PLT",
                "contents": [{"gtin": OTHER_GTIN, "quantity": 2}],
            },
        ],
    }
    data.update(header)
    return data


async def post(client: httpx.AsyncClient, data: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/manifests", json=data)


async def test_post_returns_manifest(client: httpx.AsyncClient) -> None:
    response = await post(client, manifest())

    body = response.json()
    assert response.status_code == 201
    assert body["manifest_id"] == "IN-1"
    assert body["status"] == "pending"
    assert body["lines"][0]["hs_code"] == "8471300000"
    assert body["lines"][1]["contents"] == [
        {"gtin": OTHER_GTIN, "quantity": 2, "epcs": None}
    ]


async def test_get_manifest(client: httpx.AsyncClient) -> None:
    await post(client, manifest())

    response = await client.get("/api/v1/manifests/IN-1")

    assert response.status_code == 200
    assert [line["line_no"] for line in response.json()["lines"]] == [1, 2]


@sqlite_only
async def test_get_unknown_manifest_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/manifests/NOPE")

    assert response.status_code == 404
    assert response.json() == {"detail": "manifest NOPE not found"}


async def test_post_existing_id_409(client: httpx.AsyncClient) -> None:
    await post(client, manifest())

    response = await post(client, manifest())

    assert response.status_code == 409
    assert response.json() == {"detail": "manifest IN-1 already exists"}


@sqlite_only
async def test_post_invalid_lists_lines(client: httpx.AsyncClient) -> None:
    data = manifest()
    data["lines"][0]["gtin"] = "08719139005741"
    data["lines"][0]["hs_code"] = "847130000"

    response = await post(client, data)

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "line_no": 1,
                "field": "gtin",
                "msg": "line 1: GTIN 08719139005741 has check digit 1; expected 0",
            },
            {
                "line_no": 1,
                "field": "hs_code",
                "msg": "line 1: HS code '847130000' has 9 digits; expected 10",
            },
        ]
    }


@sqlite_only
async def test_post_invalid_stores_nothing(client: httpx.AsyncClient) -> None:
    data = manifest()
    data["lines"][1]["sscc"] = "946100520000000073"

    await post(client, data)
    response = await client.get("/api/v1/manifests/IN-1")

    assert response.status_code == 404


@sqlite_only
async def test_post_unknown_portal_422(client: httpx.AsyncClient, site_id: str) -> None:
    response = await post(client, manifest(portals=["door-9"]))

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "line_no": None,
            "field": "portals",
            "msg": f"portal 'door-9' is not in site {site_id} (known: door-3, gate-1)",
        }
    ]


@sqlite_only
async def test_post_not_json_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/manifests", content=b"{", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422


async def test_list_filters(client: httpx.AsyncClient) -> None:
    await post(client, manifest("IN-1"))
    await post(client, manifest("OUT-1", direction="out", declaration_no="D-2"))

    everything = await client.get("/api/v1/manifests")
    outbound = await client.get("/api/v1/manifests", params={"direction": "out"})
    by_declaration = await client.get(
        "/api/v1/manifests", params={"declaration_no": "D-2"}
    )
    pending = await client.get("/api/v1/manifests", params={"status": "pending"})
    complete = await client.get("/api/v1/manifests", params={"status": "complete"})

    assert {m["manifest_id"] for m in everything.json()} == {"IN-1", "OUT-1"}
    assert [m["manifest_id"] for m in outbound.json()] == ["OUT-1"]
    assert [m["manifest_id"] for m in by_declaration.json()] == ["OUT-1"]
    assert len(pending.json()) == 2
    assert complete.json() == []
    assert everything.json()[0]["line_count"] == 2


@sqlite_only
async def test_list_bad_status_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/manifests", params={"status": "done"})

    assert response.status_code == 422


async def test_reconciliation_receiving(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest())
    first = movement(
        site_id, "door-3", 1, epcs=[sgtin(1), sscc_epc(), sgtin(1, OTHER_GTIN)]
    )
    await store(
        hub,
        first,
        movement(site_id, "gate-1", 2, epcs=[sgtin(2)], portal_kind="gate"),
        movement(site_id, "door-3", 3, epcs=[sgtin(3)], direction="out"),
    )

    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "receiving"
    assert body["closed"] is False
    assert body["event_ids"] == [first["event_id"]]
    assert body["lines"][0]["received"] == 1
    assert body["lines"][1]["received"] == 1
    assert body["lines"][1]["contents"][0]["received"] == 1
    assert body["unexpected"] == []


async def test_close_gives_final_status(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest())
    await store(
        hub, movement(site_id, "door-3", 1, epcs=[sgtin(1), sgtin(2), sscc_epc()])
    )

    closed = await client.post("/api/v1/manifests/IN-1/close", json={"by": "keeper"})
    listed = await client.get("/api/v1/manifests", params={"status": "short"})
    stored = await client.get("/api/v1/manifests/IN-1")

    assert closed.status_code == 200
    assert closed.json()["status"] == "short"
    assert closed.json()["lines"][1]["contents"][0]["status"] == "short"
    assert [m["manifest_id"] for m in listed.json()] == ["IN-1"]
    assert stored.json()["closed_by"] == "keeper"


@sqlite_only
async def test_close_unknown_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/manifests/NOPE/close")

    assert response.status_code == 404


async def test_late_movement_updates_closed(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest())
    await store(hub, movement(site_id, "door-3", 1, epcs=[sgtin(1), sscc_epc()]))
    await client.post("/api/v1/manifests/IN-1/close")
    # Stored after the close, but started inside the window.
    late = movement(
        site_id,
        "door-3",
        2,
        epcs=[sgtin(2), sgtin(1, OTHER_GTIN), sgtin(2, OTHER_GTIN)],
    )
    await store(hub, late)

    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    assert response.json()["status"] == "complete"
    assert late["event_id"] in response.json()["event_ids"]


async def test_resent_movement_counted_once(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest())
    first = movement(site_id, "door-3", 1, epcs=[sgtin(1)])
    await store(hub, first)
    await store(hub, first)
    # The same tag again in a later movement of its own.
    await store(hub, movement(site_id, "door-3", 2, epcs=[sgtin(1)]))

    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    assert response.json()["lines"][0]["received"] == 1
    assert len(response.json()["event_ids"]) == 2


async def test_window_end_closes(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest(window_end=PAST_END))
    await store(
        hub,
        movement(
            site_id,
            "door-3",
            1,
            epcs=[
                sgtin(1),
                sgtin(2),
                sscc_epc(),
                sgtin(1, OTHER_GTIN),
                sgtin(2, OTHER_GTIN),
            ],
        ),
    )

    listed = await client.get("/api/v1/manifests", params={"status": "complete"})
    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    assert [m["manifest_id"] for m in listed.json()] == ["IN-1"]
    assert response.json()["closed"] is True
    assert response.json()["closed_at"] is None


async def test_unexpected_tags_make_over(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    stray = sgtin(1, "04012345000023")
    await post(client, manifest(window_end=PAST_END))
    await store(
        hub,
        movement(
            site_id,
            "door-3",
            1,
            epcs=[
                sgtin(1),
                sgtin(2),
                sscc_epc(),
                sgtin(1, OTHER_GTIN),
                sgtin(2, OTHER_GTIN),
                stray,
            ],
        ),
    )

    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    body = response.json()
    assert body["status"] == "over"
    assert [tag["epc"] for tag in body["unexpected"]] == [stray]
    assert body["unexpected"][0]["gtin"] == "04012345000023"
    assert body["unexpected"][0]["scheme"] == "sgtin-96"


async def test_confirm_quantity_shown_apart(
    client: httpx.AsyncClient, hub: HubRuntime, site_id: str
) -> None:
    await post(client, manifest())
    await store(hub, movement(site_id, "door-3", 1, epcs=[sgtin(1)]))

    confirmed = await client.post(
        "/api/v1/manifests/IN-1/lines/1/confirm",
        json={"quantity": 1, "by": "keeper", "reason": "label torn"},
    )
    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    line = response.json()["lines"][0]
    assert confirmed.status_code == 201
    assert confirmed.json()["by"] == "keeper"
    assert line["received"] == 1
    assert line["confirmed_manually"] == 1
    assert line["status"] == "complete"
    assert response.json()["confirmations"][0]["reason"] == "label torn"


async def test_confirm_pallet_content_epc(
    client: httpx.AsyncClient, hub: HubRuntime
) -> None:
    await post(client, manifest())

    confirmed = await client.post(
        "/api/v1/manifests/IN-1/lines/2/confirm",
        json={"epcs": [sgtin(7, OTHER_GTIN)], "by": "keeper", "reason": "tag dead"},
    )
    response = await client.get("/api/v1/manifests/IN-1/reconciliation")

    assert confirmed.status_code == 201
    assert response.json()["lines"][1]["contents"][0]["confirmed_manually"] == 1


@sqlite_only
async def test_confirm_epc_of_other_line_422(client: httpx.AsyncClient) -> None:
    await post(client, manifest())
    epc = sgtin(7, OTHER_GTIN)

    response = await client.post(
        "/api/v1/manifests/IN-1/lines/1/confirm",
        json={"epcs": [epc], "by": "keeper", "reason": "tag dead"},
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "line_no": 1,
            "field": "epcs",
            "msg": f"EPC {epc} does not belong to line 1 of manifest IN-1",
        }
    ]


@sqlite_only
async def test_confirm_without_reason_422(client: httpx.AsyncClient) -> None:
    await post(client, manifest())

    response = await client.post(
        "/api/v1/manifests/IN-1/lines/1/confirm", json={"quantity": 1, "by": "keeper"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"line_no": 1, "field": "reason", "msg": "line 1: reason is missing"}
    ]


@sqlite_only
async def test_confirm_both_kinds_422(client: httpx.AsyncClient) -> None:
    await post(client, manifest())

    response = await client.post(
        "/api/v1/manifests/IN-1/lines/1/confirm",
        json={"quantity": 1, "epcs": [sgtin(1)], "by": "keeper", "reason": "x"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "line 1: give either epcs or quantity"


@sqlite_only
async def test_confirm_unknown_line_404(client: httpx.AsyncClient) -> None:
    await post(client, manifest())

    response = await client.post(
        "/api/v1/manifests/IN-1/lines/9/confirm",
        json={"quantity": 1, "by": "keeper", "reason": "x"},
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "manifest IN-1 has no line 9"}


@sqlite_only
async def test_openapi_documents_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    operation = response.json()["paths"]["/api/v1/manifests"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "lines" in schema["properties"]
    assert "$ref" not in str(schema)
