"""ReaderClient (sllurp) against the reader simulator over TCP, with fault modes."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest

from drivers.llrp.client import STATE_CONNECTED, STATE_LOST, ReaderClient
from drivers.llrp.profile import ReaderProfileError, load_profile
from drivers.llrp.simulator import ReaderSimulator, SimRead
from tests.drivers.llrp.conftest import FAST_TIMERS, RunningClient, wait_until

StartSimulator = Callable[..., Awaitable[ReaderSimulator]]
StartClient = Callable[..., Awaitable[RunningClient]]

CLIENT_LOGGER = "drivers.llrp.client"
READ_TIME_US = 1_790_000_000_123_456


def client_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == CLIENT_LOGGER and record.levelno == level
    ]


async def connected_pair(
    start_simulator: StartSimulator, start_client: StartClient, **sim_options: object
) -> tuple[ReaderSimulator, RunningClient]:
    simulator = await start_simulator(**sim_options)
    profile = "impinj-r700" if sim_options.get("impinj") else "generic"
    running = await start_client(simulator.port, profile)
    await running.wait_state(STATE_CONNECTED)
    return simulator, running


async def test_reads_carry_reader_fields(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    simulator.inject(
        [SimRead(2, "3036142C8C008F8000053244", -48.4, 90.0, READ_TIME_US, 4, 9)]
    )
    await running.wait_reads(1)
    (read,) = running.reads
    assert read.reader_id == "reader-1"
    assert read.epc == "3036142C8C008F8000053244"
    assert read.antenna == 2
    assert read.first_seen_us == READ_TIME_US
    assert read.last_seen_us == READ_TIME_US
    # Standard LLRP PeakRSSI is whole dBm.
    assert read.rssi_dbm == -48.0
    assert read.seen_count == 4
    assert read.channel == 9
    assert read.phase_deg is None


async def test_impinj_reads_carry_phase(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(
        start_simulator, start_client, impinj=True
    )
    simulator.inject(
        [SimRead(1, "3036142C8C008F8000053244", -48.37, 180.0, READ_TIME_US)]
    )
    await running.wait_reads(1)
    (read,) = running.reads
    assert read.rssi_dbm == pytest.approx(-48.37)
    assert read.phase_deg == pytest.approx(180.0)
    assert read.first_seen_us == READ_TIME_US


async def test_long_epc_and_batches(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(
        start_simulator, start_client, report_batch_max=3
    )
    epcs = [f"E280117000000208{n:016X}" for n in range(7)]
    simulator.inject(SimRead(1, epc, -60.0) for epc in epcs)
    await running.wait_reads(7)
    assert [read.epc for read in running.reads] == epcs
    assert simulator.reports_sent == 3
    assert running.client.health.reports == 3


async def test_drop_logs_loss_once(
    start_simulator: StartSimulator,
    start_client: StartClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    simulator, running = await connected_pair(start_simulator, start_client)
    simulator.drop_connections()
    await wait_until(lambda: simulator.connections == 2, "a second connection")
    await running.wait_state(STATE_CONNECTED)
    simulator.inject([SimRead(1, "3036142C8C008F8000053244", -50.0)])
    await running.wait_reads(1)
    warnings = client_records(caplog, logging.WARNING)
    recoveries = [
        m for m in client_records(caplog, logging.INFO) if "connected again" in m
    ]
    assert len(warnings) == 1
    assert "lost" in warnings[0]
    assert "reader-1" in warnings[0]
    assert len(recoveries) == 1
    assert running.client.health.reconnects == 1
    assert [h.state for h in running.healths] == [
        "connecting",
        "connected",
        "lost",
        "connected",
    ]


async def test_reads_during_outage_delivered(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    simulator.drop_connections()
    # The reader keeps these in its report buffer until a client runs a ROSpec again.
    simulator.inject(
        [SimRead(1, "3036142C8C008F8000053244", -50.0, time_us=READ_TIME_US)]
    )
    await running.wait_reads(1)
    assert running.reads[0].first_seen_us == READ_TIME_US


async def test_silence_trips_watchdog(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator()
    # A short set-up timeout, because attempts made while silent get no greeting.
    running = await start_client(simulator.port, connect_timeout_s=0.5)
    await running.wait_state(STATE_CONNECTED)
    simulator.go_silent()
    window_s = FAST_TIMERS["keepalive_interval_s"] * FAST_TIMERS["missed_keepalives"]
    # The watchdog checks every quarter interval; one more second covers a slow host.
    await running.wait_published(STATE_LOST, timeout_s=window_s + 1.0)
    detail = running.first_published(STATE_LOST).detail
    assert detail is not None
    assert "no message from the reader" in detail
    simulator.resume()
    await running.wait_state(STATE_CONNECTED)
    simulator.inject([SimRead(2, "3036142C8C008F8000053244", -50.0)])
    await running.wait_reads(1)
    assert running.reads[0].antenna == 2


async def test_malformed_frame_reconnects(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    simulator.send_malformed()
    await wait_until(lambda: simulator.connections == 2, "a second connection")
    await running.wait_state(STATE_CONNECTED)
    assert running.client.health.malformed_frames == 1
    assert any("malformed frame" in (h.detail or "") for h in running.healths)
    simulator.inject([SimRead(1, "3036142C8C008F8000053244", -50.0)])
    await running.wait_reads(1)
    assert running.reads[0].epc == "3036142C8C008F8000053244"


async def test_stalled_frame_trips_watchdog(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    # Keepalives keep coming, but they vanish into the body of the stalled frame.
    simulator.send_partial_frame()
    await running.wait_published(STATE_LOST)
    detail = running.first_published(STATE_LOST).detail
    assert detail is not None
    assert "no message from the reader" in detail
    await running.wait_state(STATE_CONNECTED)
    simulator.inject([SimRead(1, "3036142C8C008F8000053244", -50.0)])
    await running.wait_reads(1)


async def test_reader_without_keepalives_lost(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator(keepalive_honour=False)
    running = await start_client(simulator.port)
    await running.wait_state(STATE_CONNECTED)
    # With no keepalives and no tags, the reader looks the same as a dead one.
    await running.wait_published(STATE_LOST)
    assert simulator.keepalives_sent == 0
    # The connection delivered no message after set-up, so the reconnect waits for
    # the backoff (0.05 s here) instead of starting at once.
    await wait_until(lambda: len(running.healths) >= 4, "a reconnect after the loss")
    lost, connected = running.healths[2], running.healths[3]
    assert lost.state == STATE_LOST
    assert connected.state == STATE_CONNECTED
    assert connected.since - lost.since >= 0.045


async def test_undecodable_frame_skipped(
    start_simulator: StartSimulator,
    start_client: StartClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    simulator.send_undecodable()
    simulator.inject([SimRead(1, "3036142C8C008F8000053244", -50.0)])
    await running.wait_reads(1)
    assert running.client.health.malformed_frames == 1
    assert simulator.connections == 1
    assert any("skipped a frame" in m for m in client_records(caplog, logging.WARNING))


async def test_first_connect_retries(start_client: StartClient) -> None:
    # Take a free port, close it, and start the reader there only after some failures.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = await start_client(port)
    await running.wait_state(STATE_LOST)
    await wait_until(lambda: running.client.health.reconnects >= 2, "two retries")
    detail = running.client.health.detail
    assert detail is not None
    assert "cannot connect" in detail
    simulator = ReaderSimulator(port=port)
    await simulator.start()
    try:
        await running.wait_state(STATE_CONNECTED)
        simulator.inject([SimRead(1, "3036142C8C008F8000053244", -50.0)])
        await running.wait_reads(1)
    finally:
        await simulator.stop()


async def test_uptime_reads_rejected(
    start_simulator: StartSimulator,
    start_client: StartClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator, running = await connected_pair(
        start_simulator, start_client, uptime_timestamps=True
    )
    simulator.inject(SimRead(1, "3036142C8C008F8000053244", -50.0) for _ in range(3))
    await wait_until(
        lambda: running.client.health.rejected_reads == 3, "3 rejected reads"
    )
    assert running.reads == []
    rejections = [m for m in client_records(caplog, logging.WARNING) if "rejected" in m]
    # Repeats within a minute are counted, not logged.
    assert len(rejections) == 1
    assert "no_utc_timestamp" in rejections[0]


async def test_pc_word_stripped_end_to_end(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(
        start_simulator, start_client, pc_word_in_epc=True
    )
    simulator.inject([SimRead(1, "E2009A9040060AF000000372", -50.0)])
    await running.wait_reads(1)
    assert running.reads[0].epc == "E2009A9040060AF000000372"


async def test_clock_skew_warned_once(
    start_simulator: StartSimulator,
    start_client: StartClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator, running = await connected_pair(
        start_simulator, start_client, clock_offset_ms=5000.0
    )
    simulator.inject(SimRead(1, "3036142C8C008F8000053244", -50.0) for _ in range(3))
    await running.wait_reads(3)
    health = running.client.health
    assert health.clock_skew_warning
    assert health.clock_offset_ms is not None
    # The estimate trails the true offset by the delivery delay, milliseconds here.
    assert 4500.0 < health.clock_offset_ms <= 5000.0
    offset_us = running.client.clock_offset_us()
    assert offset_us is not None
    skew_warnings = [m for m in client_records(caplog, logging.WARNING) if "clock" in m]
    assert len(skew_warnings) == 1


async def test_impinj_profile_on_plain_reader(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator(impinj=False)
    running = await start_client(simulator.port, "impinj-r700")
    await running.wait_state(STATE_LOST)
    detail = running.client.health.detail
    assert detail is not None
    assert "set-up" in detail


async def test_antenna_filter_by_rospec(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator()
    running = await start_client(simulator.port, "generic", antennas=[1])
    await running.wait_state(STATE_CONNECTED)
    simulator.inject(
        [
            SimRead(2, "3036142C8C008F8000053244", -50.0),
            SimRead(1, "3036142C8C008F8000053245", -50.0),
        ]
    )
    await running.wait_reads(1)
    assert [read.antenna for read in running.reads] == [1]
    assert simulator.reads_filtered == 1


async def test_stop_closes_connection(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    await running.client.stop()
    await asyncio.wait_for(running.task, timeout=5.0)
    await wait_until(lambda: simulator.clients_connected == 0, "the client to leave")
    assert running.task.exception() is None


async def test_cancel_closes_connection(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator, running = await connected_pair(start_simulator, start_client)
    running.task.cancel()
    await asyncio.gather(running.task, return_exceptions=True)
    await wait_until(lambda: simulator.clients_connected == 0, "the client to leave")
    assert running.task.cancelled()


def test_unknown_antenna_rejected_at_start() -> None:
    with pytest.raises(ReaderProfileError):
        ReaderClient(
            "reader-1",
            "127.0.0.1",
            5084,
            load_profile("generic"),
            on_reads=lambda reads: None,
            antennas=[1, 7],
        )


def test_bad_timer_rejected() -> None:
    with pytest.raises(ValueError, match="missed_keepalives"):
        ReaderClient(
            "reader-1",
            "127.0.0.1",
            5084,
            load_profile("generic"),
            on_reads=lambda reads: None,
            missed_keepalives=0,
        )
