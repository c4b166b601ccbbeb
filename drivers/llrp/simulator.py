"""LLRP reader simulator: a TCP server that unmodified LLRP clients such as sllurp use.

It follows a real reader's side of LLRP 1.0.1. On accept it sends
READER_EVENT_NOTIFICATION with a ConnectionAttemptEvent, it sends a response with an
LLRPStatus to every request, and it sends KEEPALIVE at the period the client set.
While a ROSpec is enabled (with an immediate start trigger) or started, it sends
RO_ACCESS_REPORT messages that carry only the fields the client's
TagReportContentSelector requested. It serves one client at a time. A second client
gets a failed ConnectionAttemptEvent, as a real reader sends, and is closed.

Reads come from a reads file (see `reads.read_reads_file`) or from `inject()`. Until
a client runs a ROSpec they wait in a report buffer, as a reader buffers reports
while its client is away, and they go out when a ROSpec runs again.

Replay timing. A file whose times are below 1e9 is relative: `time_s` is seconds after
the replay starts, that is after the first ROSpec starts. Each row goes out at
start + time_s / speed, and the reader timestamp is that same instant, so timestamps
and arrival agree at any speed. A file of epoch seconds (1e9 or more) is absolute.
Rows are paced by their distance from the first row divided by speed, and the reader
timestamp is the file's own time, unchanged by speed. A looping replay shifts each
pass by the file's span plus its smallest gap between rows (1 s if it has none).

Fault modes for tests: `drop_connections()`, `go_silent()` and `resume()`,
`send_malformed()` (a frame with a garbage header), `send_partial_frame()` (a valid
header whose body never comes) and `send_undecodable()` (a frame with a valid
header and an unknown message type).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from drivers.llrp.messages import (
    HEADER_BYTES,
    IMPINJ_ENABLE_EXTENSIONS_RESPONSE_SUBTYPE,
    IMPINJ_ENABLE_EXTENSIONS_SUBTYPE,
    IMPINJ_VENDOR_ID,
    ConnectionAttemptStatus,
    LLRPFormatError,
    MessageType,
    ReaderIdentity,
    RFMode,
    ROSpecStartTrigger,
    ROSpecSummary,
    StatusCode,
    TagObservation,
    encode_connection_attempt_event,
    encode_custom_message,
    encode_keepalive_spec,
    encode_llrp_status,
    encode_message,
    encode_reader_capabilities,
    encode_tag_report_data,
    header_problem,
    keepalive_spec_present,
    parse_add_rospec,
    parse_custom_message_kind,
    parse_header,
    parse_keepalive_interval_ms,
    parse_rospec_id,
    pc_word_for,
)
from drivers.llrp.reads import ReadRow, parse_epc_hex, read_reads_file

logger = logging.getLogger(__name__)

ABSOLUTE_TIME_MIN_S = 1e9

# Identity and RF tables of the simulated reader. The power table, RF modes and
# LLRP limits copy a GET_READER_CAPABILITIES_RESPONSE captured from an Impinj
# reader on Octane 5.14 (edgexfoundry device-rfid-llrp-go test data): 10.00 to
# 30.00 dBm in 0.25 dB steps. The hop table is the 50 US channels from 902.75 to
# 927.25 MHz that the same reader listed.
_POWER_TABLE_CENTI_DBM = tuple(range(1000, 3001, 25))
_HOP_TABLE_KHZ = tuple(range(902_750, 927_251, 500))
_RF_MODES = (
    RFMode(0, 1, False, 0, 2, 2, 640_000, 1500, 6250, 6250, 0),
    RFMode(1, 1, False, 1, 2, 2, 640_000, 1500, 6250, 6250, 0),
    RFMode(2, 1, False, 2, 0, 3, 274_000, 2000, 20_000, 20_000, 0),
    RFMode(3, 1, False, 3, 0, 3, 170_600, 2000, 20_000, 20_000, 0),
    RFMode(4, 1, False, 2, 0, 2, 640_000, 1500, 7140, 7140, 0),
    RFMode(1000, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),
    RFMode(1002, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),
    RFMode(1003, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),
    RFMode(1004, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),
    RFMode(1005, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),
)
# The captured reader's model number; a generic reader gives no manufacturer (0).
_IMPINJ_MODEL = 2001002

# A header with version 7, type 1023 and a length of 2**32 - 1, then filler.
_GARBAGE_FRAME = struct.pack("!HII", 0xFFFF, 0xFFFFFFFF, 0xDEADBEEF) + b"\xa5" * 16
# Message type 999 is not defined by LLRP 1.0.1, so clients cannot decode it.
_UNDECODABLE_TYPE = 999


@dataclass(frozen=True, slots=True)
class SimRead:
    """One read for the simulator to report.

    `time_us` is the reader-clock time in microseconds since the Unix epoch. None
    means the reader clock at the moment the report is built.
    """

    antenna: int
    epc: str
    rssi_dbm: float = -55.0
    phase_deg: float | None = None
    time_us: int | None = None
    seen_count: int = 1
    channel: int = 1


class _ClientConnection:
    """One client's LLRP connection: request handling, keepalives and reports."""

    def __init__(
        self,
        sim: ReaderSimulator,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.impinj_enabled = False
        self.keepalive_interval_ms: int | None = None
        self.unacked_keepalives = 0
        self.rospecs: dict[int, ROSpecSummary] = {}
        self.enabled: set[int] = set()
        self.started: set[int] = set()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._closing = False

    # --- output -------------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Write a frame unless the reader is silent or the socket closing."""
        if self.sim.silent or self.writer.is_closing():
            return False
        self.writer.write(frame)
        return True

    def respond(self, message_type: int, message_id: int, body: bytes) -> None:
        self.send(encode_message(message_type, message_id, body))

    def respond_status(
        self,
        message_type: int,
        message_id: int,
        code: int = StatusCode.SUCCESS,
        text: str = "",
    ) -> None:
        self.respond(message_type, message_id, encode_llrp_status(code, text))

    def close(self, *, abort: bool = False) -> None:
        self._closing = True
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()

    # --- state --------------------------------------------------------------------

    def running_rospec(self) -> ROSpecSummary | None:
        """Return the ROSpec that is inventorying, if any."""
        for rospec_id, spec in self.rospecs.items():
            if rospec_id in self.started:
                return spec
            immediate = spec.start_trigger == ROSpecStartTrigger.IMMEDIATE
            if rospec_id in self.enabled and immediate:
                return spec
        return None

    # --- input --------------------------------------------------------------------

    async def serve(self) -> None:
        """Read requests and send their responses until either side closes."""
        greeting = encode_connection_attempt_event(
            self.sim.reader_time_us(), ConnectionAttemptStatus.SUCCESS
        )
        self.send(
            encode_message(
                MessageType.READER_EVENT_NOTIFICATION, self.sim.next_id(), greeting
            )
        )
        while not self._closing:
            head = await self.reader.readexactly(HEADER_BYTES)
            header = parse_header(head)
            problem = header_problem(header)
            if problem is not None:
                raise LLRPFormatError(
                    f"invalid frame header from the client: {problem}"
                )
            body = await self.reader.readexactly(header.length - HEADER_BYTES)
            self.dispatch(header.message_type, header.message_id, body)
            await self.writer.drain()

    def dispatch(self, message_type: int, message_id: int, body: bytes) -> None:
        handler = _HANDLERS.get(message_type)
        if handler is None:
            logger.info(
                "reader simulator: %s sent unsupported message type %d",
                self.peer,
                message_type,
            )
            self.respond_status(
                MessageType.ERROR_MESSAGE,
                message_id,
                StatusCode.UNSUPPORTED_MESSAGE,
                f"message type {message_type} is not supported",
            )
            return
        handler(self, message_id, body)

    def on_custom_message(self, message_id: int, body: bytes) -> None:
        vendor_id, subtype = parse_custom_message_kind(body)
        is_enable = (
            vendor_id == IMPINJ_VENDOR_ID
            and subtype == IMPINJ_ENABLE_EXTENSIONS_SUBTYPE
        )
        if self.sim.impinj and is_enable:
            self.impinj_enabled = True
            self.send(
                encode_custom_message(
                    IMPINJ_VENDOR_ID,
                    IMPINJ_ENABLE_EXTENSIONS_RESPONSE_SUBTYPE,
                    message_id,
                    encode_llrp_status(),
                )
            )
            return
        # A reader without the vendor's extensions does not support the message.
        self.respond_status(
            MessageType.ERROR_MESSAGE,
            message_id,
            StatusCode.UNSUPPORTED_MESSAGE,
            f"custom message of vendor {vendor_id} subtype {subtype} is not supported",
        )

    def on_get_capabilities(self, message_id: int, body: bytes) -> None:
        self.respond(
            MessageType.GET_READER_CAPABILITIES_RESPONSE,
            message_id,
            encode_reader_capabilities(self.sim.identity),
        )

    def on_get_config(self, message_id: int, body: bytes) -> None:
        data = encode_llrp_status() + encode_keepalive_spec(self.keepalive_interval_ms)
        self.respond(MessageType.GET_READER_CONFIG_RESPONSE, message_id, data)

    def on_set_config(self, message_id: int, body: bytes) -> None:
        if keepalive_spec_present(body):
            self.keepalive_interval_ms = parse_keepalive_interval_ms(body)
            self._restart_keepalives()
        self.respond_status(MessageType.SET_READER_CONFIG_RESPONSE, message_id)

    def on_enable_events(self, message_id: int, body: bytes) -> None:
        # ENABLE_EVENTS_AND_REPORTS has no response.
        self.sim.wake_pump()

    def on_add_rospec(self, message_id: int, body: bytes) -> None:
        spec = parse_add_rospec(body)
        if spec.rospec_id in self.rospecs:
            self.respond_status(
                MessageType.ADD_ROSPEC_RESPONSE,
                message_id,
                StatusCode.A_INVALID,
                f"ROSpec {spec.rospec_id} already exists",
            )
            return
        self.rospecs[spec.rospec_id] = spec
        self.respond_status(MessageType.ADD_ROSPEC_RESPONSE, message_id)

    def _rospec_command(
        self, response_type: int, message_id: int, body: bytes, action: str
    ) -> None:
        rospec_id = parse_rospec_id(body)
        # ROSpecID 0 means every ROSpec, for the commands that allow it.
        targets = list(self.rospecs) if rospec_id == 0 else [rospec_id]
        if rospec_id != 0 and rospec_id not in self.rospecs:
            self.respond_status(
                response_type,
                message_id,
                StatusCode.A_INVALID,
                f"no ROSpec {rospec_id}",
            )
            return
        for target in targets:
            if action == "enable":
                self.enabled.add(target)
            elif action == "start":
                self.started.add(target)
            elif action in ("stop", "disable"):
                self.started.discard(target)
                if action == "disable":
                    self.enabled.discard(target)
            elif action == "delete":
                self.rospecs.pop(target, None)
                self.enabled.discard(target)
                self.started.discard(target)
        self.respond_status(response_type, message_id)
        if self.running_rospec() is not None:
            self.sim.on_inventory_running()

    def on_enable_rospec(self, message_id: int, body: bytes) -> None:
        self._rospec_command(
            MessageType.ENABLE_ROSPEC_RESPONSE, message_id, body, "enable"
        )

    def on_start_rospec(self, message_id: int, body: bytes) -> None:
        self._rospec_command(
            MessageType.START_ROSPEC_RESPONSE, message_id, body, "start"
        )

    def on_stop_rospec(self, message_id: int, body: bytes) -> None:
        self._rospec_command(MessageType.STOP_ROSPEC_RESPONSE, message_id, body, "stop")

    def on_disable_rospec(self, message_id: int, body: bytes) -> None:
        self._rospec_command(
            MessageType.DISABLE_ROSPEC_RESPONSE, message_id, body, "disable"
        )

    def on_delete_rospec(self, message_id: int, body: bytes) -> None:
        self._rospec_command(
            MessageType.DELETE_ROSPEC_RESPONSE, message_id, body, "delete"
        )

    def on_get_rospecs(self, message_id: int, body: bytes) -> None:
        # NOTE: the response lists no ROSpec parameters; no client here reads them.
        self.respond_status(MessageType.GET_ROSPECS_RESPONSE, message_id)

    def on_access_spec(self, message_id: int, body: bytes, response_type: int) -> None:
        # AccessSpecs are accepted and never run: the simulated tags have no memory.
        self.respond_status(response_type, message_id)

    def on_keepalive_ack(self, message_id: int, body: bytes) -> None:
        self.unacked_keepalives = 0
        self.sim.keepalive_acks += 1

    def on_close_connection(self, message_id: int, body: bytes) -> None:
        self.respond_status(MessageType.CLOSE_CONNECTION_RESPONSE, message_id)
        self._closing = True

    # --- keepalives ---------------------------------------------------------------

    def _restart_keepalives(self) -> None:
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        if self.keepalive_interval_ms is None or not self.sim.keepalive_honour:
            return
        self._keepalive_task = asyncio.create_task(
            self._send_keepalives(self.keepalive_interval_ms)
        )

    async def _send_keepalives(self, interval_ms: int) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000.0)
            if not self.send(encode_message(MessageType.KEEPALIVE, self.sim.next_id())):
                continue
            self.sim.keepalives_sent += 1
            self.unacked_keepalives += 1
            if self.unacked_keepalives == 3:
                logger.warning(
                    "reader simulator: %s acknowledged none of the last 3 keepalives",
                    self.peer,
                )

    # --- reports ------------------------------------------------------------------

    async def send_report(self, reads: list[SimRead], spec: ROSpecSummary) -> int:
        """Send the covered reads in one RO_ACCESS_REPORT; return how many went out."""
        entries = []
        for read in reads:
            if not spec.covers_antenna(read.antenna):
                self.sim.reads_filtered += 1
                continue
            entries.append(
                self.sim.tag_report_data(read, spec, impinj=self.impinj_enabled)
            )
        if not entries:
            return 0
        frame = encode_message(
            MessageType.RO_ACCESS_REPORT, self.sim.next_id(), b"".join(entries)
        )
        if not self.send(frame):
            return 0
        await self.writer.drain()
        return len(entries)


