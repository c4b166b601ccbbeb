"""The shipped Mosquitto config, ACL and generated passwords in a real Mosquitto."""

from __future__ import annotations

from bwms.contract import Kind, topic
from tests.compose.conftest import ComposeBroker, Generated
from tests.compose.mqtt_peer import Peer

SITE = "demo-wgq"


def _peer(broker: ComposeBroker, generated: Generated, env_name: str) -> Peer:
    username, password = generated.account(env_name)
    return Peer(broker.port, username, password)


def _connected(
    broker: ComposeBroker, generated: Generated, env_name: str, *filters: str
) -> Peer:
    peer = _peer(broker, generated, env_name)
    rc = peer.connect()
    assert rc == 0, f"{env_name} rejected with CONNACK code {rc}:\n{broker.log()}"
    for topic_filter in filters:
        peer.subscribe(topic_filter)
    return peer


def test_conf_accepts_hub(compose_broker: ComposeBroker, generated: Generated) -> None:
    peer = _peer(compose_broker, generated, "hub")
    try:
        rc = peer.connect()
    finally:
        peer.close()
    assert rc == 0


def test_conf_rejects_anonymous(compose_broker: ComposeBroker) -> None:
    peer = Peer(compose_broker.port, None, None)
    try:
        rc = peer.connect()
    finally:
        peer.close()
    assert rc != 0


def test_conf_rejects_wrong_password(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    username, password = generated.account("edge-door-3")
    peer = Peer(compose_broker.port, username, password + "x")
    try:
        rc = peer.connect()
    finally:
        peer.close()
    assert rc != 0


def test_conf_rejects_other_accounts_password(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    username, _ = generated.account("edge-door-3")
    _, other_password = generated.account("edge-door-4")
    peer = Peer(compose_broker.port, username, other_password)
    try:
        rc = peer.connect()
    finally:
        peer.close()
    assert rc != 0


def test_acl_edge_movement_reaches_hub(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    hub = _connected(compose_broker, generated, "hub", f"bwms/v1/{SITE}/+/movement")
    edge = _connected(compose_broker, generated, "edge-door-3")
    try:
        edge.publish(topic(SITE, "door-3", Kind.MOVEMENT), b"m1")
        message = hub.next_message()
    finally:
        edge.close()
        hub.close()
    assert message == (topic(SITE, "door-3", Kind.MOVEMENT), b"m1")


def test_acl_edge_other_portal_dropped(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    hub = _connected(compose_broker, generated, "hub", f"bwms/v1/{SITE}/+/movement")
    # Mosquitto 2.0.11 closes a connection after a denied PUBLISH, so the forged
    # message goes out on a connection of its own.
    forger = _connected(compose_broker, generated, "edge-door-3")
    forger.publish(topic(SITE, "door-4", Kind.MOVEMENT), b"forged")
    forger.close()
    edge = _connected(compose_broker, generated, "edge-door-3")
    try:
        edge.publish(topic(SITE, "door-3", Kind.MOVEMENT), b"marker")
        before = hub.received_until(b"marker")
    finally:
        edge.close()
        hub.close()
    assert before == []


def test_acl_edge_other_ack_not_received(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    edge = _connected(compose_broker, generated, "edge-door-3")
    hub = _connected(compose_broker, generated, "hub")
    try:
        edge.subscribe(topic(SITE, "door-4", Kind.ACK))
        edge.subscribe(topic(SITE, "door-3", Kind.ACK))
        hub.publish(topic(SITE, "door-4", Kind.ACK), b"ack-4")
        hub.publish(topic(SITE, "door-3", Kind.ACK), b"marker")
        before = edge.received_until(b"marker")
    finally:
        hub.close()
        edge.close()
    assert before == []


def test_acl_hub_ack_reaches_own_edge(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    door_3 = _connected(
        compose_broker, generated, "edge-door-3", topic(SITE, "door-3", Kind.ACK)
    )
    door_4 = _connected(
        compose_broker, generated, "edge-door-4", topic(SITE, "door-4", Kind.ACK)
    )
    hub = _connected(compose_broker, generated, "hub")
    try:
        hub.publish(topic(SITE, "door-3", Kind.ACK), b"ack-3")
        hub.publish(topic(SITE, "door-4", Kind.ACK), b"marker-4")
        got_3 = door_3.next_message()
        before_4 = door_4.received_until(b"marker-4")
    finally:
        hub.close()
        door_3.close()
        door_4.close()
    assert got_3 == (topic(SITE, "door-3", Kind.ACK), b"ack-3")
    assert before_4 == []


def test_acl_edge_status_retained_for_hub(
    compose_broker: ComposeBroker, generated: Generated
) -> None:
    edge = _connected(compose_broker, generated, "edge-gate-1")
    edge.publish(topic(SITE, "gate-1", Kind.STATUS), b"online", retain=True)
    edge.close()
    hub = _connected(compose_broker, generated, "hub", f"bwms/v1/{SITE}/+/status")
    try:
        message = hub.next_message()
    finally:
        hub.close()
    assert message == (topic(SITE, "gate-1", Kind.STATUS), b"online")
