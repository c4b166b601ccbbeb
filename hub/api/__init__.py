"""HTTP API of the hub, versioned under /api/v1; one router module per resource.

Routers reach the hub's shared objects through the dependencies below, which read
them from `app.state` as `hub.app.create_app` sets them up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from bwms.site import Site
from hub.ingest import MovementConsumer
from hub.storage.db import Database, StorageError


def get_database(request: Request) -> Database:
    """Return the hub's database."""
    database: Database = request.app.state.db
    return database


def get_site(request: Request) -> Site:
    """Return the site file the hub loaded."""
    site: Site = request.app.state.site
    return site


def get_consumer(request: Request) -> MovementConsumer | None:
    """Return the MQTT consumer, or None when the app runs without one."""
    consumer: MovementConsumer | None = request.app.state.consumer
    return consumer


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """Yield a database session for one request; storage errors become HTTP 503."""
    try:
        async with database.session() as session:
            yield session
    except StorageError as exc:
        raise HTTPException(
            status_code=503, detail=f"database unavailable: {exc}"
        ) from exc


DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SiteDep = Annotated[Site, Depends(get_site)]
ConsumerDep = Annotated[MovementConsumer | None, Depends(get_consumer)]
