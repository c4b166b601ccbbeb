"""Dead-letter route: rejected MQTT messages, newest first, for operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hub.api import SessionDep
from hub.auth.deps import require
from hub.movements import MAX_PAGE, DeadLetterOut, list_dead_letters

router = APIRouter(tags=["dead letters"])


@router.get(
    "/dead-letters",
    response_model=list[DeadLetterOut],
    dependencies=[require("deadletter:read")],
)
async def read_dead_letters(
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Maximum rows returned.")
    ] = 100,
) -> list[DeadLetterOut]:
    """List rejected messages with their reason, newest first."""
    return await list_dead_letters(session, limit)
