"""The edge daemon with every real part: LLRP simulator over TCP, sllurp, the
outbox, and Mosquitto, with a confirming subscriber in the hub's place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bwms.epc import encode_sgtin96, gs1_check_digit
from bwms.site import Site, load_site
from drivers.llrp.simulator import ReaderSimulator, SimRead
from edge.daemon import EdgeDaemon, ReaderSettings
from edge.settings import MqttSettings, OutboxSettings
from tests.edge.hubstub import HubStub

PORTAL = "door-1"
INSIDE, OUTSIDE = 1, 2


def write_site(folder: Path, site_id: str) -> Path:
    path = folder / "site.toml"
    path.write_text(
        f"""
[site]
id = "{site_id}"
name = "Daemon test site"

[[portals]]
id = "{PORTAL}"
kind = "dock_door"
reader = {{ id = "{PORTAL}-reader", profile = "generic" }}
antennas = [{{ port = {INSIDE}, side = "inside" }}, {{ port = {OUTSIDE}, side = "outside" }}]
tuning = {{ rssi_floor_dbm = -75.0, idle_gap_s = 0.5, min_reads = 2, staged_dwell_s = 30.0 }}
"""
    )
    return path


def carton(serial: int) -> str:
    body = "0690123400011"
    return encode_sgtin96(body + gs1_check_digit(body), serial, 7)


def crossing(epc: str, end_us: int, *, inward: bool = True) -> list[SimRead]:
    """Reads of one tag crossing the door, ending at `end_us` on the reader clock.

    The reads lie in the past of the reader clock, as a reader reports them.
    """
    first, second = (OUTSIDE, INSIDE) if inward else (INSIDE, OUTSIDE)
    reads = []
    for step in range(16):
        time_us = end_us - 1_600_000 + step * 100_000
        antenna = first if step < 8 else second
        reads.append(SimRead(antenna=antenna, epc=epc, rssi_dbm=-52.0, time_us=time_us))
    return reads


@pytest.fixture
def site(tmp_path: Path, site_id: str) -> Site:
    return load_site(write_site(tmp_path, site_id))


@pytest.fixture
def hub(shared_broker: str, site_id: str) -> Iterator[HubStub]:
    stub = HubStub(shared_broker, site_id).start()
    yield stub
    stub.close()


@pytest.fixture
async def simulator() -> AsyncIterator[ReaderSimulator]:
    sim = ReaderSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def daemon(
    site: Site, simulator: ReaderSimulator, shared_broker: str, tmp_path: Path
) -> AsyncIterator[EdgeDaemon]:
    edge = EdgeDaemon(
        site,
        PORTAL,
        mqtt=MqttSettings(url=shared_broker, ack_timeout_s=1.0),
        outbox=OutboxSettings(path=tmp_path / "outbox.sqlite3"),
        reader=ReaderSettings(
            host=simulator.host,
            port=simulator.port,
            keepalive_interval_s=0.2,
            missed_keepalives=3,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            tick_s=0.1,
        ),
    )
    await edge.start()
    yield edge
    await edge.stop()
    clear_retained(shared_broker, site.site.id)


def clear_retained(url: str, site_id: str) -> None:
    """Remove the retained status this test left on the shared broker."""
    from urllib.parse import urlsplit

    import paho.mqtt.publish as publish

    from bwms.contract import Kind, topic

    parts = urlsplit(url)
    publish.single(
        topic(site_id, PORTAL, Kind.STATUS),
        b"",
        qos=1,
        retain=True,
        hostname=parts.hostname or "127.0.0.1",
        port=parts.port or 1883,
    )


async def wait_for(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())


def reader_state(daemon: EdgeDaemon) -> str | None:
    return daemon.reader.health.state if daemon.reader is not None else None


def pending(daemon: EdgeDaemon) -> int | None:
    return daemon.outbox.status()["pending"] if daemon.outbox is not None else None


async def pass_tag(sim: ReaderSimulator, epc: str) -> None:
    sim.inject(crossing(epc, sim.reader_time_us()))


async def test_daemon_publishes_crossing(
    daemon: EdgeDaemon, simulator: ReaderSimulator, hub: HubStub
) -> None:
    await simulator.wait_for_connections(1)
    await pass_tag(simulator, carton(1))

    assert await hub.wait_unique(1) == 1
    payload = next(iter(hub.unique.values()))
    assert payload["direction"] == "in"
    assert payload["tags"][0]["epc"] == carton(1)
    assert payload["tags"][0]["antennas"] == [INSIDE, OUTSIDE]
    assert await wait_for(lambda: pending(daemon) == 0)


@pytest.mark.parametrize("fault", ["drop", "silence", "malformed"])
async def test_daemon_survives_reader_fault(
    daemon: EdgeDaemon,
    simulator: ReaderSimulator,
    hub: HubStub,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await simulator.wait_for_connections(1)
    await pass_tag(simulator, carton(10))
    assert await hub.wait_unique(1) == 1

    if fault == "drop":
        simulator.drop_connections()
    elif fault == "silence":
        simulator.go_silent()
        assert await wait_for(lambda: reader_state(daemon) == "lost")
        simulator.resume()
    else:
        simulator.send_malformed()
    await asyncio.wait_for(simulator.wait_for_connections(2), 15)
    assert await wait_for(lambda: reader_state(daemon) == "connected")

    await pass_tag(simulator, carton(11))
    assert await hub.wait_unique(2) == 2
    lost = [r for r in caplog.records if r.name.startswith("drivers.llrp") and r.levelno == logging.WARNING]
    assert lost, "the reader loss was not logged"
    assert all(task.done() is False for task in daemon._tasks)


async def test_daemon_counts_undecodable_frame(
    daemon: EdgeDaemon, simulator: ReaderSimulator, hub: HubStub
) -> None:
    await simulator.wait_for_connections(1)
    simulator.send_undecodable()
    assert await wait_for(
        lambda: daemon.reader is not None and daemon.reader.health.malformed_frames >= 1
    )

    await pass_tag(simulator, carton(30))
    assert await hub.wait_unique(1) == 1
    # A well-framed message of an unknown type leaves the stream in step, so the
    # connection is kept.
    assert simulator.connections == 1


def read_retained(url: str, topic_name: str, timeout_s: float = 5.0) -> dict:  # type: ignore[type-arg]
    """Return the retained message on a topic, decoded, or fail."""
    import json
    import threading
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    got: dict[str, bytes] = {}
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(client, userdata, message):  # type: ignore[no-untyped-def]
        got["payload"] = message.payload
        done.set()

    client.on_message = on_message
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe(topic_name, qos=1)
    client.loop_start()
    try:
        assert done.wait(timeout_s), f"no retained message on {topic_name}"
    finally:
        client.disconnect()
        client.loop_stop()
    return json.loads(got["payload"])  # type: ignore[no-any-return]


async def test_daemon_status_names_reader(
    daemon: EdgeDaemon, simulator: ReaderSimulator, shared_broker: str, site_id: str
) -> None:
    from bwms.contract import Kind, topic, validate

    await simulator.wait_for_connections(1)
    assert await wait_for(lambda: reader_state(daemon) == "connected")
    await asyncio.sleep(0.3)
    status = await asyncio.to_thread(read_retained, shared_broker, topic(site_id, PORTAL, Kind.STATUS))

    validate(Kind.STATUS, status)
    assert status["state"] == "online"
    assert status["devices"][f"{PORTAL}-reader"]["kind"] == "reader"
    assert status["devices"][f"{PORTAL}-reader"]["state"] == "connected"
    assert status["outbox"]["pending"] == 0
