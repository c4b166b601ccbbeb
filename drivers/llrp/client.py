"""LLRP reader client built on sllurp, with a connection policy of its own.

sllurp 3.0.5 speaks LLRP and runs one thread per reader connection, but it has no
keepalive watchdog, does not retry a failed first connect, and waits a fixed 60 s
between reconnects. `ReaderClient` therefore turns sllurp's reconnect off and owns
the connection:

- It connects in a worker thread, so the event loop never blocks, and waits up to
  `connect_timeout_s` for sllurp to get a ROSpec running.
- It asks the reader for LLRP keepalives. A watchdog on the event loop declares the
  reader lost when no message of any kind arrived for `missed_keepalives`
  keepalive periods. The client then closes the socket and reconnects.
- It reconnects with capped exponential backoff (tenacity). A connection that
  delivered messages for a full watchdog window resets the backoff.
- It frames the byte stream itself and checks every header before sllurp decodes
  it. A bad version or length means the stream is out of step, so the client
  counts it, logs it and reconnects. A frame that is well delimited but that sllurp
  cannot decode is counted, logged and skipped.

Reads reach `on_reads` on the event loop, converted by `tag_report`. Health snapshots
reach `on_health` on every change of state or of the clock-skew flag.

Errors: `ReaderError` is the base. `ReaderConnectError` means TCP connect failed,
`ReaderHandshakeError` means the LLRP set-up failed, and `ReaderConnectionLost`
means an established connection ended. `run()` handles all three by reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from socket import SHUT_RDWR, socket
from typing import Any

from sllurp.llrp import LLRPMessage, LLRPReaderClient, LLRPReaderState
from sllurp.llrp_errors import ReaderConfigurationError
from sllurp.llrp_proto import LLRPError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
)

from drivers.llrp.clock import ClockOffsetEstimator
from drivers.llrp.messages import HEADER_BYTES, MessageType, header_problem, parse_header
from drivers.llrp.profile import ReaderProfile
from drivers.llrp.reads import TagRead
from drivers.llrp.tag_report import RejectedRead, convert_tag_report

logger = logging.getLogger(__name__)

STATE_CONNECTING = "connecting"
STATE_CONNECTED = "connected"
STATE_LOST = "lost"

# Time allowed for the polite stop (DELETE_ACCESSSPEC, DELETE_ROSPEC) on stop().
POLITE_STOP_TIMEOUT_S = 1.0
# Time allowed for sllurp's reader thread to end after its socket is shut down.
THREAD_JOIN_TIMEOUT_S = 2.0
# Repeated warnings of one kind (rejected reads, undecodable frames) are logged at
# most once per this many seconds, with the count of the ones left out.
REPEAT_LOG_INTERVAL_S = 60.0
# Messages that a reader sends on its own once inventory runs: they show how far
# the reader's reporting has got.
_PACING_MESSAGES = frozenset({MessageType.RO_ACCESS_REPORT, MessageType.KEEPALIVE})


class ReaderError(Exception):
    """Base of the errors the reader client raises."""


class ReaderConnectError(ReaderError):
    """The TCP connection to the reader could not be opened."""


class ReaderHandshakeError(ReaderError):
    """The reader accepted TCP but the LLRP set-up did not reach a running ROSpec."""


class ReaderConnectionLost(ReaderError):
    """An established connection ended: closed, silent, or out of step."""


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    """Snapshot of one reader connection.

    `state` is "connecting" before the first connection, "connected" while a ROSpec
    runs, and "lost" from the first failure until a connection works again. `since` is
    the host `time.time()` of the last state change. `clock_offset_ms` is the reader
    clock minus the host clock (see ClockOffsetEstimator). `reconnects` counts the
    connection attempts after the first one.
    """

    reader_id: str
    state: str
    since: float
    clock_offset_ms: float | None
    clock_skew_warning: bool
    reports: int
    reads: int
    rejected_reads: int
    malformed_frames: int
    reconnects: int
    detail: str | None


class _RepeatLog:
    """Logger for repeats: the first warning of a key at once, then one per interval."""

    def __init__(self, monotonic: Callable[[], float], interval_s: float) -> None:
        self._monotonic = monotonic
        self._interval_s = interval_s
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = self._monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._last_logged[key] = now
        if suppressed:
            message += " (%d more since the last report of this kind)"
            args = (*args, suppressed)
        logger.warning(message, *args)


class _Session:
    """Event-loop side of one connection; sllurp's reader thread posts into it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        number: int,
        monotonic: Callable[[], float],
    ) -> None:
        self.loop = loop
        self.number = number
        self.monotonic = monotonic
        self.last_rx_monotonic = monotonic()
        self.inventorying: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[str] = loop.create_future()
        self.link: _Link | None = None
        # Set by the reader thread before it stops, read when it has stopped.
        self.end_reason: str | None = None

    def post(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback(*args)` on the event loop; safe from any thread."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop is closed because the client has shut down; drop the event.
            pass

    def end(self, reason: str) -> None:
        """Mark the connection as over (event loop only); the first reason is kept."""
        if not self.ended.done():
            self.ended.set_result(reason)

    def set_end_reason(self, reason: str) -> None:
        """Record why the reader thread is about to stop (any thread)."""
        if self.end_reason is None:
            self.end_reason = reason


class _Link(LLRPReaderClient):  # type: ignore[misc]
    """sllurp reader connection with strict framing and hooks back to the event loop.

    Methods other than the constructor run in sllurp's reader thread unless their
    docstring names another thread.
    """

    _socket: socket | None

    def __init__(
        self,
        host: str,
        port: int,
        config: Any,
        timeout_s: float,
        session: _Session,
        sink: ReaderClient,
        wall_time: Callable[[], float],
    ) -> None:
        super().__init__(host, port=port, config=config, timeout=timeout_s)
        self._session = session
        self._sink = sink
        self._wall_time = wall_time
        self._frames = bytearray()
        self._received_at = 0.0
        self._close_lock = threading.Lock()
        self.add_tag_report_callback(self._on_tag_report)
        self.add_event_callback(self._on_reader_event)
        self.add_state_callback(
            LLRPReaderState.STATE_INVENTORYING, self._on_inventorying
        )

    # --- framing: replaces sllurp's raw_data_received -----------------------------

    def raw_data_received(self, data: bytes) -> None:
        self._received_at = self._wall_time()
        self._frames += data
        # A handler below may have closed the connection; later frames are not read.
        while len(self._frames) >= HEADER_BYTES and not self._stop_main_loop.is_set():
            header = parse_header(self._frames)
            problem = header_problem(header)
            if problem is not None:
                self._reject_stream(problem)
                return
            if len(self._frames) < header.length:
                return
            frame = bytes(self._frames[: header.length])
            del self._frames[: header.length]
            # Only whole frames count as signs of life: bytes of a frame that never
            # completes (a corrupt but plausible length) must not feed the watchdog.
            self._session.last_rx_monotonic = self._session.monotonic()
            if header.message_type in _PACING_MESSAGES:
                self._sink._last_report_monotonic = self._session.last_rx_monotonic
            self._handle_frame(frame, header.message_type)

    def _reject_stream(self, problem: str) -> None:
        first_bytes = bytes(self._frames[:16]).hex()
        self._frames.clear()
        detail = f"invalid frame header ({problem}), first bytes {first_bytes}"
        self._session.set_end_reason(f"malformed frame from the reader: {detail}")
        self._session.post(self._sink._count_malformed, detail, True)
        self.hard_disconnect()

    def _handle_frame(self, frame: bytes, message_type: int) -> None:
        try:
            message = LLRPMessage(msgbytes=frame)
        except Exception as exc:  # noqa: BLE001
            # sllurp's decoders raise LLRPError, struct.error, KeyError or IndexError
            # on bad bodies. The frame was delimited, so the stream is still in step.
            detail = f"message type {message_type} that sllurp cannot decode: {exc!r}"
            self._session.post(self._sink._count_malformed, detail, False)
            return
        self._on_llrp_message_received(message)
        try:
            self.llrp.handleMessage(message)
        except ReaderConfigurationError as exc:
            # sllurp's main loop closes the connection on this error.
            self._session.set_end_reason(f"reader rejected the configuration: {exc}")
            raise
        except Exception as exc:  # noqa: BLE001
            name = message.getName()
            self._session.set_end_reason(f"sllurp failed to handle {name}: {exc!r}")
            self.hard_disconnect()

    # --- sllurp callbacks ---------------------------------------------------------

    def _on_tag_report(self, _reader: object, entries: list[Mapping[str, Any]]) -> None:
        self._session.post(self._sink._handle_report, entries, self._received_at)

    def _on_reader_event(self, _reader: object, event: Mapping[str, Any]) -> None:
        timestamp = event.get("UTCTimestamp")
        if isinstance(timestamp, Mapping) and isinstance(
            timestamp.get("Microseconds"), int
        ):
            self._session.post(
                self._sink._handle_reader_time,
                timestamp["Microseconds"],
                self._received_at,
            )
        attempt = event.get("ConnectionAttemptEvent")
        if isinstance(attempt, Mapping) and attempt.get("Status") != "Success":
            # sllurp logs this and then waits forever, so end the connection here.
            self._session.set_end_reason(
                f"reader refused the connection: {attempt.get('Status')}"
            )
            self.hard_disconnect()
        if "ConnectionCloseEvent" in event:
            self._session.set_end_reason(
                "reader announced that it closes the connection"
            )

    def _on_inventorying(self, _reader: object, _state: int) -> None:
        self._session.post(self._sink._handle_inventorying, self._session)

    def on_lost_connection(self) -> bool:
        self._session.set_end_reason("connection closed by the reader")
        return bool(super().on_lost_connection())

    # --- socket lifetime ----------------------------------------------------------

    def main_loop(self) -> None:
        try:
            super().main_loop()
        finally:
            self._close_socket()
            reason = self._session.end_reason or "sllurp's reader thread stopped"
            self._session.post(self._session.end, reason)

    def hard_disconnect(self) -> None:
        """Stop the reader thread and close the socket; safe from any thread.

        sllurp's own version closes the socket under the running reader thread, which
        can then pass None to select() and log a traceback. Here the socket is only
        shut down, and the reader thread closes it as it stops.
        """
        self._stop_main_loop.set()
        sock: socket | None = self._socket
        if sock is not None:
            try:
                sock.shutdown(SHUT_RDWR)
            except OSError:
                pass
        if not self.is_alive():
            self._close_socket()

    def _close_socket(self) -> None:
        with self._close_lock:
            sock: socket | None = self._socket
            self._socket = None
        if sock is not None:
            sock.close()


class ReaderClient:
    """Client for one LLRP reader: keeps it inventorying and passes its reads on.

    `on_reads` gets the accepted reads of each RO_ACCESS_REPORT, and `on_health` gets
    a ReaderHealth on every change of state. Both run on the event loop that runs
    `run()`. `keepalive_interval_s` defaults to the profile's value.
    `monotonic` and `wall_time` are the clocks the watchdog and the clock-offset
    estimate use.
    """

    def __init__(
        self,
        reader_id: str,
        host: str,
        port: int,
        profile: ReaderProfile,
        *,
        on_reads: Callable[[list[TagRead]], None],
        on_health: Callable[[ReaderHealth], None] | None = None,
        keepalive_interval_s: float | None = None,
        missed_keepalives: int = 3,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        max_clock_skew_ms: float = 2000.0,
        connect_timeout_s: float = 5.0,
        antennas: list[int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        interval_s = keepalive_interval_s or profile.keepalive_interval_s
        _require_positive(
            keepalive_interval_s=interval_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            max_clock_skew_ms=max_clock_skew_ms,
            connect_timeout_s=connect_timeout_s,
        )
        if missed_keepalives < 1:
            raise ValueError(
                f"missed_keepalives must be at least 1, got {missed_keepalives}"
            )
        if backoff_max_s < backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({backoff_max_s}) is below backoff_initial_s "
                f"({backoff_initial_s})"
            )
        self.reader_id = reader_id
        self.host = host
        self.port = port
        self._profile = profile
        self._antennas: Sequence[int] | None = list(antennas) if antennas else None
        # Build sllurp's configuration once now, so a bad profile fails at start.
        profile.to_sllurp_config(self._antennas, keepalive_interval_s=interval_s)

        self._on_reads = on_reads
        self._on_health = on_health
        self._keepalive_interval_s = interval_s
        self._missed_keepalives = missed_keepalives
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._max_clock_skew_us = max_clock_skew_ms * 1000.0
        self._connect_timeout_s = connect_timeout_s
        self._monotonic = monotonic
        self._wall_time = wall_time

        self._state = STATE_CONNECTING
        self._since = wall_time()
        self._detail: str | None = None
        self._lost_at = 0.0
        self._clock = ClockOffsetEstimator()
        # Written by the reader thread, read on the event loop: a float is replaced
        # whole, so no lock is needed.
        self._last_report_monotonic: float | None = None
        self._skew_warning = False
        self._reports = 0
        self._reads = 0
        self._rejected_reads = 0
        self._malformed_frames = 0
        self._attempts = 0
        self._repeat_log = _RepeatLog(monotonic, REPEAT_LOG_INTERVAL_S)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._stop_event: asyncio.Event | None = None
        self._session: _Session | None = None

    # --- public interface ---------------------------------------------------------

    @property
    def health(self) -> ReaderHealth:
        """Current health snapshot."""
        offset_us = self._clock.offset_us()
        return ReaderHealth(
            reader_id=self.reader_id,
            state=self._state,
            since=self._since,
            clock_offset_ms=None if offset_us is None else offset_us / 1000.0,
            clock_skew_warning=self._skew_warning,
            reports=self._reports,
            reads=self._reads,
            rejected_reads=self._rejected_reads,
            malformed_frames=self._malformed_frames,
            reconnects=max(0, self._attempts - 1),
            detail=self._detail,
        )

    def clock_offset_us(self) -> int | None:
        """Return reader minus host clock in us, or None before the first sample."""
        return self._clock.offset_us()

    def seconds_since_report(self) -> float | None:
        """Return the time since the last RO_ACCESS_REPORT or KEEPALIVE, or None.

        The count runs across reconnects: after a lost connection it keeps growing
        until the new connection delivers its first report or keepalive. Reports
        the reader held during an outage come before that keepalive, because LLRP
        messages arrive in order on one connection.
        """
        if self._last_report_monotonic is None:
            return None
        return self._monotonic() - self._last_report_monotonic

    async def run(self) -> None:
        """Connect, configure, inventory and reconnect until stop() or cancellation."""
        if self._run_task is not None and not self._run_task.done():
            raise RuntimeError(f"{self.reader_id}: run() is already running")
        self._loop = asyncio.get_running_loop()
        self._run_task = asyncio.current_task()
        self._stop_requested = False
        self._stop_event = asyncio.Event()
        self._publish_health()
        try:
            while not self._stop_requested:
                await self._run_retry_sequence()
        finally:
            session, self._session = self._session, None
            if session is not None:
                await self._close_session(session, polite=self._stop_requested)

    async def stop(self) -> None:
        """Stop inventory politely, close the connection, and wait for run() to end."""
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()
        session = self._session
        if session is not None:
            session.end("client stopped")
        task = self._run_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        # run() may be inside a blocking connect, which ends within connect_timeout_s.
        limit_s = (
            self._connect_timeout_s + POLITE_STOP_TIMEOUT_S + THREAD_JOIN_TIMEOUT_S
        )
        done, _ = await asyncio.wait({task}, timeout=limit_s)
        if not done:
            logger.warning(
                "%s: run() did not stop within %.1f s; cancelling",
                self.reader_id,
                limit_s,
            )
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- connection policy --------------------------------------------------------

    async def _run_retry_sequence(self) -> None:
        retrying = AsyncRetrying(
            # CancelledError is a BaseException, so cancelling run() is never retried.
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(
                multiplier=self._backoff_initial_s, max=self._backoff_max_s
            ),
            before_sleep=self._before_retry_sleep,
            sleep=self._sleep_unless_stopped,
        )
        async for attempt in retrying:
            with attempt:
                await self._connect_and_serve()

    async def _connect_and_serve(self) -> None:
        """Run one connection; return normally only on stop or after a healthy one."""
        if self._stop_requested:
            return
        self._attempts += 1
        session = await self._open_session()
        if session is None:
            return
        connected_at = self._monotonic()
        self._mark_connected()
        watchdog = asyncio.create_task(self._watchdog(session))
        try:
            reason = await session.ended
        finally:
            watchdog.cancel()
            self._session = None
            await self._close_session(session, polite=self._stop_requested)
        if self._stop_requested:
            return
        self._mark_lost(reason)
        # Messages over a whole watchdog window show that the reader was responsive, so
        # the backoff starts afresh. A reader that goes silent right after set-up, or
        # drops each connection at once, is retried with growing delays instead.
        window_s = self._keepalive_interval_s * self._missed_keepalives
        if session.last_rx_monotonic - connected_at < window_s:
            raise ReaderConnectionLost(reason)

    async def _open_session(self) -> _Session | None:
        assert self._loop is not None
        session = _Session(self._loop, self._attempts, self._monotonic)
        config = self._profile.to_sllurp_config(
            self._antennas, keepalive_interval_s=self._keepalive_interval_s
        )
        link = _Link(
            self.host,
            self.port,
            config,
            self._connect_timeout_s,
            session,
            self,
            self._wall_time,
        )
        session.link = link
        self._session = session
        try:
            await asyncio.to_thread(link.connect)
        except (OSError, LLRPError) as exc:
            self._session = None
            raise ReaderConnectError(
                f"cannot connect to {self.host}:{self.port}: "
                f"{exc or type(exc).__name__}"
            ) from exc

        waiters: set[asyncio.Future[Any]] = {session.inventorying, session.ended}
        done, _ = await asyncio.wait(
            waiters,
            timeout=self._connect_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if session.inventorying in done and not session.ended.done():
            return session
        self._session = None
        await self._close_session(session, polite=False)
        if self._stop_requested:
            return None
        if session.ended.done():
            reason = session.ended.result()
        else:
            limit_s = self._connect_timeout_s
            reason = f"no running ROSpec within {limit_s:.1f} s of connecting"
        raise ReaderHandshakeError(
            f"LLRP set-up with {self.host}:{self.port} failed: {reason}"
        )

    async def _close_session(self, session: _Session, *, polite: bool) -> None:
        session.end("connection closed by the client")
        link = session.link
        if link is None:
            return
        if polite and link.is_alive():
            try:
                await asyncio.to_thread(link.disconnect, POLITE_STOP_TIMEOUT_S)
            except (OSError, LLRPError) as exc:
                logger.info("%s: polite stop failed: %s", self.reader_id, exc)
        link.hard_disconnect()
        await asyncio.to_thread(link.join, THREAD_JOIN_TIMEOUT_S)
        if link.is_alive():
            logger.warning(
                "%s: sllurp's reader thread did not stop within %.1f s",
                self.reader_id,
                THREAD_JOIN_TIMEOUT_S,
            )

    async def _watchdog(self, session: _Session) -> None:
        limit_s = self._keepalive_interval_s * self._missed_keepalives
        check_every_s = min(self._keepalive_interval_s / 4.0, 1.0)
        while not session.ended.done():
            await asyncio.sleep(check_every_s)
            silent_s = self._monotonic() - session.last_rx_monotonic
            if silent_s > limit_s:
                session.end(
                    f"no message from the reader for {silent_s:.1f} s "
                    f"({self._missed_keepalives} keepalive periods of "
                    f"{self._keepalive_interval_s:g} s)"
                )
                return

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        assert self._stop_event is not None
        try:
            await asyncio.wait_for(self._stop_event.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _before_retry_sleep(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
        if exc is not None and not isinstance(exc, ReaderError):
            logger.error(
                "%s: unexpected error in the reader client; retrying in %.1f s",
                self.reader_id,
                delay,
                exc_info=exc,
            )
        detail = str(exc) if exc is not None else "unknown failure"
        if self._state != STATE_LOST:
            self._lost_at = self._monotonic()
            logger.warning(
                "%s: %s; retrying in %.1f s, backing off to at most %.1f s",
                self.reader_id,
                detail,
                delay,
                self._backoff_max_s,
            )
            self._set_state(STATE_LOST, detail)
            return
        self._detail = detail
        logger.debug(
            "%s: attempt %d failed: %s; next in %.1f s",
            self.reader_id,
            self._attempts,
            detail,
            delay,
        )

    def _mark_connected(self) -> None:
        if self._state == STATE_LOST:
            logger.info(
                "%s: reader %s:%s connected again after %.1f s",
                self.reader_id,
                self.host,
                self.port,
                self._monotonic() - self._lost_at,
            )
        else:
            logger.info(
                "%s: connected to reader %s:%s", self.reader_id, self.host, self.port
            )
        self._set_state(STATE_CONNECTED, None)

    def _mark_lost(self, reason: str) -> None:
        self._lost_at = self._monotonic()
        logger.warning(
            "%s: connection to reader %s:%s lost: %s; reconnecting",
            self.reader_id,
            self.host,
            self.port,
            reason,
        )
        self._set_state(STATE_LOST, reason)

    def _set_state(self, state: str, detail: str | None) -> None:
        self._detail = detail
        if state == self._state:
            return
        self._state = state
        self._since = self._wall_time()
        self._publish_health()

    def _publish_health(self) -> None:
        if self._on_health is None:
            return
        try:
            self._on_health(self.health)
        except Exception:
            logger.exception("%s: on_health callback failed", self.reader_id)

    # --- events posted by the reader thread ---------------------------------------

    def _handle_inventorying(self, session: _Session) -> None:
        if not session.inventorying.done():
            session.inventorying.set_result(None)

    def _handle_report(
        self, entries: list[Mapping[str, Any]], received_at: float
    ) -> None:
        self._reports += 1
        reads, rejected = convert_tag_report(
            self.reader_id,
            entries,
            epc_includes_pc_word=self._profile.report.epc_includes_pc_word,
        )
        for rejection in rejected:
            self._count_rejected(rejection)
        if not reads:
            return
        self._reads += len(reads)
        newest_us = max(read.last_seen_us for read in reads)
        self._handle_reader_time(newest_us, received_at)
        try:
            self._on_reads(reads)
        except Exception:
            logger.exception(
                "%s: on_reads callback failed for %d reads", self.reader_id, len(reads)
            )

    def _count_rejected(self, rejection: RejectedRead) -> None:
        self._rejected_reads += 1
        self._repeat_log.warning(
            "reject:" + rejection.reason,
            "%s: rejected a read (%s): %s",
            self.reader_id,
            rejection.reason,
            rejection.detail,
        )

    def _count_malformed(self, detail: str, out_of_step: bool) -> None:
        self._malformed_frames += 1
        if out_of_step:
            # The loss itself is logged once by _mark_lost with this detail.
            return
        self._repeat_log.warning(
            "malformed",
            "%s: skipped a frame from the reader: %s",
            self.reader_id,
            detail,
        )

    def _handle_reader_time(self, reader_time_us: int, received_at: float) -> None:
        self._clock.add(reader_time_us, round(received_at * 1_000_000))
        offset_us = self._clock.offset_us()
        if offset_us is None:
            return
        skewed = abs(offset_us) > self._max_clock_skew_us
        if skewed == self._skew_warning:
            return
        self._skew_warning = skewed
        if skewed:
            logger.warning(
                "%s: reader clock is %+.0f ms off the host clock (limit %.0f ms); "
                "check time synchronisation on the reader",
                self.reader_id,
                offset_us / 1000.0,
                self._max_clock_skew_us / 1000.0,
            )
        else:
            logger.info(
                "%s: reader clock is back within %.0f ms of the host clock (%+.0f ms)",
                self.reader_id,
                self._max_clock_skew_us / 1000.0,
                offset_us / 1000.0,
            )
        self._publish_health()


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
