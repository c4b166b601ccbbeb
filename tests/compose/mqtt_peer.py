"""A blocking paho client for broker access tests: connect, subscribe, publish, collect.

Every wait is bounded and blocks the calling thread, so tests against the amqtt
backend, which runs on the test's own event loop, call these methods through
`asyncio.to_thread`.
"""

from __future__ import annotations

import queue
import socket
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT_S = 5.0
# SUBACK return code of a rejected subscription (MQTT 3.1.1 §3.9.3).
SUBACK_FAILURE = 0x80


class PeerError(AssertionError):
    """The broker did not acknowledge a peer's packet in time."""


class Peer:
    """One MQTT 3.1.1 client with a user name, collecting every message it receives."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        *,
        will_topic: str | None = None,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"peer-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
        )
        # paho reconnects by itself after the broker closes the connection, and
        # loop_stop() waits out the reconnect delay, so keep the delay short.
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
        if username is not None:
            self.client.username_pw_set(username, password)
        if will_topic is not None:
            self.client.will_set(will_topic, b"offline", qos=1, retain=True)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.reason_code: int | None = None
        self._connack = threading.Event()
        self._closed = threading.Event()
        self._subacks: dict[int, list[int]] = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def connect(self) -> int:
        """Connect and return the CONNACK return code (0 = accepted)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._connack.wait(WAIT_S) and not self._closed.is_set():
            raise PeerError(f"no CONNACK from 127.0.0.1:{self.port} within {WAIT_S} s")
        # A broker may close the connection without a CONNACK, which counts as rejected.
        return self.reason_code if self.reason_code is not None else -1

    def subscribe(self, topic_filter: str) -> int:
        """Subscribe at QoS 1 and return the SUBACK code: granted QoS or 0x80."""
        result, mid = self.client.subscribe(topic_filter, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise PeerError(
                f"SUBSCRIBE {topic_filter} not sent: {mqtt.error_string(result)}"
            )
        with self._suback_event:
            if not self._suback_event.wait_for(lambda: mid in self._subacks, WAIT_S):
                raise PeerError(f"no SUBACK for {topic_filter} within {WAIT_S} s")
            return self._subacks[mid][0]

    def publish(
        self, topic_name: str, payload: bytes, qos: int = 1, *, retain: bool = False
    ) -> None:
        """Publish and wait until the broker has acknowledged it (QoS 1)."""
        info = self.client.publish(topic_name, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT_S)
        if not info.is_published():
            raise PeerError(
                f"PUBLISH to {topic_name} not acknowledged within {WAIT_S} s"
            )

    def next_message(self, timeout_s: float = WAIT_S) -> tuple[str, bytes]:
        """Return the next message received, or raise PeerError after timeout_s."""
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty as exc:
            raise PeerError(f"no message within {timeout_s} s") from exc

    def received_until(self, marker: bytes) -> list[tuple[str, bytes]]:
        """Return the messages received before the one whose payload is `marker`."""
        before: list[tuple[str, bytes]] = []
        while True:
            message = self.next_message()
            if message[1] == marker:
                return before
            before.append(message)

    def drop_connection(self) -> None:
        """Close the socket without DISCONNECT, so the broker sends the will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            # The shutdown wakes paho's network thread, so loop_stop() returns at once.
            sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        self.reason_code = reason_code.value
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        self._closed.set()
        self._connack.set()

    def _on_message(self, client, userdata, message):  # type: ignore[no-untyped-def]
        self.messages.put((message.topic, message.payload))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):  # type: ignore[no-untyped-def]
        with self._suback_event:
            self._subacks[mid] = [code.value for code in reason_codes]
            self._suback_event.notify_all()
