"""MQTT uplink of one portal: movements from the outbox to the hub, acks back.

paho-mqtt runs its network loop in its own thread (`loop_start`) and reconnects by
itself. Its callbacks only hand events over to the asyncio loop with
`call_soon_threadsafe`, so the outbox and the counters are touched from one thread.

Delivery: movements are published at QoS 1 in seq order, only while connected
and only from the outbox. A movement leaves the outbox when the hub's ack names
it, because a PUBACK confirms only that the broker has it. At most
`inflight_window` movements are published and unconfirmed at a time, which keeps
the broker's queue for an absent hub below Mosquitto's per-client limit
(`max_queued_messages`, 1000 by default in Mosquitto 2.0, see mosquitto.conf(5)).
An unconfirmed movement is published again after `ack_timeout_s`, then after waits
that grow by `resend_backoff_factor` up to `resend_backoff_max_s`, and at once
after every reconnect. The hub deduplicates by `event_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from bwms.contract import (
    SCHEMA_IDS,
    Kind,
    PayloadError,
    decode,
    encode,
    format_time_us,
    topic,
    validate,
)
from edge.outbox import Outbox, OutboxError, OutboxItem, QuotaState
from edge.settings import MqttSettings

logger = logging.getLogger(__name__)

# Severity order of the status states an edge daemon reports while connected.
_SEVERITY = {"online": 0, "degraded": 1, "critical": 2}

# Device states that mean a device is not working (bwms.status/1 `devices`).
_DEVICE_DOWN_STATES = {"connecting", "lost"}

# Wait after an outbox error before the sender tries again.
_OUTBOX_RETRY_S = 1.0

# Minimum interval between two warnings about ignored ack messages.
_BAD_ACK_LOG_INTERVAL_S = 60.0


class UplinkError(Exception):
    """The uplink cannot be set up: bad TLS files, topic or broker address."""


class ResendSchedule:
    """When each movement in the window is next due to be published.

    A movement never published in this connection is due at once. After its
    n-th publish it is due again after min(ack_timeout_s * factor ** (n - 1),
    max_s) seconds. Times are whatever clock the caller passes as `now`.
    """

    def __init__(self, *, ack_timeout_s: float, factor: float, max_s: float) -> None:
        self.ack_timeout_s = ack_timeout_s
        self.factor = factor
        self.max_s = max_s
        self._due: dict[str, float] = {}

    def delay_s(self, attempts: int) -> float:
        """Return the wait after the `attempts`-th publish of a movement."""
        # The exponent is capped so that many attempts cannot overflow a float.
        exponent = min(max(attempts - 1, 0), 64)
        return min(self.ack_timeout_s * self.factor**exponent, self.max_s)

    def is_due(self, event_id: str, now: float) -> bool:
        due = self._due.get(event_id)
        return due is None or due <= now

    def sent(self, event_id: str, attempts: int, now: float) -> None:
        """Record the `attempts`-th publish of a movement at `now`."""
        self._due[event_id] = now + self.delay_s(attempts)

    def forget(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self._due.pop(event_id, None)

    def reset(self) -> None:
        """Make every movement due at once, as after a reconnect."""
        self._due.clear()

    def next_due(
        self, exclude: set[str] | frozenset[str] = frozenset()
    ) -> float | None:
        """Return the earliest due time among movements not in `exclude`."""
        times = [due for event_id, due in self._due.items() if event_id not in exclude]
        return min(times, default=None)

    def __len__(self) -> int:
        return len(self._due)


class _ThrottledLog:
    """Log one line per interval and count the lines held back in between."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._held_back = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            self._held_back += 1
            return
        if self._held_back:
            message += " (%d similar messages held back)"
            args = (*args, self._held_back)
        logger.warning(message, *args)
        self._last = now
        self._held_back = 0


