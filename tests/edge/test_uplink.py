"""The MQTT uplink against real Mosquitto brokers and a confirming subscriber.

Brokers that a test stops, restarts or cuts are private. Tests on the shared
broker use a unique site id and clear the retained status they leave behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from bwms.contract import Kind, decode, encode, topic
from edge.outbox import Outbox
from edge.settings import MqttSettings
from edge.uplink import ResendSchedule, Uplink
from tests.edge.hubstub import HubStub, sample_movement
from tests.support.brokers import PrivateMosquitto, free_port
from tests.support.tcpproxy import TcpProxy

PORTAL = "door-3"


def fast_settings(url: str, **overrides: Any) -> MqttSettings:
    """Settings with short timers, so a test takes seconds."""
    values: dict[str, Any] = {
        "url": url,
        "keepalive_s": 5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "ack_timeout_s": 0.5,
        "resend_backoff_max_s": 1.0,
        "status_interval_s": 30.0,
    }
    values.update(overrides)
    return MqttSettings(**values)


async def eventually(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout_s: float = 10.0,
) -> bool:
    """Poll `condition` until it is true or time is up, and return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(uplink.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def fill(outbox: Outbox, site_id: str, count: int) -> list[str]:
    """Add `count` valid movements; return their event ids."""
    ids = []
    for _ in range(count):
        payload = await outbox.add(lambda seq: sample_movement(site_id, PORTAL, seq))
        assert payload is not None
        ids.append(payload["event_id"])
    return ids


def make_uplink(settings: MqttSettings, site_id: str, outbox: Outbox) -> Uplink:
    return Uplink(
        settings,
        site_id=site_id,
        portal_id=PORTAL,
        outbox=outbox,
        status=lambda: {},
        client_id=f"edge-{site_id}",
    )


class Watcher:
    """A plain subscriber that collects (payload, retain flag) of one topic."""

    def __init__(self, url: str, topic_name: str) -> None:
        parts = urlsplit(url)
        self.messages: queue.Queue[tuple[bytes | bytearray, bool]] = queue.Queue()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.messages.put(
            (m.payload, m.retain)
        )
        self._client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self._client.subscribe(topic_name, qos=1)
        self._client.loop_start()

    async def next_state(self, timeout_s: float = 5.0) -> tuple[str, bool]:
        raw, retained = await asyncio.to_thread(self.messages.get, True, timeout_s)
        return decode(Kind.STATUS, bytes(raw))["state"], retained

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def clear_retained(url: str, topic_name: str) -> None:
    """Remove a retained message, so tests leave the shared broker as they found it."""
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    client.publish(topic_name, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
async def outbox(tmp_path: Path, site_id: str) -> AsyncIterator[Outbox]:
    # NORMAL keeps the bulk tests quick; durability has its own tests.
    box = await Outbox.open(
        tmp_path / "outbox.sqlite3",
        quota=10_000,
        site_id=site_id,
        portal_id=PORTAL,
        synchronous="NORMAL",
    )
    yield box
    await box.close()


@pytest.fixture
def stubs() -> Iterator[list[HubStub]]:
    """Hub stubs to close after the test, whatever happened."""
    started: list[HubStub] = []
    yield started
    for stub in started:
        stub.close()


@pytest.fixture
def shared_status(shared_broker: str, site_id: str) -> Iterator[str]:
    """The test portal's status topic on the shared broker, cleared afterwards."""
    status_topic = topic(site_id, PORTAL, Kind.STATUS)
    yield status_topic
    clear_retained(shared_broker, status_topic)


# Resend schedule: plain arithmetic on given times.


def test_schedule_backoff_grows_to_cap() -> None:
    schedule = ResendSchedule(ack_timeout_s=1.0, factor=2.0, max_s=5.0)

    delays = [schedule.delay_s(n) for n in range(1, 6)]

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_schedule_due_after_delay() -> None:
    schedule = ResendSchedule(ack_timeout_s=1.0, factor=2.0, max_s=5.0)
    schedule.sent("a", attempts=2, now=100.0)

    assert not schedule.is_due("a", 101.9)
    assert schedule.is_due("a", 102.0)


def test_schedule_unknown_is_due() -> None:
    schedule = ResendSchedule(ack_timeout_s=1.0, factor=2.0, max_s=5.0)

    assert schedule.is_due("never-sent", 0.0)


def test_schedule_reset_makes_due() -> None:
    schedule = ResendSchedule(ack_timeout_s=10.0, factor=2.0, max_s=60.0)
    schedule.sent("a", attempts=1, now=0.0)

    schedule.reset()

    assert schedule.is_due("a", 0.0)


def test_schedule_next_due_excludes() -> None:
    schedule = ResendSchedule(ack_timeout_s=1.0, factor=2.0, max_s=5.0)
    schedule.sent("a", attempts=1, now=0.0)
    schedule.sent("b", attempts=3, now=0.0)

    assert schedule.next_due(exclude={"a"}) == 4.0


def test_schedule_huge_attempts_capped() -> None:
    schedule = ResendSchedule(ack_timeout_s=1.0, factor=10.0, max_s=300.0)

    assert schedule.delay_s(10_000) == 300.0


# Settings


def test_settings_reject_unknown_key() -> None:
    with pytest.raises(ValueError, match="extra"):
        MqttSettings(urll="mqtt://127.0.0.1:1883")  # type: ignore[call-arg]


def test_settings_reject_http_url() -> None:
    with pytest.raises(ValueError, match="mqtt:// or mqtts://"):
        MqttSettings(url="http://127.0.0.1:1883")


def test_settings_default_tls_port() -> None:
    settings = MqttSettings(url="mqtts://127.0.0.1")

    assert settings.port == 8883


def test_settings_tls_files_need_mqtts() -> None:
    with pytest.raises(ValueError, match="not mqtts"):
        MqttSettings(url="mqtt://127.0.0.1", tls_ca_file=Path("ca.pem"))


# Delivery


async def test_outbox_outlives_paho_queue(
    outbox: Outbox,
    site_id: str,
    private_broker: Callable[..., PrivateMosquitto],
    stubs: list[HubStub],
) -> None:
    # The fault: paho's own offline queue keeps five and drops the rest, so a
    # hub that comes later receives at most five of ten events.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-queue-{site_id}")
    client.max_queued_messages_set(5)
    client.connect_async("127.0.0.1", free_port())
    codes = [
        client.publish(f"bwms/v1/{site_id}/x/movement", b"{}", qos=1).rc
        for _ in range(10)
    ]
    assert codes[:5] == [MQTTErrorCode.MQTT_ERR_NO_CONN] * 5
    assert codes[5:] == [MQTTErrorCode.MQTT_ERR_QUEUE_SIZE] * 5

    # The remedy: the same ten events spooled in the outbox, broker down at first.
    broker = private_broker()
    broker.stop()
    expected = await fill(outbox, site_id, 10)
    uplink = make_uplink(fast_settings(broker.url), site_id, outbox)
    async with running(uplink):
        assert await eventually(lambda: uplink.counters["connect_failures"] >= 2)
        assert not uplink.connected

        broker.start()
        stub = HubStub(broker.url, site_id).start()
        stubs.append(stub)
        arrived = await stub.wait_unique(10)
        assert await eventually(lambda: outbox.status()["pending"] == 0)

    assert arrived == 10
    assert stub.event_ids() == set(expected)


async def test_lost_pubacks_deduplicated(
    outbox: Outbox,
    site_id: str,
    private_broker: Callable[..., PrivateMosquitto],
    stubs: list[HubStub],
) -> None:
    broker = private_broker(persistence=True)
    stub = HubStub(broker.url, site_id).start()
    stubs.append(stub)
    with TcpProxy(broker.port) as proxy:
        # A long ack timeout: every resend in this test comes from the reconnect.
        settings = fast_settings(proxy.url, inflight_window=20, ack_timeout_s=30.0)
        uplink = make_uplink(settings, site_id, outbox)
        async with running(uplink):
            assert await eventually(lambda: uplink.connected)

            # The broker's PUBACKs (and the hub's acks) no longer reach the edge.
            proxy.drop_to_client = True
            expected = await fill(outbox, site_id, 25)
            uplink.notify()
            assert await eventually(lambda: stub.count() >= 20)
            await asyncio.sleep(0.2)
            held_back = stub.count()

            proxy.cut()
            proxy.drop_to_client = False
            assert await eventually(lambda: outbox.status()["pending"] == 0)

    # The window held 5 back; the 20 in flight arrived twice: 45 deliveries.
    assert held_back == 20
    assert stub.count() == 45
    assert stub.event_ids() == set(expected)
    # The broker delivers every resend as a new message, so the dup flag cannot
    # tell a duplicate apart; only the event_id can.
    assert not any(delivery.dup for delivery in stub.deliveries)


async def test_broker_restart_keeps_order(
    outbox: Outbox,
    site_id: str,
    private_broker: Callable[..., PrivateMosquitto],
    stubs: list[HubStub],
) -> None:
    broker = private_broker(persistence=True)
    stub = HubStub(broker.url, site_id).start()
    stubs.append(stub)
    uplink = make_uplink(fast_settings(broker.url), site_id, outbox)
    expected: list[str] = []

    async def stream(count: int) -> None:
        for _ in range(count):
            expected.extend(await fill(outbox, site_id, 1))
            uplink.notify()
            await asyncio.sleep(0.002)

    async with running(uplink):
        assert await eventually(lambda: uplink.connected)
        producer = asyncio.create_task(stream(300))
        assert await eventually(lambda: stub.count() >= 40)

        broker.stop()
        await asyncio.sleep(0.3)
        broker.start()
        await producer
        arrived = await stub.wait_unique(300, timeout_s=15)
        assert await eventually(lambda: outbox.status()["pending"] == 0)

    assert arrived == 300
    assert stub.event_ids() == set(expected)
    assert stub.first_seqs(PORTAL) == list(range(1, 301))


async def test_absent_hub_gets_all_1200(
    outbox: Outbox,
    site_id: str,
    private_broker: Callable[..., PrivateMosquitto],
    stubs: list[HubStub],
) -> None:
    # Default Mosquitto queue limit: 1000 messages per offline client.
    broker = private_broker()
    stub = HubStub(broker.url, site_id).start()
    stubs.append(stub)
    stub.stop()
    expected = await fill(outbox, site_id, 1200)
    settings = fast_settings(broker.url, ack_timeout_s=0.3, resend_backoff_max_s=0.6)
    uplink = make_uplink(settings, site_id, outbox)

    async with running(uplink):
        # Let the uplink publish its window and resend it while the hub is away.
        assert await eventually(lambda: uplink.counters["resent"] >= 400)
        stub.start()
        arrived = await stub.wait_unique(1200, timeout_s=30)
        assert await eventually(lambda: outbox.status()["pending"] == 0)

    assert arrived == 1200
    assert stub.event_ids() == set(expected)
    assert uplink.counters["inflight_peak"] <= 200


async def test_invalid_movement_kept_off_wire(
    outbox: Outbox,
    site_id: str,
    shared_broker: str,
    shared_status: str,
    stubs: list[HubStub],
) -> None:
    stub = HubStub(shared_broker, site_id).start()
    stubs.append(stub)

    def broken(seq: int) -> dict[str, Any]:
        payload = sample_movement(site_id, PORTAL, seq)
        payload["tags"] = []
        return payload

    await outbox.add(broken)
    valid = await fill(outbox, site_id, 1)
    uplink = make_uplink(fast_settings(shared_broker), site_id, outbox)
    async with running(uplink):
        await stub.wait_unique(1)
        assert await eventually(lambda: outbox.status()["pending"] == 0)

    assert uplink.counters["invalid_movements"] == 1
    assert outbox.counters["rejected"] == 1
    assert stub.event_ids() == set(valid)


async def test_hub_rejection_removes_movement(
    outbox: Outbox,
    site_id: str,
    shared_broker: str,
    shared_status: str,
    stubs: list[HubStub],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = HubStub(shared_broker, site_id, reject=lambda p: "unknown portal").start()
    stubs.append(stub)
    ids = await fill(outbox, site_id, 2)
    uplink = make_uplink(fast_settings(shared_broker), site_id, outbox)
    caplog.set_level(logging.WARNING, logger="edge.uplink")
    async with running(uplink):
        assert await eventually(lambda: outbox.status()["pending"] == 0)

    assert uplink.counters["acks_rejected"] == 2
    assert outbox.counters["rejected"] == 2
    assert f"hub rejected movement {ids[0]}: unknown portal" in caplog.text


async def test_garbage_acks_ignored(
    outbox: Outbox,
    site_id: str,
    shared_broker: str,
    shared_status: str,
    stubs: list[HubStub],
) -> None:
    uplink = make_uplink(fast_settings(shared_broker), site_id, outbox)
    ack_topic = topic(site_id, PORTAL, Kind.ACK)
    foreign = {
        "schema": "bwms.ack/1",
        "site": site_id,
        "portal": "gate-9",
        "acks": [{"event_id": "door-3-00000001", "status": "stored", "reason": None}],
    }
    unknown = {
        "schema": "bwms.ack/1",
        "site": site_id,
        "portal": PORTAL,
        "acks": [{"event_id": "never-sent-1", "status": "stored", "reason": None}],
    }
    garbage = [
        b"not json",
        b'{"schema": "bwms.ack/1"}',
        encode(foreign),
        encode(unknown),
    ]

    async with running(uplink) as task:
        assert await eventually(lambda: uplink.connected)
        await asyncio.sleep(0.1)  # the ack subscription follows the connect
        parts = urlsplit(shared_broker)
        sender = mqtt.Client(CallbackAPIVersion.VERSION2)
        sender.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        sender.loop_start()
        for raw in garbage:
            sender.publish(ack_topic, raw, qos=1).wait_for_publish(5)
        sender.disconnect()
        sender.loop_stop()
        assert await eventually(lambda: uplink.counters["acks_unknown"] == 1)

        # Later acks still work.
        stub = HubStub(shared_broker, site_id).start()
        stubs.append(stub)
        await fill(outbox, site_id, 1)
        uplink.notify()
        confirmed = await eventually(lambda: outbox.status()["pending"] == 0)
        alive = not task.done()

    assert uplink.counters["ack_bad_payloads"] == 2
    assert uplink.counters["ack_foreign"] == 1
    assert confirmed
    assert alive


# Status and last will


async def test_status_retained_online(
    outbox: Outbox, site_id: str, shared_broker: str, shared_status: str
) -> None:
    uplink = make_uplink(fast_settings(shared_broker), site_id, outbox)
    async with running(uplink):
        assert await eventually(lambda: uplink.counters["status_published"] >= 1)
        watcher = Watcher(shared_broker, shared_status)
        try:
            state, retained = await watcher.next_state()
        finally:
            watcher.close()

    assert state == "online"
    assert retained


async def test_status_critical_when_outbox_full(
    tmp_path: Path, site_id: str, shared_broker: str, shared_status: str
) -> None:
    box = await Outbox.open(
        tmp_path / "o.sqlite3", quota=2, site_id=site_id, portal_id=PORTAL
    )
    uplink = make_uplink(fast_settings(shared_broker), site_id, box)
    watcher = Watcher(shared_broker, shared_status)
    try:
        async with running(uplink):
            assert (await watcher.next_state())[0] == "online"
            await fill(box, site_id, 2)  # no hub confirms them
            uplink.notify()
            state, _ = await watcher.next_state()
    finally:
        watcher.close()
        await box.close()

    assert state == "critical"


async def test_last_will_sets_offline(
    outbox: Outbox, site_id: str, shared_broker: str, shared_status: str
) -> None:
    port = urlsplit(shared_broker).port or 1883
    watcher = Watcher(shared_broker, shared_status)
    try:
        with TcpProxy(port) as proxy:
            uplink = make_uplink(fast_settings(proxy.url), site_id, outbox)
            async with running(uplink):
                assert (await watcher.next_state())[0] == "online"
                # The edge vanishes without DISCONNECT and cannot come back.
                proxy.reject_connections = True
                proxy.cut()
                live_state, _ = await watcher.next_state()
    finally:
        watcher.close()

    late = Watcher(shared_broker, shared_status)
    try:
        retained_state, retained = await late.next_state()
    finally:
        late.close()

    assert live_state == "offline"
    assert retained_state == "offline"
    assert retained


async def test_shutdown_publishes_offline(
    outbox: Outbox, site_id: str, shared_broker: str, shared_status: str
) -> None:
    uplink = make_uplink(fast_settings(shared_broker), site_id, outbox)
    async with running(uplink):
        assert await eventually(lambda: uplink.counters["status_published"] >= 1)

    late = Watcher(shared_broker, shared_status)
    try:
        state, _ = await late.next_state()
    finally:
        late.close()

    assert state == "offline"


# Connection handling


async def test_outage_logged_once(
    outbox: Outbox,
    site_id: str,
    private_broker: Callable[..., PrivateMosquitto],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = private_broker()
    uplink = make_uplink(fast_settings(broker.url), site_id, outbox)
    caplog.set_level(logging.INFO, logger="edge.uplink")
    async with running(uplink):
        assert await eventually(lambda: uplink.connected)
        broker.stop()
        assert await eventually(lambda: uplink.counters["connect_failures"] >= 3)
        broker.start()
        assert await eventually(lambda: uplink.connected)

    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "lost" in m]) == 1
    assert len([m for m in messages if "restored" in m]) == 1


async def test_notice_dropped_while_offline(outbox: Outbox, site_id: str) -> None:
    uplink = make_uplink(fast_settings("mqtt://127.0.0.1:1"), site_id, outbox)

    uplink.publish_now(topic(site_id, PORTAL, Kind.CROSSING), b"{}")

    assert uplink.counters["notices_dropped"] == 1
