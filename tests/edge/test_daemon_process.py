"""`bwms edge run` as a process: killed with SIGKILL mid-stream, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.llrp.simulator import ReaderSimulator
from tests.edge.hubstub import HubStub
from tests.edge.test_daemon import PORTAL, carton, crossing, wait_for, write_site

pytestmark = pytest.mark.slow


def start_daemon(site_file: Path, outbox: Path, broker: str, reader_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BWMS_MQTT_ACK_TIMEOUT_S": "0.5",
        "BWMS_MQTT_RESEND_BACKOFF_MAX_S": "1",
        "BWMS_READER_KEEPALIVE_INTERVAL_S": "0.5",
        "BWMS_READER_BACKOFF_INITIAL_S": "0.1",
        "BWMS_READER_BACKOFF_MAX_S": "0.5",
        "BWMS_READER_TICK_S": "0.1",
    }
    bwms = Path(sys.executable).with_name("bwms")
    return subprocess.Popen(
        [
            str(bwms), "edge", "run", "--config", str(site_file), "--portal", PORTAL,
            "--mqtt-url", broker, "--outbox", str(outbox),
            "--reader-host", "127.0.0.1", "--reader-port", str(reader_port),
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stored_event_ids(outbox: Path) -> set[str]:
    with sqlite3.connect(outbox) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM pending")}


@pytest.fixture
async def simulator() -> AsyncIterator[ReaderSimulator]:
    sim = ReaderSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def hub(shared_broker: str, site_id: str) -> Iterator[HubStub]:
    stub = HubStub(shared_broker, site_id, auto_ack=False).start()
    yield stub
    stub.close()


async def test_sigkill_loses_nothing(
    tmp_path: Path, site_id: str, shared_broker: str, simulator: ReaderSimulator, hub: HubStub
) -> None:
    site_file = write_site(tmp_path, site_id)
    outbox = tmp_path / "outbox.sqlite3"
    log = tmp_path / "daemon.log"
    process = start_daemon(site_file, outbox, shared_broker, simulator.port, log)
    try:
        await asyncio.wait_for(simulator.wait_for_connections(1), 20)
        # The hub confirms nothing yet, so every movement stays in the outbox.
        for serial in range(1, 6):
            simulator.inject(crossing(carton(serial), simulator.reader_time_us()))
            assert await wait_for(lambda: len(hub.unique) >= serial, 10), log.read_text()
        simulator.inject(crossing(carton(6), simulator.reader_time_us()))
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()

    before_restart = stored_event_ids(outbox)
    assert len(before_restart) >= 5

    hub.auto_ack = True
    process = start_daemon(site_file, outbox, shared_broker, simulator.port, log)
    try:
        await asyncio.wait_for(simulator.wait_for_connections(2), 20)
        simulator.inject(crossing(carton(7), simulator.reader_time_us()))
        assert await wait_for(lambda: len(hub.unique) >= len(before_restart) + 1, 15)
        assert await wait_for(lambda: not stored_event_ids(outbox), 15), log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

    assert before_restart <= set(hub.unique)
    epcs = [tag["epc"] for payload in hub.unique.values() for tag in payload["tags"]]
    assert len(epcs) == len(set(epcs))
    for serial in (1, 2, 3, 4, 5, 7):
        assert carton(serial) in epcs
    seqs = sorted(payload["seq"] for payload in hub.unique.values())
    assert seqs == list(range(1, len(seqs) + 1))
    assert process.returncode == 0