_HANDLERS: dict[int, Callable[[_ClientConnection, int, bytes], None]] = {
    MessageType.CUSTOM_MESSAGE: _ClientConnection.on_custom_message,
    MessageType.GET_READER_CAPABILITIES: _ClientConnection.on_get_capabilities,
    MessageType.GET_READER_CONFIG: _ClientConnection.on_get_config,
    MessageType.SET_READER_CONFIG: _ClientConnection.on_set_config,
    MessageType.ENABLE_EVENTS_AND_REPORTS: _ClientConnection.on_enable_events,
    MessageType.ADD_ROSPEC: _ClientConnection.on_add_rospec,
    MessageType.ENABLE_ROSPEC: _ClientConnection.on_enable_rospec,
    MessageType.START_ROSPEC: _ClientConnection.on_start_rospec,
    MessageType.STOP_ROSPEC: _ClientConnection.on_stop_rospec,
    MessageType.DISABLE_ROSPEC: _ClientConnection.on_disable_rospec,
    MessageType.DELETE_ROSPEC: _ClientConnection.on_delete_rospec,
    MessageType.GET_ROSPECS: _ClientConnection.on_get_rospecs,
    MessageType.ADD_ACCESSSPEC: lambda c, i, b: c.on_access_spec(
        i, b, MessageType.ADD_ACCESSSPEC_RESPONSE
    ),
    MessageType.DELETE_ACCESSSPEC: lambda c, i, b: c.on_access_spec(
        i, b, MessageType.DELETE_ACCESSSPEC_RESPONSE
    ),
    MessageType.ENABLE_ACCESSSPEC: lambda c, i, b: c.on_access_spec(
        i, b, MessageType.ENABLE_ACCESSSPEC_RESPONSE
    ),
    MessageType.DISABLE_ACCESSSPEC: lambda c, i, b: c.on_access_spec(
        i, b, MessageType.DISABLE_ACCESSSPEC_RESPONSE
    ),
    MessageType.GET_ACCESSSPECS: lambda c, i, b: c.on_access_spec(
        i, b, MessageType.GET_ACCESSSPECS_RESPONSE
    ),
    MessageType.KEEPALIVE_ACK: _ClientConnection.on_keepalive_ack,
    MessageType.CLOSE_CONNECTION: _ClientConnection.on_close_connection,
}


