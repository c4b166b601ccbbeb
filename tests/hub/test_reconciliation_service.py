"""Reconciliation service over the database, with the clock given by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bwms.site import Site
from hub.manifests.service import (
    close_manifest,
    create_manifest,
    get_manifest,
    list_manifests,
    reconciliation,
)
from hub.manifests.validation import parse_manifest
from hub.movements import prepare_movement, store_movements
from hub.storage.db import Database
from tests.hub.support import GTIN, movement, sgtin

WINDOW_END = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
BEFORE_END = WINDOW_END - timedelta(minutes=30)
AFTER_END = WINDOW_END + timedelta(seconds=1)

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def manifest_data(**header: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "manifest_id": "IN-1",
        "direction": "in",
        "declaration_no": "223120250000012345",
        "portals": ["door-3"],
        "window_start": "2025-03-01T07:00:00Z",
        "window_end": WINDOW_END.isoformat(),
        "lines": [{"line_no": 1, "gtin": GTIN, "quantity": 2, "unit": "CT"}],
    }
    data.update(header)
    return data


async def store(database: Database, *payloads: dict[str, Any]) -> None:
    async with database.transaction() as session:
        await store_movements(
            session, [prepare_movement(p, datetime.now(UTC)) for p in payloads]
        )


async def create(database: Database, site: Site, **header: Any) -> None:
    async with database.transaction() as session:
        await create_manifest(session, manifest_data(**header), site, now=BEFORE_END)


async def reconcile_at(database: Database, now: datetime) -> dict[str, Any]:
    async with database.transaction() as session:
        return await reconciliation(session, "IN-1", now=now)


async def test_open_until_window_end(database: Database, site: Site, site_id: str) -> None:
    await create(database, site)
    await store(database, movement(site_id, "door-3", 1, epcs=[sgtin(1)]))

    before = await reconcile_at(database, BEFORE_END)
    after = await reconcile_at(database, AFTER_END)

    assert before["status"] == "receiving"
    assert after["status"] == "short"
    assert after["closed"] is True


async def test_status_kept_for_lists(database: Database, site: Site, site_id: str) -> None:
    await create(database, site)
    await store(database, movement(site_id, "door-3", 1, epcs=[sgtin(1), sgtin(2)]))

    async with database.transaction() as session:
        open_list = await list_manifests(session, now=BEFORE_END)
    async with database.transaction() as session:
        closed_list = await list_manifests(session, status="complete", now=AFTER_END)

    assert [m.status for m in open_list] == ["receiving"]
    assert [m.manifest_id for m in closed_list] == ["IN-1"]


async def test_close_twice_keeps_first(database: Database, site: Site) -> None:
    await create(database, site)
    first = BEFORE_END - timedelta(minutes=5)

    async with database.transaction() as session:
        await close_manifest(session, "IN-1", by="keeper", now=first)
    async with database.transaction() as session:
        await close_manifest(session, "IN-1", by="someone else", now=BEFORE_END)
    async with database.session() as session:
        stored = await get_manifest(session, "IN-1")

    assert stored.closed_at == first
    assert stored.closed_by == "keeper"
    assert stored.status == "short"


@sqlite_only
async def test_create_accepts_model(database: Database, site: Site) -> None:
    parsed = parse_manifest(manifest_data(manifest_id="IN-2"), site=site)

    async with database.transaction() as session:
        created = await create_manifest(session, parsed, site, 10, now=BEFORE_END)

    assert created.manifest_id == "IN-2"
    assert created.created_at == BEFORE_END


async def test_uncommitted_create_not_kept(database: Database, site: Site) -> None:
    # Service functions only flush, so the caller's transaction decides.
    async with database.session() as session:
        await create_manifest(session, manifest_data(), site, now=BEFORE_END)
        await session.rollback()

    async with database.session() as session:
        listed = await list_manifests(session, now=BEFORE_END)

    assert listed == []


@sqlite_only
@pytest.mark.parametrize("direction", ["out", "unknown"])
async def test_other_direction_ignored(
    database: Database, site: Site, site_id: str, direction: str
) -> None:
    await create(database, site)
    await store(database, movement(site_id, "door-3", 1, epcs=[sgtin(1)], direction=direction))

    result = await reconcile_at(database, BEFORE_END)

    assert result["status"] == "pending"


async def test_direction_unknown_reported(database: Database, site: Site, site_id: str) -> None:
    await create(database, site)
    await store(database, movement(site_id, "door-3", 1, epcs=[sgtin(1)], direction="unknown"))

    result = await reconcile_at(database, BEFORE_END)

    assert [tag["epc"] for tag in result["direction_unknown"]] == [sgtin(1)]
    assert result["status"] == "pending"
