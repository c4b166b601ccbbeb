"""Movement routes: search stored movements and fetch one by event_id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from hub.api import SessionDep
from hub.auth.deps import require
from hub.movements import (
    MAX_PAGE,
    Direction,
    InvalidCursor,
    MovementOut,
    MovementPage,
    MovementQuery,
    get_movement,
    list_movements,
)

router = APIRouter(tags=["movements"])


@router.get(
    "/movements",
    response_model=MovementPage,
    dependencies=[require("movement:read")],
)
async def search_movements(
    session: SessionDep,
    portal: Annotated[str | None, Query(description="Portal id.")] = None,
    direction: Annotated[
        Direction | None, Query(description="in, out or unknown.")
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="Earliest started_at, inclusive; RFC 3339 with offset."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(description="Latest started_at, exclusive; RFC 3339 with offset."),
    ] = None,
    epc: Annotated[str | None, Query(description="EPC hex of one of the tags.")] = None,
    gtin: Annotated[
        str | None, Query(description="GTIN-14 of one of the tags.")
    ] = None,
    sscc: Annotated[
        str | None, Query(description="SSCC-18 of one of the tags.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page.")
    ] = None,
) -> MovementPage:
    """List movements, newest started_at first, with their decoded tags."""
    query = MovementQuery(
        portal=portal,
        direction=direction,
        since=since,
        until=until,
        epc=epc,
        gtin=gtin,
        sscc=sscc,
        limit=limit,
        cursor=cursor,
    )
    try:
        return await list_movements(session, query)
    except (InvalidCursor, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


@router.get(
    "/movements/{event_id}",
    response_model=MovementOut,
    dependencies=[require("movement:read")],
)
async def read_movement(event_id: str, session: SessionDep) -> MovementOut:
    """Return one movement by the event_id the edge gave it."""
    movement = await get_movement(session, event_id)
    if movement is None:
        raise HTTPException(status_code=404, detail=f"movement {event_id!r} not found")
    return movement
