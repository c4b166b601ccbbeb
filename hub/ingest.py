"""MQTT consumer of the hub: stores movements, confirms them, and keeps portal status.

The consumer subscribes to `bwms/v1/{site}/+/movement` and `bwms/v1/{site}/+/status`
at QoS 1 under a fixed client id with a persistent session, so the broker queues
movements while the hub is away. paho's network loop runs in its own thread and
hands each message to the asyncio loop. The loop stores messages in batches, one
database transaction per batch, and then publishes one bwms.ack/1 confirmation per
portal and batch on `bwms/v1/{site}/{portal}/ack`.

Delivery is at least once from end to end. paho acknowledges a PUBLISH as soon as the
message is handed over, before it is committed. A movement lost between the two is
never confirmed, so the edge keeps it in its outbox and sends it again. A movement is
stored once per `event_id`, which makes redelivery and resends harmless. The MQTT
packet id and DUP flag are not used for deduplication, because a broker that lost
its PUBACKs redelivers as new messages with DUP unset.

Every rejected message is logged at warning (rate-limited per reason), counted per
reason and stored in `dead_letters`. A rejected movement whose `event_id` is readable
is confirmed as `rejected`, so the edge drops it instead of sending it forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DataError, IntegrityError

from bwms.contract import (
    Kind,
    PayloadError,
    TopicError,
    decode,
    encode,
    load_schema,
    parse_topic,
    subscription,
    topic,
    validate,
)
from bwms.site import Portal, Site
from hub.movements import (
    InvalidMovement,
    NewDeadLetter,
    NewMovement,
    count_movements,
    prepare_movement,
    store_dead_letters,
    store_movements,
    stored_event_ids,
)
from hub.settings import HubSettings
from hub.storage.db import Database, StorageError

logger = logging.getLogger(__name__)

# Maximum length of a reason in the bwms.ack/1 schema.
ACK_REASON_MAX = 1000
EVENT_ID_MAX = 64
_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
)


class IngestError(Exception):
    """The consumer could not be configured or started."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def broker_address(url: str) -> tuple[str, int, bool]:
    """Split an mqtt:// or mqtts:// URL into (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise IngestError(f"invalid broker URL {url!r}: expected mqtt://host:port")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise IngestError(f"invalid port in broker URL {url!r}") from exc
    return parts.hostname, port, tls


@dataclass(frozen=True)
class Rejection:
    """Why a message was rejected: a stable code and a detail for people."""

    code: str
    detail: str
    event_id: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass
class IngestCounters:
    """Counts since the consumer started."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    acks_sent: int = 0
    status_received: int = 0
    batches: int = 0
    storage_errors: int = 0

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as plain JSON-ready values."""
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "acks_sent": self.acks_sent,
            "status_received": self.status_received,
            "batches": self.batches,
            "storage_errors": self.storage_errors,
        }


class RateLimitedWarning:
    """Log a warning per key at most once per interval, counting the ones left out."""

    def __init__(
        self, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warn(self, key: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `key` was logged within the interval.

        Returns whether it was logged.
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] += 1
            return False
        self._last[key] = now
        left_out = self._suppressed.pop(key, 0)
        if left_out:
            logger.warning(message + " (%d more like it not logged)", *args, left_out)
        else:
            logger.warning(message, *args)
        return True


@dataclass(frozen=True)
class PortalStatus:
    """The latest bwms.status/1 message of one portal and when the hub received it."""

    payload: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True)
class _Accepted:
    inbound: _Inbound
    site: str
    portal: str
    movement: NewMovement


@dataclass(frozen=True)
class _Rejected:
    inbound: _Inbound
    site: str | None
    portal: str | None
    rejection: Rejection


_STOP = object()


def _readable_event_id(raw: bytes) -> str | None:
    """Return the payload's event_id when it is usable in a confirmation."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    event_id = payload.get("event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= EVENT_ID_MAX:
        if "\x00" not in event_id:
            return event_id
    return None


def _topic_id(value: str | None) -> str | None:
    # Only values that are valid ids fit the site/portal columns and an ack topic.
    if value and len(value) <= 64 and set(value) <= _ID_CHARS and value[0] not in "._-":
        return value
    return None


@cache
def _compiled_validator(kind: Kind) -> Any:
    return jsonschema_rs.validator_for(load_schema(kind))


