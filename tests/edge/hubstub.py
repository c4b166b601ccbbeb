"""A confirming subscriber that plays the hub's part in edge tests.

It keeps a persistent MQTT session under a fixed client id from its first connect,
so the broker queues movements while it is away, records every delivery, and
confirms movements on each portal's ack topic in batches. Like the real hub it
deduplicates by the `event_id` inside the payload, never by packet id or the dup
flag, and it acks a duplicate again, because the edge resends only when it has not
seen an ack.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bwms.contract import SCHEMA_IDS, Kind, encode, parse_topic, subscription, topic


@dataclass(frozen=True)
class Delivery:
    """One PUBLISH the stub received."""

    index: int  # arrival order, from 0
    portal: str
    payload: dict[str, Any]
    dup: bool


class HubStub:
    """Subscribe to a site's movements at QoS 1 and ack them like the hub.

    `reject` returns a reason for a movement the stub should reject, or None to
    store it. With `auto_ack=False` nothing is confirmed.
    """

    def __init__(
        self,
        url: str,
        site_id: str,
        *,
        client_id: str | None = None,
        auto_ack: bool = True,
        reject: Callable[[dict[str, Any]], str | None] | None = None,
        batch_interval_s: float = 0.05,
        batch_max: int = 100,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.site_id = site_id
        self.client_id = client_id or f"hubstub-{site_id}"
        self.auto_ack = auto_ack
        self.reject = reject
        self.batch_interval_s = batch_interval_s
        self.batch_max = batch_max

        self.deliveries: list[Delivery] = []
        self.unique: dict[str, dict[str, Any]] = {}  # by event_id, first delivery order
        self.garbage: list[bytes] = []
        self.acks_sent = 0
        self._pending_acks: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._stop_flusher = threading.Event()
        self._flusher: threading.Thread | None = None
        self._client: mqtt.Client | None = None

    # Life cycle

    def start(self, timeout_s: float = 5.0) -> HubStub:
        """Connect with the persistent session and wait until subscribed."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._subscribed.clear()
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(f"hub stub not subscribed after {timeout_s} s")

        self._stop_flusher.clear()
        self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
        self._flusher.start()
        return self

    def stop(self) -> None:
        """Go away cleanly; the broker keeps the session and queues for it."""
        self._stop_flusher.set()
        if self._flusher is not None:
            self._flusher.join(timeout=2)
            self._flusher = None
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        """Stop and remove the persistent session from the broker."""
        self.stop()
        cleaner = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True
        )
        try:
            cleaner.connect(self.host, self.port, keepalive=10)
            cleaner.disconnect()
        except OSError:
            pass  # the broker is gone, and its sessions with it

    # Views for assertions

    def event_ids(self) -> set[str]:
        with self._lock:
            return set(self.unique)

    def first_seqs(self, portal: str) -> list[int]:
        """Return the seq of each movement of a portal, in first-delivery order."""
        with self._lock:
            return [p["seq"] for p in self.unique.values() if p["portal"] == portal]

    def count(self) -> int:
        with self._lock:
            return len(self.deliveries)

    async def wait_unique(self, expected: int, timeout_s: float = 10.0) -> int:
        """Wait until `expected` distinct movements arrived; return how many did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.unique) >= expected:
                    break
            await asyncio.sleep(0.02)
        with self._lock:
            return len(self.unique)

    # paho callbacks, in paho's thread

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        # Subscribing again on a present session is harmless and covers a broker
        # that lost the session.
        client.subscribe(subscription(Kind.MOVEMENT, site=self.site_id), qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            payload = json.loads(message.payload)
            _, portal, _ = parse_topic(message.topic)
            event_id = payload["event_id"]
        except (ValueError, KeyError, TypeError):
            with self._lock:
                self.garbage.append(bytes(message.payload))
            return

        with self._lock:
            self.deliveries.append(
                Delivery(len(self.deliveries), portal, payload, bool(message.dup))
            )
            self.unique.setdefault(event_id, payload)
            if self.auto_ack:
                reason = self.reject(payload) if self.reject else None
                ack = {
                    "event_id": event_id,
                    "status": "stored" if reason is None else "rejected",
                    "reason": reason,
                }
                self._pending_acks.setdefault(portal, []).append(ack)

    def _flush_loop(self) -> None:
        while not self._stop_flusher.wait(self.batch_interval_s):
            self.flush()

    def flush(self) -> None:
        """Publish the queued acks, up to `batch_max` per message."""
        client = self._client
        if client is None or not client.is_connected():
            return
        with self._lock:
            pending, self._pending_acks = self._pending_acks, {}
        for portal, acks in pending.items():
            for start in range(0, len(acks), self.batch_max):
                batch = acks[start : start + self.batch_max]
                message = {
                    "schema": SCHEMA_IDS[Kind.ACK],
                    "site": self.site_id,
                    "portal": portal,
                    "acks": batch,
                }
                client.publish(
                    topic(self.site_id, portal, Kind.ACK), encode(message), qos=1
                )
                self.acks_sent += len(batch)


def sample_movement(
    site_id: str, portal_id: str, seq: int, event_id: str | None = None
) -> dict[str, Any]:
    """Return a valid bwms.movement/1 payload with one tag, for tests."""
    at = "2026-03-02T08:00:00.000000Z"
    return {
        "schema": SCHEMA_IDS[Kind.MOVEMENT],
        "event_id": event_id or f"{portal_id}-{seq:08d}",
        "site": site_id,
        "portal": portal_id,
        "portal_kind": "dock_door",
        "direction": "in",
        "started_at": at,
        "ended_at": at,
        "seq": seq,
        "tags": [
            {
                "epc": "3036142C8C008F8000053244",
                "uri": "urn:epc:id:sgtin:8719139.000574.340548",
                "reads": 3,
                "first_seen": at,
                "last_seen": at,
                "antennas": [1, 2],
                "peak_rssi_dbm": -52.5,
            }
        ],
        "weight": None,
        "clip": None,
    }