class Uplink:
    """Publishes one portal's movements and status, and applies the hub's acks."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        site_id: str,
        portal_id: str,
        outbox: Outbox,
        status: Callable[[], dict[str, Any]],
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._site_id = site_id
        self._portal_id = portal_id
        self._outbox = outbox
        self._status_part = status
        self._client_id = (
            client_id or settings.client_id or f"bwms-edge-{site_id}-{portal_id}"
        )

        self._movement_topic = topic(site_id, portal_id, Kind.MOVEMENT)
        self._ack_topic = topic(site_id, portal_id, Kind.ACK)
        self._status_topic = topic(site_id, portal_id, Kind.STATUS)

        self.connected = False
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "published",
                "resent",
                "publish_errors",
                "invalid_movements",
                "acks_stored",
                "acks_rejected",
                "acks_unknown",
                "ack_bad_payloads",
                "ack_foreign",
                "connects",
                "disconnects",
                "connect_failures",
                "notices_published",
                "notices_dropped",
                "status_published",
                "status_errors",
                "outbox_errors",
                "inflight",
                "inflight_peak",
            ),
            0,
        )

        self._schedule = ResendSchedule(
            ack_timeout_s=settings.ack_timeout_s,
            factor=settings.resend_backoff_factor,
            max_s=settings.resend_backoff_max_s,
        )
        # Movements whose latest publish still waits for its PUBACK, by paho mid.
        self._awaiting_puback: dict[int, str] = {}
        self._ack_messages: deque[bytes] = deque()
        self._bad_ack_log = _ThrottledLog(_BAD_ACK_LOG_INTERVAL_S, time.monotonic)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._stopping = False

        self._down_since: float | None = None  # monotonic time the outage began
        self._failures_in_outage = 0
        self._announce_online = False
        self._last_status_key: str | None = None
        self._next_status_at = 0.0

    # Public interface

    async def run(self) -> None:
        """Connect, then publish and apply acks until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        # A new client holds none of the messages an earlier run handed to paho.
        self._awaiting_puback.clear()
        self._schedule.reset()
        client = self._make_client()
        self._client = client
        try:
            client.connect_async(
                self._settings.host, self._settings.port, self._settings.keepalive_s
            )
        except (ValueError, OSError) as exc:
            raise UplinkError(
                f"invalid broker address {self._settings.url}: {exc}"
            ) from exc

        # The first connect runs in paho's thread, so a broker that is down at
        # start does not block the event loop. paho retries it like a reconnect.
        client.loop_start()
        logger.info(
            "%s: uplink connecting to %s as %s",
            self._portal_id,
            self._settings.url,
            self._client_id,
        )
        try:
            while True:
                self._wake.clear()
                try:
                    await self._cycle()
                except OutboxError as exc:
                    self.counters["outbox_errors"] += 1
                    logger.error(
                        "%s: outbox failed, retrying: %s", self._portal_id, exc
                    )
                    await asyncio.sleep(_OUTBOX_RETRY_S)
                    continue
                await self._wait()
        finally:
            await self._shutdown(client)

    def notify(self) -> None:
        """Wake the sender because movements were added. Call from the event loop."""
        self._wake.set()

    def publish_now(self, topic_name: str, payload: bytes, qos: int = 0) -> None:
        """Publish a best-effort message such as a crossing notice.

        Nothing is queued: while offline the message is dropped and counted.
        """
        client = self._client
        if client is None or not self.connected:
            self.counters["notices_dropped"] += 1
            return
        try:
            info = client.publish(topic_name, payload, qos=qos)
        except ValueError as exc:
            raise UplinkError(f"invalid topic {topic_name!r}: {exc}") from exc
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.counters["notices_published"] += 1
        else:
            self.counters["notices_dropped"] += 1

    async def publish_status(self) -> None:
        """Publish the retained bwms.status/1 message of this portal.

        An invalid status is logged and counted, and not published. While
        offline nothing is sent; the next connect publishes a fresh status.
        """
        payload = self._build_status(state=None)
        try:
            validate(Kind.STATUS, payload)
        except PayloadError as exc:
            self.counters["status_errors"] += 1
            logger.error(
                "%s: status not published, it is invalid: %s", self._portal_id, exc
            )
            return

        self._last_status_key = _status_key(payload)
        self._next_status_at = time.monotonic() + self._settings.status_interval_s
        client = self._client
        if client is None or not self.connected:
            return
        client.publish(self._status_topic, encode(payload), qos=1, retain=True)
        self.counters["status_published"] += 1

    # The asyncio side

    async def _cycle(self) -> None:
        await self._apply_acks()
        if not self.connected:
            return

        if self._announce_online:
            self._announce_online = False
            await self.publish_status()
        await self._send_due()

        status = self._build_status(state=None)
        due = time.monotonic() >= self._next_status_at
        if due or _status_key(status) != self._last_status_key:
            await self.publish_status()

    async def _wait(self) -> None:
        now = time.monotonic()
        wake_at = self._next_status_at if self.connected else now + 60.0
        resend_at = self._schedule.next_due(exclude=set(self._awaiting_puback.values()))
        if self.connected and resend_at is not None:
            wake_at = min(wake_at, resend_at)
        # asyncio.timeout rather than wait_for: on Python 3.11, wait_for returns
        # normally when a cancel and the wake-up arrive together, so the uplink
        # would miss its cancellation and keep running.
        try:
            async with asyncio.timeout(max(wake_at - now, 0.0)):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _send_due(self) -> None:
        client = self._client
        assert client is not None
        window = await self._outbox.unconfirmed(self._settings.inflight_window)
        now = time.monotonic()
        waiting = set(self._awaiting_puback.values())
        sent: list[str] = []
        invalid: list[tuple[str, str]] = []
        for item in window:
            if item.event_id in waiting or not self._schedule.is_due(
                item.event_id, now
            ):
                continue
            if item.attempts == 0:
                problem = self._check_movement(item)
                if problem is not None:
                    invalid.append((item.event_id, problem))
                    continue
            if not self.connected or not self._publish_movement(client, item):
                break
            self._schedule.sent(item.event_id, item.attempts + 1, now)
            sent.append(item.event_id)

        await self._outbox.mark_sent(sent, time.time())
        if invalid:
            await self._outbox.reject(invalid)
            self._schedule.forget(event_id for event_id, _ in invalid)

        published = set(sent)
        inflight = sum(
            1 for item in window if item.attempts > 0 or item.event_id in published
        )
        self.counters["inflight"] = inflight
        self.counters["inflight_peak"] = max(self.counters["inflight_peak"], inflight)

    def _publish_movement(self, client: mqtt.Client, item: OutboxItem) -> bool:
        """Hand one movement to paho; return False when the link is gone."""
        info = client.publish(self._movement_topic, item.data, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # The link dropped after the last check. paho keeps the message for
            # the next connect, but the connect handler discards it and the
            # outbox sends it again in order.
            self.counters["publish_errors"] += 1
            logger.debug(
                "%s: publish of %s returned %s",
                self._portal_id,
                item.event_id,
                mqtt.error_string(info.rc),
            )
            return False
        self._awaiting_puback[info.mid] = item.event_id
        self.counters["published" if item.attempts == 0 else "resent"] += 1
        return True

    def _check_movement(self, item: OutboxItem) -> str | None:
        """Validate a movement before its first publish; return the problem or None."""
        try:
            payload = decode(Kind.MOVEMENT, item.data)
        except PayloadError as exc:
            problem = str(exc)
        else:
            if (payload["site"], payload["portal"]) == (self._site_id, self._portal_id):
                return None
            problem = (
                f"movement is for site {payload['site']} portal {payload['portal']}, "
                f"not this uplink's {self._site_id}/{self._portal_id}"
            )
        # An invalid movement is a programming error: it stays off the wire, and
        # the outbox keeps its payload and the reason among the rejected ones.
        self.counters["invalid_movements"] += 1
        logger.error(
            "%s: movement %s (seq %d) not published: %s",
            self._portal_id,
            item.event_id,
            item.seq,
            problem,
        )
        return f"invalid movement: {problem}"

    async def _apply_acks(self) -> None:
        stored: list[str] = []
        rejected: dict[str, str] = {}
        while self._ack_messages:
            raw = self._ack_messages.popleft()
            acks = self._parse_ack(raw)
            for ack in acks:
                if ack["status"] == "stored":
                    stored.append(ack["event_id"])
                else:
                    rejected[ack["event_id"]] = ack["reason"] or "no reason given"

        if stored:
            unique = set(stored)
            confirmed = await self._outbox.confirm(unique)
            self.counters["acks_stored"] += confirmed
            self.counters["acks_unknown"] += len(unique) - confirmed
            self._schedule.forget(unique)
        if rejected:
            removed = await self._outbox.reject(list(rejected.items()))
            self.counters["acks_rejected"] += removed
            self.counters["acks_unknown"] += len(rejected) - removed
            self._schedule.forget(rejected)
            for event_id, reason in rejected.items():
                logger.warning(
                    "%s: hub rejected movement %s: %s",
                    self._portal_id,
                    event_id,
                    reason,
                )

    def _parse_ack(self, raw: bytes) -> list[dict[str, Any]]:
        """Return the acks of one message, or [] for a message that is not ours."""
        try:
            message = decode(Kind.ACK, raw)
        except PayloadError as exc:
            self.counters["ack_bad_payloads"] += 1
            self._bad_ack_log.warning(
                "%s: ignored an invalid message on %s: %s",
                self._portal_id,
                self._ack_topic,
                exc,
            )
            return []
        if (message["site"], message["portal"]) != (self._site_id, self._portal_id):
            self.counters["ack_foreign"] += 1
            self._bad_ack_log.warning(
                "%s: ignored an ack for site %s portal %s on %s",
                self._portal_id,
                message["site"],
                message["portal"],
                self._ack_topic,
            )
            return []
        acks: list[dict[str, Any]] = message["acks"]
        return acks

    def _build_status(self, state: str | None) -> dict[str, Any]:
        try:
            part = self._status_part()
        except Exception:
            # The status source belongs to the daemon. A bug there must not stop
            # movements from flowing, so the status carries the uplink's own part.
            self.counters["status_errors"] += 1
            logger.exception("%s: status source failed", self._portal_id)
            part = {}

        payload: dict[str, Any] = {
            "schema": SCHEMA_IDS[Kind.STATUS],
            "site": self._site_id,
            "portal": self._portal_id,
            "state": state or self._derive_state(part),
            "at": _now_rfc3339(),
        }
        if part.get("devices") is not None:
            payload["devices"] = part["devices"]
        payload["outbox"] = part.get("outbox") or self._outbox.status()
        counters = dict(part.get("counters") or {})
        counters.update(
            {f"mqtt_{name}": value for name, value in self.counters.items()}
        )
        payload["counters"] = counters
        return payload

    def _derive_state(self, part: dict[str, Any]) -> str:
        state = "online"
        if self._outbox.quota_state is QuotaState.FULL:
            state = "critical"
        elif self._outbox.quota_state is QuotaState.HIGH:
            state = "degraded"
        devices = part.get("devices") or {}
        if any(d.get("state") in _DEVICE_DOWN_STATES for d in devices.values()):
            state = _worse(state, "degraded")
        reported = part.get("state")
        if reported in _SEVERITY:
            state = _worse(state, reported)
        return state

    # paho side: these run in paho's thread and only hand over to the event loop.

    def _make_client(self) -> mqtt.Client:
        settings = self._settings
        # MQTT 3.1.1 with a clean session: the ack subscription is renewed on
        # every connect, and acks missed while offline are made up by resends.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if settings.tls:
            self._set_tls(client)
        if settings.username is not None:
            password = (
                settings.password.get_secret_value() if settings.password else None
            )
            client.username_pw_set(settings.username, password)

        # paho's type hints declare int, but its backoff arithmetic works on floats.
        client.reconnect_delay_set(
            min_delay=settings.reconnect_min_s,  # type: ignore[arg-type]
            max_delay=settings.reconnect_max_s,  # type: ignore[arg-type]
        )
        client.max_inflight_messages_set(settings.inflight_window)
        client.on_pre_connect = self._paho_pre_connect
        client.on_connect = self._paho_connect
        client.on_connect_fail = self._paho_connect_fail
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        return client

    def _set_tls(self, client: mqtt.Client) -> None:
        # NOTE: no test runs the uplink against a TLS listener yet; the mqtts path
        # is checked only up to its settings.
        settings = self._settings
        try:
            client.tls_set(
                ca_certs=str(settings.tls_ca_file) if settings.tls_ca_file else None,
                certfile=str(settings.tls_cert_file)
                if settings.tls_cert_file
                else None,
                keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
                cert_reqs=ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
            )
            if not settings.tls_verify:
                client.tls_insecure_set(True)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UplinkError(
                f"failed to set up TLS for {settings.url}: {exc}; check tls_ca_file, "
                "tls_cert_file and tls_key_file"
            ) from exc
        if not settings.tls_verify:
            logger.warning(
                "%s: TLS certificate verification is off for %s",
                self._portal_id,
                settings.url,
            )

    def _hand_over(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or self._stopping:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The event loop is closed: the uplink is shutting down.
            pass

    def _paho_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        # MQTT 3.1.1 §3.1.2.5: the broker publishes the will when the connection
        # ends without a DISCONNECT packet. It is set anew before each attempt so
        # its `at` is the time of the connect it belongs to.
        offline = {
            "schema": SCHEMA_IDS[Kind.STATUS],
            "site": self._site_id,
            "portal": self._portal_id,
            "state": "offline",
            "at": _now_rfc3339(),
        }
        client.will_set(self._status_topic, encode(offline), qos=1, retain=True)

    def _paho_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._hand_over(self._on_refused, str(reason_code))
            return
        _discard_paho_resends(client)
        client.subscribe(self._ack_topic, qos=1)
        self._hand_over(self._on_connected)

    def _paho_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._hand_over(self._on_connect_failed)

    def _paho_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._hand_over(self._on_disconnected, str(reason_code))

    def _paho_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        self._hand_over(self._on_ack_message, bytes(message.payload))

    def _paho_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._hand_over(self._on_puback, mid)

    # Handlers on the event loop, called via _hand_over

    def _on_connected(self) -> None:
        self.connected = True
        self.counters["connects"] += 1
        # The connect handler in paho's thread dropped whatever paho still held,
        # so every unconfirmed movement in the window is sent again now.
        self._awaiting_puback.clear()
        self._schedule.reset()
        self._announce_online = True
        if self._down_since is None:
            logger.info("%s: connected to %s", self._portal_id, self._settings.url)
        else:
            logger.info(
                "%s: connection to %s restored after %.1f s and %d failed attempts",
                self._portal_id,
                self._settings.url,
                time.monotonic() - self._down_since,
                self._failures_in_outage,
            )
        self._down_since = None
        self._failures_in_outage = 0
        self._wake.set()

    def _on_disconnected(self, reason: str) -> None:
        was_connected = self.connected
        self.connected = False
        if was_connected:
            self.counters["disconnects"] += 1
        self._begin_outage(
            "%s: connection to %s lost (%s); movements stay in the outbox while "
            "reconnecting",
            self._portal_id,
            self._settings.url,
            reason,
        )

    def _on_connect_failed(self) -> None:
        self.counters["connect_failures"] += 1
        self._failures_in_outage += 1
        self._begin_outage(
            "%s: failed to connect to %s, retrying with waits of up to %g s",
            self._portal_id,
            self._settings.url,
            self._settings.reconnect_max_s,
        )

    def _on_refused(self, reason: str) -> None:
        self.counters["connect_failures"] += 1
        self._failures_in_outage += 1
        # A refusal (bad credentials, say) is logged as an error once per outage;
        # retrying will not fix it without a change on one side.
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error(
                "%s: broker %s refused the connection: %s",
                self._portal_id,
                self._settings.url,
                reason,
            )

    def _begin_outage(self, message: str, *args: object) -> None:
        """Log the start of an outage once; later failures in it are only counted."""
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        logger.warning(message, *args)

    def _on_ack_message(self, raw: bytes) -> None:
        self._ack_messages.append(raw)
        self._wake.set()

    def _on_puback(self, mid: int) -> None:
        if self._awaiting_puback.pop(mid, None) is not None:
            self._wake.set()

    async def _shutdown(self, client: mqtt.Client) -> None:
        # MQTT 3.1.1 §3.14.4: a clean DISCONNECT discards the will, so the
        # offline status is published explicitly before leaving.
        if self.connected:
            payload = self._build_status(state="offline")
            payload.pop("devices", None)
            try:
                info = client.publish(
                    self._status_topic, encode(payload), qos=1, retain=True
                )
                await asyncio.to_thread(
                    info.wait_for_publish, self._settings.shutdown_timeout_s
                )
            except (RuntimeError, ValueError) as exc:
                logger.warning(
                    "%s: offline status not published: %s", self._portal_id, exc
                )
        self._stopping = True
        self.connected = False
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None
        logger.info("%s: uplink stopped", self._portal_id)


def _discard_paho_resends(client: mqtt.Client) -> None:
    """Drop the QoS 1 messages paho still keeps from the previous connection.

    paho 2.x sends them again right after CONNACK, even with a clean session, and
    before anything this module publishes. The outbox sends every unconfirmed
    movement again anyway, in seq order, so paho's copies would only arrive
    twice and ahead of older movements.
    NOTE: paho has no public call for this; it relies on the private
    `_out_messages` and `_out_message_mutex` of paho-mqtt 2.x. Without them the
    resends are kept, which costs duplicates but loses nothing.
    """
    messages = getattr(client, "_out_messages", None)
    mutex = getattr(client, "_out_message_mutex", None)
    if messages is None or mutex is None:
        logger.debug("paho has no _out_messages; its own resends are kept")
        return
    with mutex:
        messages.clear()
        client._inflight_messages = 0


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def _status_key(payload: dict[str, Any]) -> str:
    """Return what makes a status worth publishing at once when it changes."""
    return json.dumps([payload["state"], payload.get("devices")], sort_keys=True)


def _now_rfc3339() -> str:
    return format_time_us(time.time_ns() // 1000)
