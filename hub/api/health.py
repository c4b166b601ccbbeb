"""Health, portal and site routes: what operators check first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from hub.api import ConsumerDep, DatabaseDep, SiteDep
from hub.auth.deps import public, require

router = APIRouter(tags=["health"])


class DatabaseHealth(BaseModel):
    """Database reachability."""

    url: str = Field(description="Database URL with the password masked.")
    reachable: bool


class MqttHealth(BaseModel):
    """State of the hub's MQTT consumer."""

    enabled: bool = Field(description="False when the hub runs without a consumer.")
    broker: str | None
    client_id: str | None
    connected: bool
    subscribed: bool = Field(
        description="Whether the broker granted the subscriptions."
    )
    connected_since: datetime | None
    disconnects: int = Field(description="Connections lost since the hub started.")


class Health(BaseModel):
    """Hub health; the HTTP status is 503 unless `status` is ok."""

    status: Literal["ok", "degraded"]
    site: str
    database: DatabaseHealth
    mqtt: MqttHealth
    counters: dict[str, Any] = Field(
        description=(
            "Since start: movement messages received, stored, duplicates, rejected per "
            "reason code, confirmations sent, status messages, batches, storage errors."
        )
    )


class PortalView(BaseModel):
    """A portal of the site file with the last status its edge daemon reported."""

    id: str
    kind: str
    name: str
    position: dict[str, float] = Field(description="Metres from the site plan origin.")
    state: str | None = Field(
        description="Last reported state; null before any report."
    )
    status: dict[str, Any] | None = Field(description="Last bwms.status/1 payload.")
    status_received_at: datetime | None = Field(
        description="Hub time of that report, UTC."
    )


@router.get("/health", response_model=Health, dependencies=[public()])
async def read_health(
    response: Response, database: DatabaseDep, site: SiteDep, consumer: ConsumerDep
) -> Health:
    """Report database reachability, MQTT connection state and ingest counters."""
    reachable = await database.ping()
    if consumer is None:
        mqtt = MqttHealth(
            enabled=False,
            broker=None,
            client_id=None,
            connected=False,
            subscribed=False,
            connected_since=None,
            disconnects=0,
        )
        counters: dict[str, Any] = {}
    else:
        mqtt = MqttHealth(
            enabled=True,
            broker=consumer.broker_url,
            client_id=consumer.client_id,
            connected=consumer.connected,
            subscribed=consumer.subscribed,
            connected_since=consumer.connected_since,
            disconnects=consumer.disconnects,
        )
        counters = consumer.counters.snapshot()
    healthy = reachable and (not mqtt.enabled or mqtt.connected)
    if not healthy:
        response.status_code = 503
    return Health(
        status="ok" if healthy else "degraded",
        site=site.site.id,
        database=DatabaseHealth(url=database.display_url, reachable=reachable),
        mqtt=mqtt,
        counters=counters,
    )


@router.get(
    "/portals",
    response_model=list[PortalView],
    dependencies=[require("site:read")],
)
async def read_portals(site: SiteDep, consumer: ConsumerDep) -> list[PortalView]:
    """List the site file's portals with each one's last reported status."""
    statuses = consumer.statuses if consumer is not None else {}
    views = []
    for portal in site.portals:
        last = statuses.get(portal.id)
        views.append(
            PortalView(
                id=portal.id,
                kind=portal.kind.value,
                name=portal.name,
                position={"x": portal.position.x, "y": portal.position.y},
                state=last.payload["state"] if last is not None else None,
                status=last.payload if last is not None else None,
                status_received_at=last.received_at if last is not None else None,
            )
        )
    return views


@router.get("/site", dependencies=[require("site:read")])
async def read_site(site: SiteDep) -> dict[str, Any]:
    """Return the site file the hub loaded, as JSON."""
    return site.model_dump(mode="json")