def decode_payload(kind: Kind, raw: bytes) -> dict[str, Any]:
    """Parse and validate a payload like `bwms.contract.decode`, only faster.

    The pure-Python jsonschema validator takes most of the time a movement costs
    the hub. jsonschema-rs checks the same schema file first, and a payload that it
    accepts is returned at once. Every other payload goes through
    `bwms.contract.decode`, so the contract decides each rejection and words it.
    """
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return decode(kind, raw)
    if isinstance(payload, dict) and _compiled_validator(kind).is_valid(payload):
        return payload
    return decode(kind, raw)


def _payload_error_code(exc: PayloadError) -> str:
    if isinstance(exc.__cause__, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)):
        return "invalid_json"
    return "schema"


class MovementConsumer:
    """The hub's MQTT consumer of one site's movements and portal status."""

    def __init__(
        self,
        settings: HubSettings,
        site: Site,
        db: Database,
        *,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.site = site
        self.db = db
        self.client_id = settings.client_id_for(site.site.id)
        self.host, self.port, self.tls = broker_address(settings.mqtt_url)
        self.counters = IngestCounters()
        self.statuses: dict[str, PortalStatus] = {}

        self._portals: dict[str, Portal] = {p.id: p for p in site.portals}
        self._clock = clock
        self._monotonic = monotonic
        self._reject_log = RateLimitedWarning(settings.reject_log_interval_s, monotonic)
        self._storage_log = RateLimitedWarning(
            settings.reject_log_interval_s, monotonic
        )

        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        # paho's thread appends here and wakes the loop only when no wake-up is
        # pending, because one wake-up per message costs a syscall and a loop turn.
        self._arrivals: deque[_Inbound] = deque()
        self._arrivals_lock = threading.Lock()
        self._wakeup_pending = False

        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._subscribed = asyncio.Event()
        self._batch_done = asyncio.Event()

        # Connection state, for the health route and for logging a loss only once.
        self._ever_connected = False
        self._connect_fail_logged = False
        self._lost_at: float | None = None
        self.connected = False
        self.connected_since: datetime | None = None
        self.disconnects = 0

    @property
    def site_id(self) -> str:
        return self.site.site.id

    @property
    def subscribed(self) -> bool:
        """Whether the broker granted both subscriptions on the current connection."""
        return self._subscribed.is_set()

    @property
    def broker_url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the broker in the background and start storing messages.

        Returns at once; an unreachable broker is retried with a doubling wait.
        """
        if self._task is not None:
            raise IngestError("consumer is already running")
        self._loop = asyncio.get_running_loop()
        self._client = self._build_client()
        self._task = asyncio.create_task(self._run(), name=f"ingest-{self.site_id}")
        try:
            self._client.connect_async(
                self.host, self.port, self.settings.mqtt_keepalive_s
            )
        except (OSError, ValueError) as exc:
            raise IngestError(
                f"cannot connect to broker {self.broker_url}: {exc}"
            ) from exc
        self._client.loop_start()
        logger.info(
            "hub %s: consuming site %s from broker %s",
            self.client_id,
            self.site_id,
            self.broker_url,
        )

    async def stop(self) -> None:
        """Store what was received, disconnect, and stop; the broker keeps the session."""
        if self._task is None:
            return
        # Process the inbox while still connected, so its confirmations go out.
        self._inbox.put_nowait(_STOP)
        await self._task
        self._task = None

        client, self._client = self._client, None
        if client is not None:
            # A clean DISCONNECT keeps the session: clean_session=False (MQTT 3.1.1
            # section 3.1.2.4) makes the broker queue QoS 1 messages until we return.
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        # Let callbacks that paho's thread scheduled before it ended run, then store
        # their messages; the edge resends any confirmation lost with the connection.
        await asyncio.sleep(0)
        self._take_arrivals()
        leftover = self._drain()
        if leftover:
            await self._process(leftover)
        self.connected = False
        self._subscribed.clear()
        logger.info("hub %s: stopped consuming site %s", self.client_id, self.site_id)

    def _build_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            # A persistent session from the very first connect: with a clean first
            # session, what was published while the hub was away would be lost.
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if self.settings.mqtt_username is not None:
            password = self.settings.mqtt_password
            client.username_pw_set(
                self.settings.mqtt_username,
                password.get_secret_value() if password is not None else None,
            )
        if self.tls or self.settings.mqtt_tls_ca is not None:
            ca = self.settings.mqtt_tls_ca
            try:
                # paho verifies the certificate and host name by default.
                client.tls_set(ca_certs=str(ca) if ca is not None else None)
            except (OSError, ValueError) as exc:
                raise IngestError(
                    f"cannot set up TLS with CA file {ca}: {exc}"
                ) from exc
        client.reconnect_delay_set(1, self.settings.mqtt_reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- paho callbacks: these run in paho's network thread --------------------

    def _call_in_loop(self, callback: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop closed between the check and the call, during shutdown.
            pass

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._call_in_loop(self._connect_rejected, str(reason_code))
            return
        # Subscribe on every connect: a broker that restarted without persistence
        # has forgotten the session and its subscriptions.
        client.subscribe(
            [
                (subscription(Kind.MOVEMENT, site=self.site_id), 1),
                (subscription(Kind.STATUS, site=self.site_id), 1),
            ]
        )
        self._call_in_loop(self._link_up, bool(flags.session_present))

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._call_in_loop(self._link_failed)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        self._call_in_loop(self._link_down, str(reason_code))

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Any,
    ) -> None:
        rejected_codes = [str(code) for code in reason_codes if code.is_failure]
        self._call_in_loop(self._subscription_result, rejected_codes)

    def _on_message(
        self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            name = message.topic
        except UnicodeDecodeError:
            # MQTT 3.1.1 section 1.5.3 requires UTF-8 topics; keep the message anyway
            # so that it is rejected visibly instead of vanishing.
            name = bytes(message._topic).decode("utf-8", errors="replace")
        inbound = _Inbound(
            topic=name, payload=bytes(message.payload), received_at=self._clock()
        )
        self._arrivals.append(inbound)
        with self._arrivals_lock:
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        self._call_in_loop(self._take_arrivals)

    def _take_arrivals(self) -> None:
        # Runs in the loop. The flag is cleared before draining, so a message
        # appended during the drain either is drained now or schedules a new wake-up.
        with self._arrivals_lock:
            self._wakeup_pending = False
        while self._arrivals:
            self._inbox.put_nowait(self._arrivals.popleft())

    # -- connection state: these run in the asyncio loop -----------------------

    def _link_up(self, session_present: bool) -> None:
        self.connected = True
        self.connected_since = self._clock()
        self._connect_fail_logged = False
        if self._lost_at is not None:
            logger.info(
                "hub %s: reconnected to broker %s after %.1f s (session kept: %s)",
                self.client_id,
                self.broker_url,
                self._monotonic() - self._lost_at,
                session_present,
            )
            self._lost_at = None
        elif not self._ever_connected:
            logger.info(
                "hub %s: connected to broker %s (session kept: %s)",
                self.client_id,
                self.broker_url,
                session_present,
            )
        self._ever_connected = True

    def _link_down(self, reason: str) -> None:
        was_connected = self.connected
        self.connected = False
        self.connected_since = None
        self._subscribed.clear()
        if not was_connected or self._client is None:
            # Not connected before, or stop() is disconnecting on purpose.
            return
        self.disconnects += 1
        self._lost_at = self._monotonic()
        logger.error(
            "hub %s: lost connection to broker %s (%s); reconnecting",
            self.client_id,
            self.broker_url,
            reason,
        )

    def _link_failed(self) -> None:
        if self._connect_fail_logged:
            return
        self._connect_fail_logged = True
        if self._lost_at is None:
            logger.error(
                "hub %s: cannot reach broker %s; retrying every %d s at most",
                self.client_id,
                self.broker_url,
                self.settings.mqtt_reconnect_max_s,
            )

    def _connect_rejected(self, reason: str) -> None:
        if self._connect_fail_logged:
            return
        self._connect_fail_logged = True
        logger.error(
            "hub %s: broker %s rejected the connection: %s; check the MQTT user and "
            "password",
            self.client_id,
            self.broker_url,
            reason,
        )

    def _subscription_result(self, rejected_codes: list[str]) -> None:
        if rejected_codes:
            logger.error(
                "hub %s: broker %s rejected the subscriptions of site %s: %s",
                self.client_id,
                self.broker_url,
                self.site_id,
                ", ".join(rejected_codes),
            )
            return
        self._subscribed.set()

    async def wait_subscribed(self, timeout_s: float = 10.0) -> None:
        """Wait until the broker granted the subscriptions, or raise TimeoutError."""
        await asyncio.wait_for(self._subscribed.wait(), timeout_s)

    # -- batches ---------------------------------------------------------------

    def _drain(self, limit: int | None = None) -> list[_Inbound]:
        items: list[_Inbound] = []
        while limit is None or len(items) < limit:
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is _STOP:
                self._stop_requested = True
                continue
            assert isinstance(item, _Inbound)
            items.append(item)
        return items

    async def _next_batch(self) -> list[_Inbound]:
        first = await self._inbox.get()
        if first is _STOP:
            self._stop_requested = True
            return self._drain()
        assert isinstance(first, _Inbound)
        batch = [first]
        limit = self.settings.ack_batch_max
        batch += self._drain(limit - len(batch))
        if (
            len(batch) < limit
            and self.settings.ack_flush_ms > 0
            and not self._stop_requested
        ):
            await asyncio.sleep(self.settings.ack_flush_ms / 1000)
            batch += self._drain(limit - len(batch))
        return batch

    async def _run(self) -> None:
        # Batch N is committed in a task while batch N+1 is collected and checked,
        # so the database's write time overlaps with parsing. Commits stay in order
        # because each one waits for the previous one.
        self._stop_requested = False
        committing: asyncio.Task[None] | None = None
        while not self._stop_requested:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                accepted, rejected = self._check_batch(batch)
            except Exception:
                self._log_batch_failure(len(batch))
                continue
            if committing is not None:
                await committing
            committing = asyncio.create_task(self._commit_safely(accepted, rejected))
        if committing is not None:
            await committing

    def _log_batch_failure(self, size: int) -> None:
        # A bug in one batch must not end ingest for good. Its movements are not
        # confirmed, so the edge sends them again.
        logger.exception(
            "hub %s: processing a batch of %d messages failed", self.client_id, size
        )

    async def _process(self, batch: list[_Inbound]) -> None:
        accepted, rejected = self._check_batch(batch)
        await self._commit(accepted, rejected)

    def _check_batch(
        self, batch: list[_Inbound]
    ) -> tuple[list[_Accepted], list[_Rejected]]:
        accepted: list[_Accepted] = []
        rejected: list[_Rejected] = []
        for inbound in batch:
            try:
                outcome = self._classify(inbound)
            except Exception as exc:
                # One message that trips a bug must not take its batch with it:
                # it is dead-lettered alone and the others are stored.
                logger.exception(
                    "hub %s: checking a message on %s failed", self.client_id, inbound.topic
                )
                detail = f"{type(exc).__name__} while checking the message: {exc}"
                outcome = _Rejected(
                    inbound, None, None, Rejection("internal_error", detail[:500])
                )
            if isinstance(outcome, _Accepted):
                accepted.append(outcome)
            elif isinstance(outcome, _Rejected):
                rejected.append(outcome)
        return accepted, rejected

    async def _commit_safely(
        self, accepted: list[_Accepted], rejected: list[_Rejected]
    ) -> None:
        try:
            await self._commit(accepted, rejected)
        except Exception:
            self._log_batch_failure(len(accepted) + len(rejected))

    async def _commit(
        self, accepted: list[_Accepted], rejected: list[_Rejected]
    ) -> None:
        """Store a checked batch, count it, confirm it, and wake `wait_stored`."""
        stored = await self._store(accepted, rejected)
        self.counters.batches += 1
        for item in rejected:
            self._count_rejection(item)
        self._confirm(stored, rejected)

        done, self._batch_done = self._batch_done, asyncio.Event()
        done.set()

    def _classify(self, inbound: _Inbound) -> _Accepted | _Rejected | None:
        try:
            site, portal, kind = parse_topic(inbound.topic)
        except TopicError as exc:
            return _Rejected(inbound, None, None, Rejection("invalid_topic", str(exc)))
        if kind is Kind.STATUS:
            self.counters.status_received += 1
            rejection = self._apply_status(inbound, site, portal)
            return (
                None
                if rejection is None
                else _Rejected(inbound, site, portal, rejection)
            )
        if kind is not Kind.MOVEMENT:
            detail = f"topic {inbound.topic!r} is not a movement or status topic"
            return _Rejected(inbound, site, portal, Rejection("invalid_topic", detail))

        self.counters.received += 1
        outcome = self._check_movement(inbound, site, portal)
        if isinstance(outcome, Rejection):
            return _Rejected(inbound, site, portal, outcome)
        return _Accepted(inbound, site, portal, outcome)

    def _check_address(
        self,
        payload: dict[str, Any],
        inbound: _Inbound,
        topic_site: str,
        topic_portal: str,
    ) -> Rejection | Portal:
        event_id = payload.get("event_id")
        site_id, portal_id = payload["site"], payload["portal"]
        if site_id != self.site_id:
            detail = f"site {site_id!r} is not this hub's site {self.site_id!r}"
            return Rejection("unknown_site", detail, event_id)
        portal = self._portals.get(portal_id)
        if portal is None:
            detail = (
                f"portal {portal_id!r} is not in the site file of site {self.site_id!r}"
            )
            return Rejection("unknown_portal", detail, event_id)
        if (site_id, portal_id) != (topic_site, topic_portal):
            detail = (
                f"payload names site {site_id!r} and portal {portal_id!r} but came on "
                f"topic {inbound.topic!r}"
            )
            return Rejection("topic_mismatch", detail, event_id)
        return portal

    def _check_movement(
        self, inbound: _Inbound, topic_site: str, topic_portal: str
    ) -> NewMovement | Rejection:
        """Validate one movement message against the schema, the topic and the site file."""
        raw = inbound.payload
        try:
            payload = decode_payload(Kind.MOVEMENT, raw)
        except PayloadError as exc:
            return Rejection(
                _payload_error_code(exc), str(exc), _readable_event_id(raw)
            )

        event_id: str = payload["event_id"]
        portal = self._check_address(payload, inbound, topic_site, topic_portal)
        if isinstance(portal, Rejection):
            return portal
        if payload["portal_kind"] != portal.kind.value:
            detail = (
                f"portal {portal.id!r} is a {portal.kind.value} in the site file, but the "
                f"payload says {payload['portal_kind']}"
            )
            return Rejection("portal_kind_mismatch", detail, event_id)
        try:
            return prepare_movement(payload, inbound.received_at)
        except InvalidMovement as exc:
            return Rejection("invalid_movement", str(exc), event_id)

    def _apply_status(
        self, inbound: _Inbound, site: str, portal: str
    ) -> Rejection | None:
        if not inbound.payload:
            # An empty retained message deletes the retained status (MQTT 3.1.1
            # section 3.3.1.3); the portal simply has no status any more.
            self.statuses.pop(portal, None)
            return None
        try:
            payload = decode_payload(Kind.STATUS, inbound.payload)
        except PayloadError as exc:
            return Rejection(_payload_error_code(exc), str(exc))
        address = self._check_address(payload, inbound, site, portal)
        if isinstance(address, Rejection):
            return address
        self.statuses[portal] = PortalStatus(
            payload=payload, received_at=inbound.received_at
        )
        return None

    # -- storage ---------------------------------------------------------------

    def _dead_letter(self, item: _Rejected) -> NewDeadLetter:
        raw = item.inbound.payload
        limit = self.settings.dead_letter_max_bytes
        text = raw[:limit].decode("utf-8", errors="replace")
        return NewDeadLetter(
            received_at=item.inbound.received_at,
            # PostgreSQL text cannot hold U+0000, and a garbage payload may contain it.
            topic=item.inbound.topic.replace("\x00", "\ufffd"),
            payload=text.replace("\x00", "\ufffd"),
            payload_truncated=len(raw) > limit,
            reason=item.rejection.reason.replace("\x00", "\ufffd"),
            event_id=item.rejection.event_id,
            site=_topic_id(item.site),
            portal=_topic_id(item.portal),
        )

    async def _store(
        self, accepted: list[_Accepted], rejected: list[_Rejected]
    ) -> list[_Accepted]:
        """Store a batch in one transaction; return the movements that are stored now.

        A failed batch is retried message by message. A movement that the database
        rejects on its own becomes a rejection. When the database itself is
        unavailable, the rest stays unconfirmed, so the edge sends it again.
        """
        try:
            async with self.db.transaction() as session:
                inserted = await store_movements(
                    session, [a.movement for a in accepted]
                )
                await store_dead_letters(
                    session, [self._dead_letter(r) for r in rejected]
                )
        except StorageError as exc:
            self.counters.storage_errors += 1
            self._storage_log.warn(
                "batch",
                "hub %s: storing a batch of %d messages failed, retrying one by one: %s",
                self.client_id,
                len(accepted) + len(rejected),
                exc,
            )
            return await self._store_one_by_one(accepted, rejected)
        self._count_stored(accepted, inserted)
        return accepted

    async def _store_one_by_one(
        self, accepted: list[_Accepted], rejected: list[_Rejected]
    ) -> list[_Accepted]:
        stored: list[_Accepted] = []
        failed: list[_Rejected] = []
        for item in accepted:
            try:
                async with self.db.transaction() as session:
                    inserted = await store_movements(session, [item.movement])
            except StorageError as exc:
                if not _is_data_error(exc):
                    return stored
                detail = f"the database rejected the movement: {exc.__cause__}"
                rejection = Rejection("storage", detail, item.movement.event_id)
                failed.append(
                    _Rejected(item.inbound, item.site, item.portal, rejection)
                )
                continue
            self._count_stored([item], inserted)
            stored.append(item)
        rejected.extend(failed)
        try:
            async with self.db.transaction() as session:
                await store_dead_letters(
                    session, [self._dead_letter(r) for r in rejected]
                )
        except StorageError as exc:
            self.counters.storage_errors += 1
            logger.error(
                "hub %s: could not store %d dead letters: %s",
                self.client_id,
                len(rejected),
                exc,
            )
        return stored

    def _count_stored(
        self, accepted: list[_Accepted], inserted: dict[str, int]
    ) -> None:
        new = len(inserted)
        self.counters.stored += new
        self.counters.duplicates += len(accepted) - new

    def _count_rejection(self, item: _Rejected) -> None:
        code = item.rejection.code
        self.counters.rejected[code] += 1
        self._reject_log.warn(
            code,
            "portal %s: rejected message on topic %s: %s",
            item.portal or "?",
            item.inbound.topic,
            item.rejection.reason,
        )

    # -- confirmations ---------------------------------------------------------

    def _confirm(self, stored: list[_Accepted], rejected: list[_Rejected]) -> None:
        by_portal: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for item in stored:
            acks = by_portal.setdefault((item.site, item.portal), {})
            acks[item.movement.event_id] = {
                "event_id": item.movement.event_id,
                "status": "stored",
                "reason": None,
            }
        for rejected_item in rejected:
            event_id = rejected_item.rejection.event_id
            site, portal = (
                _topic_id(rejected_item.site),
                _topic_id(rejected_item.portal),
            )
            if event_id is None or site is None or portal is None:
                continue
            if rejected_item.inbound.topic != topic(site, portal, Kind.MOVEMENT):
                continue
            acks = by_portal.setdefault((site, portal), {})
            acks.setdefault(
                event_id,
                {
                    "event_id": event_id,
                    "status": "rejected",
                    "reason": rejected_item.rejection.reason[:ACK_REASON_MAX],
                },
            )
        for (site, portal), acks in by_portal.items():
            self._publish_ack(site, portal, list(acks.values()))

    def _publish_ack(self, site: str, portal: str, acks: list[dict[str, Any]]) -> None:
        client = self._client
        if client is None:
            return
        payload = {"schema": "bwms.ack/1", "site": site, "portal": portal, "acks": acks}
        try:
            validate(Kind.ACK, payload)
            name = topic(site, portal, Kind.ACK)
        except (PayloadError, TopicError) as exc:
            logger.error("portal %s: cannot build a confirmation: %s", portal, exc)
            return
        # paho queues the message while the link is down and sends it on reconnect.
        client.publish(name, encode(payload), qos=1)
        self.counters.acks_sent += len(acks)

    # -- waiting ---------------------------------------------------------------

    async def wait_stored(
        self, target: int | Iterable[str], timeout_s: float = 10.0
    ) -> None:
        """Wait until movements are stored, or raise TimeoutError naming what is missing.

        `target` is either a set of event_ids that must all be stored, or a number
        of movements that the database must hold in total.
        """
        expected: int | set[str] = target if isinstance(target, int) else set(target)
        deadline = self._monotonic() + timeout_s
        while True:
            batch_done = self._batch_done
            missing = await self._missing(expected)
            if not missing:
                return
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                raise TimeoutError(f"after {timeout_s} s, still missing: {missing}")
            try:
                await asyncio.wait_for(batch_done.wait(), remaining)
            except TimeoutError:
                continue

    async def _missing(self, expected: int | set[str]) -> str:
        async with self.db.session() as session:
            if isinstance(expected, int):
                count = await count_movements(session)
                if count >= expected:
                    return ""
                return f"{expected - count} of {expected} movements"
            found = await stored_event_ids(session, expected)
        absent = sorted(expected - found)
        if not absent:
            return ""
        listed = ", ".join(absent[:10])
        return (
            f"{len(absent)} event ids ({listed}{', ...' if len(absent) > 10 else ''})"
        )


def _is_data_error(exc: StorageError) -> bool:
    """Return whether the database rejected the data itself, rather than being down."""
    return isinstance(exc.__cause__, (DataError, IntegrityError))
