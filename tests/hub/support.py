"""Helpers for hub tests: movement payloads, a real paho publisher, polling."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bwms.contract import Kind, format_time_us, subscription, topic
from bwms.epc import encode_sgtin96, encode_sscc96

# 2025-03-01T08:00:00Z in microseconds since the Unix epoch.
T0_US = 1_740_816_000_000_000
GTIN = "08719139005740"
OTHER_GTIN = "04012345000016"
SSCC = "946100520000000072"

SITE_TOML = """
[site]
id = "{site_id}"
name = "Test site"

[[portals]]
id = "door-3"
kind = "dock_door"
reader = {{ id = "door-3-reader" }}
antennas = [{{ port = 1, side = "inside" }}, {{ port = 2, side = "outside" }}]

[[portals]]
id = "gate-1"
kind = "gate"
reader = {{ id = "gate-1-reader", port = 5086 }}
antennas = [{{ port = 1, side = "inside" }}, {{ port = 2, side = "outside" }}]
"""


def sgtin(serial: int, gtin: str = GTIN) -> str:
    """Return the SGTIN-96 hex of one item of `gtin`."""
    return encode_sgtin96(gtin, serial, 7)


def sscc_epc(sscc: str = SSCC) -> str:
    """Return the SSCC-96 hex of a pallet label."""
    return encode_sscc96(sscc, 7, filter_value=6)


def movement(
    site: str,
    portal: str = "door-3",
    seq: int = 1,
    *,
    event_id: str | None = None,
    epcs: list[str] | None = None,
    direction: str = "in",
    portal_kind: str = "dock_door",
    start_us: int | None = None,
    duration_us: int = 2_000_000,
    weight_kg: float | None = None,
) -> dict[str, Any]:
    """Build a bwms.movement/1 payload that passes the schema."""
    start = T0_US + seq * 10_000_000 if start_us is None else start_us
    end = start + duration_us
    tags = [
        {
            "epc": epc,
            "uri": None,
            "reads": 4,
            "first_seen": format_time_us(start),
            "last_seen": format_time_us(end),
            "antennas": [2, 1],
            "peak_rssi_dbm": -48.5,
        }
        for epc in (epcs if epcs is not None else [sgtin(seq)])
    ]
    weight = None
    if weight_kg is not None:
        weight = {
            "scale_id": "scale-1",
            "gross_kg": weight_kg,
            "stable": True,
            "measured_at": format_time_us(end),
        }
    return {
        "schema": "bwms.movement/1",
        "event_id": event_id or f"{portal}-{seq:06d}-{uuid.uuid4().hex[:8]}",
        "site": site,
        "portal": portal,
        "portal_kind": portal_kind,
        "direction": direction,
        "started_at": format_time_us(start),
        "ended_at": format_time_us(end),
        "seq": seq,
        "tags": tags,
        "weight": weight,
        "clip": None,
    }


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `predicate` without blocking the event loop, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


class Publisher:
    """A real paho client playing an edge: publishes movements, collects confirmations."""

    def __init__(self, broker_url: str, site: str) -> None:
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.site = site
        self.acks: list[dict[str, Any]] = []
        self.ack_messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-edge-{uuid.uuid4().hex[:10]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async(host, int(port), keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(subscription(Kind.ACK, site=self.site), qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: Any) -> None:
        payload = json.loads(msg.payload)
        with self._lock:
            self.ack_messages.append((msg.topic, payload))
            self.acks.extend(payload["acks"])

    async def ready(self, timeout_s: float = 5.0) -> None:
        """Wait until the ack subscription is granted."""
        await wait_until(self._subscribed.is_set, timeout_s)

    async def publish_raw(
        self, topic_name: str, payload: bytes, retain: bool = False
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self.client.publish(topic_name, payload, qos=1, retain=retain)
        await wait_until(info.is_published)

    async def publish(self, payload: dict[str, Any], portal: str | None = None) -> None:
        """Publish a movement on its portal's topic, or on `portal`'s."""
        name = topic(self.site, portal or payload["portal"], Kind.MOVEMENT)
        await self.publish_raw(name, json.dumps(payload).encode())

    def acked(self, event_id: str, status: str = "stored") -> int:
        """Return how many confirmations of `event_id` with `status` arrived."""
        with self._lock:
            return sum(
                1
                for a in self.acks
                if a["event_id"] == event_id and a["status"] == status
            )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def purge_session(broker_url: str, client_id: str) -> None:
    """Remove a persistent session from the broker by connecting once with a clean one."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
    )
    try:
        client.connect(host, int(port), keepalive=10)
        client.loop(1.0)
        client.disconnect()
    except OSError:
        pass


# --- signing in -----------------------------------------------------------------

PASSWORD = "correct horse battery staple"


async def add_user(
    app: Any, username: str, role: str, password: str = PASSWORD, *, totp: bool = False
) -> str | None:
    """Store a user through the service; return the TOTP secret when enrolled."""
    from datetime import UTC, datetime

    from hub.audit.chain import Actor, AuditTrail
    from hub.auth import service
    from hub.auth import totp as totp_codes

    trail = AuditTrail(
        key=app.state.auth.audit_key,
        actor=Actor(name="test-setup", role=None, client_ip=None),
        now=app.state.auth.clock() if app.state.auth.clock else datetime.now(UTC),
    )
    async with app.state.db.transaction() as session:
        user = await service.create_user(session, trail, username, password, role)
        if not totp:
            return None
        user.totp_secret = totp_codes.new_secret()
        user.totp_enabled = True
        return user.totp_secret


async def sign_in(
    app: Any, client: Any, role: str = "admin", username: str | None = None
) -> dict[str, str]:
    """Create a user of `role`, sign in by the password flow and return its headers.

    Roles that need a TOTP code by the app's settings are enrolled and send one.
    """
    from hub.auth import totp as totp_codes

    name = username or f"{role}-user"
    needs_totp = role in app.state.auth.settings.auth_totp_roles
    secret = await add_user(app, name, role, totp=needs_totp)
    form = {"username": name, "password": PASSWORD, "grant_type": "password"}
    if secret is not None:
        form["totp"] = totp_codes.code_at(secret, app.state.auth.clock())
    response = await client.post("/api/v1/auth/token", data=form)
    if response.status_code != 200:
        raise AssertionError(f"sign-in failed: {response.status_code} {response.text}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
