"""GET /api/v1/movements filters and pagination, and GET /api/v1/movements/{event_id}."""

from __future__ import annotations

from typing import Any

import httpx

from tests.hub.api.conftest import StoreMovements
from tests.hub.support import GTIN, OTHER_GTIN, SSCC, movement, sgtin, sscc_epc


async def seed(store: StoreMovements, site_id: str) -> list[dict[str, Any]]:
    """Store five movements, seq 1..5, ten seconds apart from 08:00:10Z."""
    payloads = [
        movement(site_id, "door-3", 1, epcs=[sgtin(1), sscc_epc()]),
        movement(site_id, "door-3", 2, epcs=[sgtin(2)], direction="out"),
        movement(
            site_id, "gate-1", 3, epcs=[sgtin(3)], portal_kind="gate", direction="out"
        ),
        movement(site_id, "door-3", 4, epcs=[sgtin(4, OTHER_GTIN)]),
        movement(site_id, "gate-1", 5, epcs=[sgtin(1)], portal_kind="gate"),
    ]
    await store(payloads)
    return payloads


def seqs(response: httpx.Response) -> list[int]:
    return [item["seq"] for item in response.json()["items"]]


async def test_list_newest_first(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    await seed(store, site_id)

    response = await client.get("/api/v1/movements")

    assert response.status_code == 200
    assert seqs(response) == [5, 4, 3, 2, 1]
    assert response.json()["next_cursor"] is None


async def test_filter_portal_direction(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    await seed(store, site_id)

    by_portal = await client.get("/api/v1/movements", params={"portal": "gate-1"})
    by_both = await client.get(
        "/api/v1/movements", params={"portal": "door-3", "direction": "out"}
    )

    assert seqs(by_portal) == [5, 3]
    assert seqs(by_both) == [2]


async def test_filter_time_range(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    await seed(store, site_id)

    # since is inclusive and until exclusive; +08:00 is converted to UTC.
    response = await client.get(
        "/api/v1/movements",
        params={"since": "2025-03-01T16:00:20+08:00", "until": "2025-03-01T08:00:40Z"},
    )

    assert seqs(response) == [3, 2]


async def test_filter_epc_gtin_sscc(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    await seed(store, site_id)

    by_epc = await client.get("/api/v1/movements", params={"epc": sgtin(1).lower()})
    by_gtin = await client.get("/api/v1/movements", params={"gtin": GTIN})
    by_other_gtin = await client.get("/api/v1/movements", params={"gtin": OTHER_GTIN})
    by_sscc = await client.get("/api/v1/movements", params={"sscc": SSCC})
    by_gtin_and_sscc = await client.get(
        "/api/v1/movements", params={"gtin": GTIN, "sscc": SSCC}
    )

    assert seqs(by_epc) == [5, 1]
    assert seqs(by_gtin) == [5, 3, 2, 1]
    assert seqs(by_other_gtin) == [4]
    assert seqs(by_sscc) == [1]
    assert seqs(by_gtin_and_sscc) == [1]


async def test_pages_follow_cursor(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    await seed(store, site_id)

    pages: list[list[int]] = []
    cursor = None
    for _ in range(4):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/api/v1/movements", params=params)
        pages.append(seqs(response))
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == [[5, 4], [3, 2], [1]]


async def test_tags_decoded_in_response(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    payloads = await seed(store, site_id)

    response = await client.get(f"/api/v1/movements/{payloads[0]['event_id']}")

    body = response.json()
    assert response.status_code == 200
    assert body["started_at"] == "2025-03-01T08:00:10Z"
    assert body["tag_count"] == 2
    assert body["tags"][0]["scheme"] == "sgtin-96"
    assert body["tags"][0]["gtin"] == GTIN
    assert body["tags"][1]["scheme"] == "sscc-96"
    assert body["tags"][1]["sscc"] == SSCC
    assert body["tags"][1]["uri"] == "urn:epc:id:sscc:4610052.9000000007"


async def test_unknown_event_id_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/movements/no-such-event")

    assert response.status_code == 404
    assert response.json()["detail"] == "movement 'no-such-event' not found"


async def test_bad_cursor_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/movements", params={"cursor": "garbage!"})

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "invalid cursor 'garbage!'; use next_cursor of a page"
    )


async def test_time_without_offset_422(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/movements", params={"since": "2025-03-01T08:00:00"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "since 2025-03-01T08:00:00 needs a UTC offset, e.g. Z"
    )


async def test_limit_above_max_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/movements", params={"limit": 1001})

    assert response.status_code == 422


async def test_cursor_keeps_equal_start_times(
    client: httpx.AsyncClient, store: StoreMovements, site_id: str
) -> None:
    # Movements at two portals can start in the same microsecond; the id breaks
    # the tie so that no page skips or repeats one.
    same = 1_740_816_000_000_000
    await store([movement(site_id, "door-3", n, start_us=same) for n in (1, 2, 3)])

    seen: list[int] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/api/v1/movements", params=params)
        seen += seqs(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == [3, 2, 1]