class ReaderSimulator:
    """A simulated LLRP reader on TCP that replays reads and can inject faults.

    `clock_offset_ms` shifts the reader clock from the host clock.
    `uptime_timestamps` sends reader uptime instead of UTC timestamps, as readers
    without a UTC clock do. `pc_word_in_epc` puts the Gen2 PC word in front of each
    EPC, as some readers do. `report_buffer_max` bounds the reads waiting for a
    client, and the oldest are dropped and counted when it is full.
    """

    def __init__(
        self,
        rows: Iterable[ReadRow] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        loop_rows: bool = False,
        impinj: bool = False,
        keepalive_honour: bool = True,
        report_batch_max: int = 100,
        antenna_count: int = 4,
        clock_offset_ms: float = 0.0,
        uptime_timestamps: bool = False,
        pc_word_in_epc: bool = False,
        report_buffer_max: int = 100_000,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if report_batch_max < 1:
            raise ValueError(
                f"report_batch_max must be at least 1, got {report_batch_max}"
            )
        if not 1 <= antenna_count <= 65535:
            raise ValueError(f"antenna_count must be 1..65535, got {antenna_count}")
        if report_buffer_max < 1:
            raise ValueError(
                f"report_buffer_max must be at least 1, got {report_buffer_max}"
            )
        self._rows = sorted(rows, key=lambda row: row.time_s)
        self._absolute = _rows_are_absolute(self._rows)
        self.host = host
        self.port = port
        self.speed = speed
        self.loop_rows = loop_rows
        self.impinj = impinj
        self.keepalive_honour = keepalive_honour
        self.report_batch_max = report_batch_max
        self.clock_offset_us = round(clock_offset_ms * 1000)
        self.uptime_timestamps = uptime_timestamps
        self.pc_word_in_epc = pc_word_in_epc
        self.identity = ReaderIdentity(
            antenna_count=antenna_count,
            manufacturer=IMPINJ_VENDOR_ID if impinj else 0,
            model=_IMPINJ_MODEL if impinj else 0,
            firmware="bwms-reader-simulator",
            power_table_centi_dbm=_POWER_TABLE_CENTI_DBM,
            hop_table_khz=_HOP_TABLE_KHZ,
            rf_modes=_RF_MODES,
        )

        self.silent = False
        self.connections = 0
        self.clients_connected = 0
        self.rejected_connections = 0
        self.reports_sent = 0
        self.reads_sent = 0
        self.reads_filtered = 0
        self.reads_dropped = 0
        self.keepalives_sent = 0
        self.keepalive_acks = 0

        self._buffer: deque[SimRead] = deque(maxlen=report_buffer_max)
        self._server: asyncio.Server | None = None
        self._active: _ClientConnection | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self._started_at_us = 0
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._rows_done = not self._rows
        self._replayed = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port; `port` contains the bound port afterwards."""
        self._started_at_us = self.reader_time_us()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._pump_task = asyncio.create_task(self._pump())
        logger.info(
            "reader simulator: listening on %s:%d (%d rows, speed %g, impinj %s)",
            self.host,
            self.port,
            len(self._rows),
            self.speed,
            self.impinj,
        )

    async def stop(self) -> None:
        """Close the listener, the client connection and every task."""
        if self._server is not None:
            self._server.close()
        if self._active is not None:
            self._active.close(abort=True)
            self._active = None
        tasks = [t for t in (self._pump_task, self._replay_task) if t is not None]
        tasks.extend(self._handlers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- reads --------------------------------------------------------------------

    def inject(self, reads: Iterable[SimRead]) -> None:
        """Queue reads for the next report now, bypassing the reads file."""
        for read in reads:
            epc = parse_epc_hex(read.epc)
            if not 1 <= read.antenna <= 65535:
                raise ValueError(f"antenna {read.antenna} is not 1..65535")
            self._enqueue(replace(read, epc=epc))
        self.wake_pump()

    async def wait_replayed(self) -> None:
        """Wait until every row of a non-looping replay has been sent to a client."""
        if self.loop_rows and self._rows:
            raise RuntimeError("a looping replay never finishes")
        await self._replayed.wait()

    async def wait_for_connections(self, count: int) -> None:
        """Wait until `count` client connections have been accepted in total."""
        while self.connections < count:
            self._connected.clear()
            await self._connected.wait()

    # --- fault modes --------------------------------------------------------------

    def drop_connections(self) -> None:
        """Reset the client connection now, as a reader that reboots does."""
        if self._active is not None:
            logger.info(
                "reader simulator: dropping the connection of %s", self._active.peer
            )
            self._active.close(abort=True)
            self._active = None

    def go_silent(self) -> None:
        """Stop sending responses, keepalives and reports, but keep the socket open."""
        self.silent = True

    def resume(self) -> None:
        """Undo go_silent()."""
        self.silent = False
        self.wake_pump()

    def send_malformed(self) -> None:
        """Write a frame whose header has a bad version and an absurd length."""
        if self._active is not None:
            self._active.writer.write(_GARBAGE_FRAME)

    def send_partial_frame(self) -> None:
        """Write the header of a 1 MiB RO_ACCESS_REPORT and never its body."""
        if self._active is not None:
            header = struct.pack(
                "!HII", (1 << 10) | MessageType.RO_ACCESS_REPORT, 1 << 20, 1
            )
            self._active.writer.write(header)

    def send_undecodable(self) -> None:
        """Write a well-framed message of a type LLRP does not define."""
        if self._active is not None:
            frame = encode_message(
                _UNDECODABLE_TYPE, self.next_id(), b"\x00\x01\x02\x03"
            )
            self._active.writer.write(frame)

    # --- helpers used by connections ----------------------------------------------

    def reader_time_us(self) -> int:
        """Return the simulated reader clock in microseconds since the Unix epoch."""
        return round(time.time() * 1_000_000) + self.clock_offset_us

    def next_id(self) -> int:
        """Return the next id for a message the reader starts."""
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return self._next_id

    def wake_pump(self) -> None:
        """Let the report pump look at the buffer again."""
        self._wakeup.set()

    def on_inventory_running(self) -> None:
        """Start the file replay at the first running ROSpec, then flush the buffer."""
        if self._replay_task is None and self._rows:
            self._replay_task = asyncio.create_task(self._replay())
        self.wake_pump()

    def tag_report_data(
        self, read: SimRead, spec: ROSpecSummary, *, impinj: bool
    ) -> bytes:
        """Encode one read as TagReportData with the fields the ROSpec asked for."""
        epc = read.epc
        pc_word = pc_word_for(epc)
        if self.pc_word_in_epc:
            epc = f"{pc_word:04X}{epc}"
        time_us = read.time_us if read.time_us is not None else self.reader_time_us()
        tag = TagObservation(
            epc_hex=epc,
            antenna=read.antenna,
            rssi_dbm=read.rssi_dbm,
            first_seen_us=time_us,
            last_seen_us=time_us,
            seen_count=read.seen_count,
            channel=read.channel,
            phase_deg=read.phase_deg,
            pc_word=pc_word,
            rospec_id=spec.rospec_id,
        )
        return encode_tag_report_data(
            tag,
            spec.content,
            impinj=impinj,
            uptime_timestamps=self.uptime_timestamps,
            uptime_origin_us=self._started_at_us,
        )

    # --- internals ----------------------------------------------------------------

    def _enqueue(self, read: SimRead) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.reads_dropped += 1
            if self.reads_dropped == 1:
                logger.warning(
                    "reader simulator: report buffer full (%d reads); "
                    "dropping the oldest",
                    self._buffer.maxlen,
                )
        self._buffer.append(read)

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_client(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer_name(writer)
        if self._active is not None:
            self._reject_second_client(writer, peer)
            return
        connection = _ClientConnection(self, reader, writer, peer)
        self._active = connection
        self.connections += 1
        self.clients_connected += 1
        self._connected.set()
        logger.info("reader simulator: client %s connected", peer)
        reason = "closed by the client"
        try:
            await connection.serve()
            reason = "closed after CLOSE_CONNECTION"
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except LLRPFormatError as exc:
            reason = f"closed on invalid data: {exc}"
            logger.warning(
                "reader simulator: client %s sent invalid data: %s", peer, exc
            )
        finally:
            self.clients_connected -= 1
            if self._active is connection:
                self._active = None
            connection.close()
            logger.info("reader simulator: client %s disconnected (%s)", peer, reason)

    def _reject_second_client(self, writer: asyncio.StreamWriter, peer: str) -> None:
        self.rejected_connections += 1
        logger.info("reader simulator: rejected %s because a client is connected", peer)
        body = encode_connection_attempt_event(
            self.reader_time_us(),
            ConnectionAttemptStatus.FAILED_CLIENT_CONNECTION_EXISTS,
        )
        writer.write(
            encode_message(MessageType.READER_EVENT_NOTIFICATION, self.next_id(), body)
        )
        writer.close()

    async def _pump(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._flush()
            except ConnectionError as exc:
                logger.info("reader simulator: report not delivered: %s", exc)
            if self._rows_done and not self._buffer:
                self._replayed.set()

    async def _flush(self) -> None:
        while self._buffer and not self.silent:
            connection = self._active
            spec = connection.running_rospec() if connection is not None else None
            if connection is None or spec is None or connection.writer.is_closing():
                return
            count = min(self.report_batch_max, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(count)]
            sent = await connection.send_report(batch, spec)
            if sent:
                self.reports_sent += 1
                self.reads_sent += sent

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        start_us = self.reader_time_us()
        origin_s = self._rows[0].time_s if self._absolute else 0.0
        period_s = _loop_period_s(self._rows, origin_s)
        passes = 0
        while True:
            shift_s = passes * period_s
            for row in self._rows:
                elapsed_s = (row.time_s + shift_s - origin_s) / self.speed
                delay_s = started + elapsed_s - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                if self._absolute:
                    time_us = round((row.time_s + shift_s) * 1_000_000)
                else:
                    time_us = start_us + round(elapsed_s * 1_000_000)
                self._enqueue(
                    SimRead(row.antenna, row.epc, row.rssi_dbm, row.phase_deg, time_us)
                )
                self.wake_pump()
            if not self.loop_rows:
                break
            passes += 1
        self._rows_done = True
        self.wake_pump()


def _rows_are_absolute(rows: list[ReadRow]) -> bool:
    absolute = [row.time_s >= ABSOLUTE_TIME_MIN_S for row in rows]
    if any(absolute) and not all(absolute):
        first = next(row for row, flag in zip(rows, absolute, strict=True) if not flag)
        raise ValueError(
            f"reads file mixes relative and absolute times (line {first.line} has "
            f"{first.time_s}); use seconds from the start or epoch seconds throughout"
        )
    return bool(rows) and all(absolute)


def _loop_period_s(rows: list[ReadRow], origin_s: float) -> float:
    if not rows:
        return 0.0
    times = [row.time_s for row in rows]
    gaps = [
        later - earlier for earlier, later in zip(times, times[1:]) if later > earlier
    ]
    return times[-1] - origin_s + (min(gaps) if gaps else 1.0)


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def serve_reads_file(
    reads_path: Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 5084,
    speed: float = 1.0,
    loop_rows: bool = False,
    impinj: bool = False,
) -> None:
    """Run a simulator that replays `reads_path` until the task is cancelled."""
    rows = list(read_reads_file(reads_path)) if reads_path is not None else []
    simulator = ReaderSimulator(
        rows, host=host, port=port, speed=speed, loop_rows=loop_rows, impinj=impinj
    )
    await simulator.start()
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        with contextlib.suppress(Exception):
            await simulator.stop()
