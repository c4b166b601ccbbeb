"""Requests carrying a NUL character are rejected before they reach the database."""

from __future__ import annotations

import httpx

DETAIL = "the request contains a NUL character (U+0000), which no field accepts"


async def test_nul_in_form_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": "admin\x00", "password": "x"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == DETAIL


async def test_nul_in_json_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/manifests", json={"manifest_id": "IN-\x00", "lines": []}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == DETAIL


async def test_nul_in_query_rejected(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/movements", params={"epc": "30\x0036"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == DETAIL


async def test_percent_text_in_json_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/movements", params={"portal": "door-3"})
    posted = await client.post("/api/v1/manifests", json={"note": "100%00 sure"})

    assert response.status_code == 200
    # Rejected by the manifest validation, not by the NUL check.
    assert posted.status_code == 422
    assert posted.json()["detail"][0]["msg"] != DETAIL
