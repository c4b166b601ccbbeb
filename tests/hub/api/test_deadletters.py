"""GET /api/v1/dead-letters: rejected messages, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from hub.movements import NewDeadLetter, store_dead_letters
from hub.storage.db import Database


async def test_dead_letters_newest_first(
    app_and_client: tuple[Any, httpx.AsyncClient],
) -> None:
    app, client = app_and_client
    database: Database = app.state.db
    letters = [
        NewDeadLetter(
            received_at=datetime(2025, 3, 1, 8, 0, n, tzinfo=UTC),
            topic="bwms/v1/s/door-3/movement",
            payload=f"garbage {n}",
            payload_truncated=False,
            reason=f"invalid_json: number {n}",
        )
        for n in range(3)
    ]
    async with database.transaction() as session:
        await store_dead_letters(session, letters)

    response = await client.get("/api/v1/dead-letters", params={"limit": 2})

    body = response.json()
    assert response.status_code == 200
    assert [letter["payload"] for letter in body] == ["garbage 2", "garbage 1"]
    assert body[0]["reason"] == "invalid_json: number 2"
    assert body[0]["received_at"] == "2025-03-01T08:00:02Z"


async def test_dead_letters_limit_bounded(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/dead-letters", params={"limit": 0})

    assert response.status_code == 422
