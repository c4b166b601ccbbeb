"""The local broker accepts its own users only and keeps each account to its topics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bwms.broker import (
    AccountRules,
    BrokerError,
    LocalBroker,
    edge_username,
    hub_username,
    new_password,
    render_mosquitto_acl,
    site_accounts,
    start_local_broker,
)
from bwms.contract import Kind, topic
from bwms.site import Site
from tests.compose.mqtt_peer import SUBACK_FAILURE, Peer

BACKENDS = ["mosquitto", "amqtt"]
SITE_ID = "s1"


def _connect(port: int, username: str | None, password: str | None) -> int:
    """Connect with paho and return the CONNACK reason code value (0 = accepted)."""
    done = threading.Event()
    result: dict[str, int] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        result["rc"] = reason_code.value
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return result["rc"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_accepts_user(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, "hub", "s3cret-pw")
    finally:
        await broker.stop()
    assert rc == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_rejects_wrong_password(
    tmp_path: Path, backend: str
) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, "hub", "wrong")
    finally:
        await broker.stop()
    assert rc != 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_rejects_anonymous(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, None, None)
    finally:
        await broker.stop()
    assert rc != 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_listens_on_loopback_only(
    tmp_path: Path, backend: str
) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "pw"}, prefer=backend)
    try:
        assert broker.host == "127.0.0.1"
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    finally:
        await broker.stop()


# Access lists


def _site() -> Site:
    portal = {
        "kind": "dock_door",
        "reader": {"id": "r"},
        "antennas": [{"port": 1, "side": "inside"}, {"port": 2, "side": "outside"}],
    }
    return Site.model_validate(
        {
            "site": {"id": SITE_ID, "name": "Test site"},
            "portals": [{"id": "door-a", **portal}, {"id": "door-b", **portal}],
        }
    )


HUB = hub_username(SITE_ID)
EDGE_A = edge_username(SITE_ID, "door-a")
EDGE_B = edge_username(SITE_ID, "door-b")


def _topic(portal: str, kind: Kind) -> str:
    return topic(SITE_ID, portal, kind)


@dataclass
class Guarded:
    """A broker started with the test site's accounts and access list."""

    broker: LocalBroker

    def peer(self, username: str | None, *, will_topic: str | None = None) -> Peer:
        password = self.broker.users.get(username or "")
        return Peer(self.broker.port, username, password, will_topic=will_topic)

    async def connected(self, username: str, *subscriptions: str) -> Peer:
        """Connect a peer, subscribe it and fail unless every subscription is granted."""
        peer = self.peer(username)
        rc = await asyncio.to_thread(peer.connect)
        assert rc == 0, f"{username} was rejected with CONNACK code {rc}"
        for topic_filter in subscriptions:
            granted = await asyncio.to_thread(peer.subscribe, topic_filter)
            assert granted == 1, f"{username} was denied {topic_filter}"
        return peer

    async def publish_denied(self, username: str, topic_name: str) -> None:
        """Publish from a connection of its own, because Mosquitto 2.0.11 closes
        the connection of a client right after a PUBLISH its ACL denies."""
        peer = await self.connected(username)
        try:
            await asyncio.to_thread(peer.publish, topic_name, b"forged")
        finally:
            peer.close()


@pytest.fixture(params=BACKENDS)
async def guarded(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Guarded]:
    accounts = site_accounts(_site())
    users = {rules.username: new_password() for rules in accounts}
    broker = await start_local_broker(
        tmp_path, users, prefer=request.param, acl=accounts
    )
    try:
        yield Guarded(broker)
    finally:
        await broker.stop()


async def test_acl_edge_publish_other_portal_dropped(guarded: Guarded) -> None:
    hub = await guarded.connected(HUB, f"bwms/v1/{SITE_ID}/+/movement")
    await guarded.publish_denied(EDGE_A, _topic("door-b", Kind.MOVEMENT))
    edge_a = await guarded.connected(EDGE_A)
    try:
        await asyncio.to_thread(
            edge_a.publish, _topic("door-a", Kind.MOVEMENT), b"marker"
        )
        before = await asyncio.to_thread(hub.received_until, b"marker")
    finally:
        edge_a.close()
        hub.close()
    assert before == []


async def test_acl_edge_publish_own_movement_delivered(guarded: Guarded) -> None:
    hub = await guarded.connected(HUB, f"bwms/v1/{SITE_ID}/+/movement")
    edge_a = await guarded.connected(EDGE_A)
    try:
        await asyncio.to_thread(edge_a.publish, _topic("door-a", Kind.MOVEMENT), b"m1")
        message = await asyncio.to_thread(hub.next_message)
    finally:
        edge_a.close()
        hub.close()
    assert message == (_topic("door-a", Kind.MOVEMENT), b"m1")


async def test_acl_edge_status_reaches_hub(guarded: Guarded) -> None:
    hub = await guarded.connected(HUB, f"bwms/v1/{SITE_ID}/+/status")
    edge_b = await guarded.connected(EDGE_B)
    try:
        await asyncio.to_thread(
            edge_b.publish, _topic("door-b", Kind.STATUS), b"online"
        )
        message = await asyncio.to_thread(hub.next_message)
    finally:
        edge_b.close()
        hub.close()
    assert message == (_topic("door-b", Kind.STATUS), b"online")


