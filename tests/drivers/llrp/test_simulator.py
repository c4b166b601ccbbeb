"""Reader simulator: replay timing, report buffering, and handling of bad clients."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sllurp.llrp import LLRPMessage

from drivers.llrp.client import STATE_CONNECTED
from drivers.llrp.messages import (
    HEADER_BYTES,
    MessageType,
    encode_message,
    parse_header,
)
from drivers.llrp.reads import ReadRow, read_reads_file
from drivers.llrp.simulator import ReaderSimulator
from tests.drivers.llrp.conftest import RunningClient, wait_until

StartSimulator = Callable[..., Awaitable[ReaderSimulator]]
StartClient = Callable[..., Awaitable[RunningClient]]

EPC_A = "3036142C8C008F8000053244"
EPC_B = "31D519601218711A07000000"


def rows(*times: float) -> list[ReadRow]:
    return [
        ReadRow(
            line=n + 2,
            time_s=t,
            antenna=1 + n % 2,
            epc=EPC_A if n % 2 else EPC_B,
            rssi_dbm=-50.0 - n,
            phase_deg=None,
        )
        for n, t in enumerate(times)
    ]


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(HEADER_BYTES)
    header = parse_header(head)
    body = await reader.readexactly(header.length - HEADER_BYTES)
    return header.message_type, head + body


async def test_relative_rows_follow_host_clock(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator(rows=rows(0.0, 1.0, 2.0), speed=10.0)
    running = await start_client(simulator.port)
    await asyncio.wait_for(simulator.wait_replayed(), timeout=5.0)
    await running.wait_reads(3)
    times = [read.first_seen_us for read in running.reads]
    # At speed 10, rows one second apart leave 100 ms apart, stamped the same way.
    assert times[1] - times[0] == 100_000
    assert times[2] - times[0] == 200_000
    assert [read.antenna for read in running.reads] == [1, 2, 1]


async def test_absolute_rows_keep_file_time(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    base = 1_700_000_000.0
    simulator = await start_simulator(rows=rows(base, base + 0.5), speed=5.0)
    running = await start_client(simulator.port)
    await asyncio.wait_for(simulator.wait_replayed(), timeout=5.0)
    await running.wait_reads(2)
    assert [read.first_seen_us for read in running.reads] == [
        1_700_000_000_000_000,
        1_700_000_000_500_000,
    ]


async def test_loop_shifts_each_pass(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    base = 1_700_000_000.0
    simulator = await start_simulator(
        rows=rows(base, base + 0.5), speed=20.0, loop_rows=True
    )
    running = await start_client(simulator.port)
    await running.wait_reads(6)
    times = [read.first_seen_us for read in running.reads[:6]]
    # Span 0.5 s plus the smallest gap 0.5 s: each pass starts 1 s after the last.
    assert times == [
        1_700_000_000_000_000,
        1_700_000_000_500_000,
        1_700_000_001_000_000,
        1_700_000_001_500_000,
        1_700_000_002_000_000,
        1_700_000_002_500_000,
    ]


async def test_loop_replay_never_finishes() -> None:
    simulator = ReaderSimulator(rows(0.0), loop_rows=True)
    with pytest.raises(RuntimeError):
        await simulator.wait_replayed()


def test_mixed_times_raise() -> None:
    with pytest.raises(ValueError, match="mixes relative and absolute"):
        ReaderSimulator(rows(0.5, 1_700_000_000.0))


async def test_replay_waits_for_rospec(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(rows=rows(0.0))
    await asyncio.sleep(0.1)
    assert simulator.reads_sent == 0
    assert not simulator._replayed.is_set()


async def test_reads_file_replayed(
    tmp_path: Path, start_simulator: StartSimulator, start_client: StartClient
) -> None:
    path = tmp_path / "reads.csv"
    path.write_text(
        "time_s,antenna,epc,rssi_dbm,phase_deg\n"
        f"0.0,2,{EPC_A},-48,10.5\n"
        f"0.1,1,{EPC_A},-50,\n",
        encoding="utf-8",
    )
    simulator = await start_simulator(rows=list(read_reads_file(path)), impinj=True)
    running = await start_client(simulator.port, "impinj-r700")
    await running.wait_reads(2)
    assert [read.antenna for read in running.reads] == [2, 1]
    assert running.reads[0].phase_deg == pytest.approx(10.5, abs=0.1)
    assert running.reads[1].phase_deg is None


async def test_second_client_rejected(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator()
    running = await start_client(simulator.port)
    await running.wait_state(STATE_CONNECTED)
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    try:
        message_type, frame = await asyncio.wait_for(read_message(reader), timeout=5.0)
        event = LLRPMessage(msgbytes=frame).msgdict["READER_EVENT_NOTIFICATION"]
        status = event["ReaderEventNotificationData"]["ConnectionAttemptEvent"][
            "Status"
        ]
        assert message_type == MessageType.READER_EVENT_NOTIFICATION
        assert status.startswith("Failed (a Client initiated connection")
        assert await asyncio.wait_for(reader.read(), timeout=5.0) == b""
    finally:
        writer.close()
    assert simulator.rejected_connections == 1
    assert running.state == STATE_CONNECTED


async def test_garbage_client_closed(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    message_type, _ = await asyncio.wait_for(read_message(reader), timeout=5.0)
    assert message_type == MessageType.READER_EVENT_NOTIFICATION
    writer.write(struct.pack("!HII", 0xFFFF, 3, 1))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5.0) == b""
    writer.close()
    await wait_until(
        lambda: simulator.clients_connected == 0, "the connection to close"
    )
    # The simulator still serves the next client.
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    message_type, _ = await asyncio.wait_for(read_message(reader), timeout=5.0)
    assert message_type == MessageType.READER_EVENT_NOTIFICATION
    writer.close()


async def test_unknown_message_gets_error(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    try:
        await asyncio.wait_for(read_message(reader), timeout=5.0)
        writer.write(encode_message(999, 77))
        message_type, frame = await asyncio.wait_for(read_message(reader), timeout=5.0)
        decoded = LLRPMessage(msgbytes=frame).msgdict["ERROR_MESSAGE"]
        assert message_type == MessageType.ERROR_MESSAGE
        assert parse_header(frame).message_id == 77
        assert decoded["LLRPStatus"]["StatusCode"] == "UnsupportedMessage"
    finally:
        writer.close()


async def test_close_connection_answered(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    try:
        await asyncio.wait_for(read_message(reader), timeout=5.0)
        writer.write(encode_message(MessageType.CLOSE_CONNECTION, 5))
        message_type, frame = await asyncio.wait_for(read_message(reader), timeout=5.0)
        decoded = LLRPMessage(msgbytes=frame).msgdict["CLOSE_CONNECTION_RESPONSE"]
        assert message_type == MessageType.CLOSE_CONNECTION_RESPONSE
        assert decoded["LLRPStatus"]["StatusCode"] == "Success"
        assert await asyncio.wait_for(reader.read(), timeout=5.0) == b""
    finally:
        writer.close()


async def test_keepalives_acknowledged(
    start_simulator: StartSimulator, start_client: StartClient
) -> None:
    simulator = await start_simulator()
    running = await start_client(simulator.port)
    await running.wait_state(STATE_CONNECTED)
    await wait_until(lambda: simulator.keepalive_acks >= 2, "two keepalive acks")
    assert simulator.keepalives_sent >= simulator.keepalive_acks


def test_bad_speed_raises() -> None:
    with pytest.raises(ValueError, match="speed"):
        ReaderSimulator(speed=0)


async def test_inject_bad_epc_raises() -> None:
    from drivers.llrp.simulator import SimRead

    simulator = ReaderSimulator()
    with pytest.raises(ValueError):
        simulator.inject([SimRead(1, "XYZ")])
