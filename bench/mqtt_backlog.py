"""A private Mosquitto holding a preloaded backlog of movements, and a bare subscriber.

Each consumer that the ingest benchmarks compare gets its own persistent session
(clean session off, MQTT 3.1.1 section 3.1.2.4), created before the backlog is
published, so the broker queues a copy of every movement for each of them. The
broker runs with `max_queued_messages 0`, which lifts Mosquitto's per-client queue
limit (1,000 by default), so no copy is dropped however long a consumer waits.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.hub_support import PORTAL_ID, SITE_ID
from bench.report import process_cpu_s
from bwms.contract import (
    SCHEMA_IDS,
    Kind,
    format_time_us,
    subscription,
    topic,
    validate,
)
from bwms.epc import decode_epc, encode_sgtin96
from tests.support.brokers import PrivateMosquitto

EVENT_TAGS = 100
GTIN = "08719139005740"
COMPANY_PREFIX_DIGITS = 7
# 2025-03-01T08:00:00Z, the reader time of the first movement.
START_US = 1_740_816_000_000_000
MOVEMENT_TOPIC = topic(SITE_ID, PORTAL_ID, Kind.MOVEMENT)
# Subscriptions of the hub's consumer, so every session contains the same messages.
SUBSCRIPTIONS = [
    (subscription(Kind.MOVEMENT, site=SITE_ID), 1),
    (subscription(Kind.STATUS, site=SITE_ID), 1),
]
CONNECT_TIMEOUT_S = 10.0
# paho's window of unacknowledged QoS 1 publishes while the backlog is loaded.
PUBLISH_INFLIGHT = 1_000


class BrokerBenchError(Exception):
    """The broker could not be reached, or a backlog did not arrive in time."""


@dataclass
class Drain:
    """Timing of one consumer draining the backlog, all times from perf_counter.

    `first_s` is when the first stored (or received) event was seen and
    `first_count` how many were done by then; `finished_s` is when the last was.
    """

    count: int
    started_s: float
    first_s: float
    first_count: int
    finished_s: float
    cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        """Events per second after the first one seen, or from the start if all came at once."""
        if self.first_count < self.count and self.finished_s > self.first_s:
            return (self.count - self.first_count) / (self.finished_s - self.first_s)
        elapsed = self.finished_s - self.started_s
        return self.count / elapsed if elapsed > 0 else 0.0


def movement_backlog(count: int) -> list[bytes]:
    """Build `count` encoded bwms.movement/1 payloads of 100 distinct tags each.

    The first payload is checked against the schema; the others have the same shape.
    """
    template = decode_epc(encode_sgtin96(GTIN, 1, COMPANY_PREFIX_DIGITS))
    uri_prefix = str(template["uri"]).rsplit(".", 1)[0]
    payloads: list[bytes] = []
    for number in range(count):
        start_us = START_US + number * 6_000_000
        started, ended = format_time_us(start_us), format_time_us(start_us + 1_610_000)
        tags = []
        for index in range(EVENT_TAGS):
            serial = number * EVENT_TAGS + index + 1
            tags.append(
                {
                    "epc": encode_sgtin96(GTIN, serial, COMPANY_PREFIX_DIGITS),
                    "uri": f"{uri_prefix}.{serial}",
                    "reads": 10,
                    "first_seen": started,
                    "last_seen": ended,
                    "antennas": [1, 2],
                    "peak_rssi_dbm": -48.0,
                }
            )
        payload: dict[str, Any] = {
            "schema": SCHEMA_IDS[Kind.MOVEMENT],
            "event_id": str(uuid.uuid4()),
            "site": SITE_ID,
            "portal": PORTAL_ID,
            "portal_kind": "dock_door",
            "direction": "in",
            "started_at": started,
            "ended_at": ended,
            "seq": number + 1,
            "tags": tags,
            "weight": None,
            "clip": None,
        }
        if number == 0:
            validate(Kind.MOVEMENT, payload)
        payloads.append(json.dumps(payload, separators=(",", ":")).encode())
    return payloads


class _Client:
    """A paho client run by its own network thread, with waitable connect and SUBACK."""

    def __init__(self, port: int, client_id: str, *, clean_session: bool) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.port = port
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if not reason.is_failure:
            self.connected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _m: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        if not any(code.is_failure for code in codes):
            self.subscribed.set()

    def connect(self) -> None:
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=60)
        except OSError as exc:
            raise BrokerBenchError(
                f"cannot connect to 127.0.0.1:{self.port}: {exc}"
            ) from exc
        self.client.loop_start()
        if not self.connected.wait(CONNECT_TIMEOUT_S):
            self.close()
            raise BrokerBenchError(
                f"broker on 127.0.0.1:{self.port} did not accept the connection "
                f"within {CONNECT_TIMEOUT_S:.0f} s"
            )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BacklogBroker:
    """A Mosquitto of the benchmark's own on loopback, without a per-client queue limit."""

    def __init__(self) -> None:
        self.mosquitto = PrivateMosquitto(max_queued=0)

    @property
    def port(self) -> int:
        return self.mosquitto.port

    @property
    def url(self) -> str:
        return self.mosquitto.url

    def start(self) -> None:
        self.mosquitto.start()

    def close(self) -> None:
        self.mosquitto.close()

    def create_session(self, client_id: str) -> None:
        """Create a persistent session with the hub's subscriptions, then leave it."""
        session = _Client(self.port, client_id, clean_session=False)
        session.connect()
        try:
            session.client.subscribe(SUBSCRIPTIONS)
            if not session.subscribed.wait(CONNECT_TIMEOUT_S):
                raise BrokerBenchError(
                    f"the broker sent no SUBACK within {CONNECT_TIMEOUT_S:.0f} s "
                    f"for session {client_id}"
                )
        finally:
            session.close()

    def publish(self, payloads: list[bytes], timeout_s: float) -> None:
        """Publish every payload at QoS 1 and wait for the broker's PUBACKs."""
        publisher = _Client(
            self.port, f"bench-publisher-{uuid.uuid4().hex[:8]}", clean_session=True
        )
        acked = threading.Semaphore(0)
        publisher.client.on_publish = lambda *_args: acked.release()
        publisher.client.max_inflight_messages_set(PUBLISH_INFLIGHT)
        publisher.client.max_queued_messages_set(0)
        publisher.connect()
        try:
            for payload in payloads:
                publisher.client.publish(MOVEMENT_TOPIC, payload, qos=1)
            deadline = time.monotonic() + timeout_s
            for _ in payloads:
                if not acked.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise BrokerBenchError(
                        f"the broker did not acknowledge {len(payloads)} publishes "
                        f"within {timeout_s:.0f} s"
                    )
        finally:
            publisher.close()


def drain_bare(port: int, client_id: str, expected: int, timeout_s: float) -> Drain:
    """Receive the backlog with a paho subscriber that only counts the messages."""
    subscriber = _Client(port, client_id, clean_session=False)
    count = 0
    first_s = finished_s = 0.0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, _message: mqtt.MQTTMessage) -> None:
        nonlocal count, first_s, finished_s
        count += 1
        if count == 1:
            first_s = time.perf_counter()
        if count == expected:
            finished_s = time.perf_counter()
            done.set()

    subscriber.client.on_message = on_message
    cpu0 = process_cpu_s()
    started_s = time.perf_counter()
    subscriber.connect()
    try:
        if not done.wait(timeout_s):
            raise BrokerBenchError(
                f"bare subscriber received {count} of {expected} messages within "
                f"{timeout_s:.0f} s"
            )
    finally:
        subscriber.close()
    return Drain(expected, started_s, first_s, 1, finished_s, process_cpu_s() - cpu0)