# Mosquitto 2.0 grants a subscription its ACL denies and then delivers nothing on
# it, while amqtt rejects it in the SUBACK, so these tests check delivery only.
@pytest.mark.parametrize(
    "probe",
    [_topic("door-b", Kind.ACK), f"bwms/v1/{SITE_ID}/+/ack", "#"],
    ids=["exact", "plus", "hash"],
)
async def test_acl_edge_reads_no_other_ack(guarded: Guarded, probe: str) -> None:
    edge_a = await guarded.connected(EDGE_A, _topic("door-a", Kind.ACK))
    hub = await guarded.connected(HUB)
    try:
        await asyncio.to_thread(edge_a.subscribe, probe)
        await asyncio.to_thread(hub.publish, _topic("door-b", Kind.ACK), b"ack-b")
        await asyncio.to_thread(hub.publish, _topic("door-a", Kind.ACK), b"marker")
        before = await asyncio.to_thread(edge_a.received_until, b"marker")
    finally:
        hub.close()
        edge_a.close()
    assert before == []


async def test_acl_hub_ack_reaches_own_edge_only(guarded: Guarded) -> None:
    edge_a = await guarded.connected(EDGE_A, _topic("door-a", Kind.ACK))
    edge_b = await guarded.connected(EDGE_B, _topic("door-b", Kind.ACK))
    hub = await guarded.connected(HUB)
    try:
        await asyncio.to_thread(hub.publish, _topic("door-a", Kind.ACK), b"ack-a")
        await asyncio.to_thread(hub.publish, _topic("door-b", Kind.ACK), b"ack-b")
        got_a = await asyncio.to_thread(edge_a.next_message)
        got_b = await asyncio.to_thread(edge_b.next_message)
    finally:
        hub.close()
        edge_a.close()
        edge_b.close()
    assert got_a == (_topic("door-a", Kind.ACK), b"ack-a")
    assert got_b == (_topic("door-b", Kind.ACK), b"ack-b")


async def test_acl_edge_forged_ack_dropped(guarded: Guarded) -> None:
    edge_b = await guarded.connected(EDGE_B, _topic("door-b", Kind.ACK))
    await guarded.publish_denied(EDGE_A, _topic("door-b", Kind.ACK))
    hub = await guarded.connected(HUB)
    try:
        await asyncio.to_thread(hub.publish, _topic("door-b", Kind.ACK), b"marker")
        before = await asyncio.to_thread(edge_b.received_until, b"marker")
    finally:
        hub.close()
        edge_b.close()
    assert before == []


async def test_acl_hub_publish_movement_dropped(guarded: Guarded) -> None:
    hub = await guarded.connected(HUB, f"bwms/v1/{SITE_ID}/+/movement")
    await guarded.publish_denied(HUB, _topic("door-a", Kind.MOVEMENT))
    edge_a = await guarded.connected(EDGE_A)
    try:
        await asyncio.to_thread(
            edge_a.publish, _topic("door-a", Kind.MOVEMENT), b"marker"
        )
        before = await asyncio.to_thread(hub.received_until, b"marker")
    finally:
        edge_a.close()
        hub.close()
    assert before == []


async def test_acl_will_on_other_portal_not_delivered(guarded: Guarded) -> None:
    hub = await guarded.connected(HUB, f"bwms/v1/{SITE_ID}/+/status")
    edge_a = guarded.peer(EDGE_A, will_topic=_topic("door-b", Kind.STATUS))
    try:
        rc = await asyncio.to_thread(edge_a.connect)
        if rc == 0:
            await asyncio.to_thread(edge_a.drop_connection)
        edge_b = await guarded.connected(EDGE_B)
        await asyncio.to_thread(
            edge_b.publish, _topic("door-b", Kind.STATUS), b"marker"
        )
        before = await asyncio.to_thread(hub.received_until, b"marker")
        edge_b.close()
    finally:
        edge_a.close()
        hub.close()
    assert before == []


async def test_acl_user_without_rules_denied(tmp_path: Path) -> None:
    users = {"hub": "pw1", "idle": "pw2"}
    acl = [AccountRules("hub", subscribe=("a/#",))]
    broker = await start_local_broker(tmp_path, users, prefer="amqtt", acl=acl)
    peer = Peer(broker.port, "idle", "pw2")
    try:
        await asyncio.to_thread(peer.connect)
        granted = await asyncio.to_thread(peer.subscribe, "a/b")
    finally:
        peer.close()
        await broker.stop()
    assert granted == SUBACK_FAILURE


async def test_acl_unknown_user_raises(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="does not have"):
        await start_local_broker(
            tmp_path, {"hub": "pw"}, acl=[AccountRules("nobody", publish=("a",))]
        )


async def test_user_name_with_colon_raises(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="invalid broker user name"):
        await start_local_broker(tmp_path, {"hub:1": "pw"})


# Account rules and the rendered Mosquitto ACL


def test_site_accounts_hub_rules() -> None:
    hub = site_accounts(_site())[0]
    assert hub == AccountRules(
        HUB,
        publish=(f"bwms/v1/{SITE_ID}/+/ack",),
        subscribe=(f"bwms/v1/{SITE_ID}/+/movement", f"bwms/v1/{SITE_ID}/+/status"),
    )


def test_site_accounts_edge_rules() -> None:
    edge_b = site_accounts(_site())[2]
    assert edge_b == AccountRules(
        EDGE_B,
        publish=(
            _topic("door-b", Kind.MOVEMENT),
            _topic("door-b", Kind.CROSSING),
            _topic("door-b", Kind.STATUS),
        ),
        subscribe=(_topic("door-b", Kind.ACK),),
    )


def test_render_acl_user_block() -> None:
    text = render_mosquitto_acl(
        [AccountRules("u1", publish=("a/b",), subscribe=("c/+",))]
    )
    assert text == "user u1\ntopic write a/b\ntopic read c/+\n"


def test_render_acl_header_commented() -> None:
    text = render_mosquitto_acl([AccountRules("u1")], header="first\nsecond")
    assert text.splitlines()[:3] == ["# first", "# second", ""]
