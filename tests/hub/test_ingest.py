"""MQTT ingest against the shared Mosquitto with a real paho publisher: storing,
confirmations, idempotent redelivery, rejections and portal status."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from sqlalchemy.exc import IntegrityError

import hub.ingest
from bwms.contract import Kind, PayloadError, decode, topic
from hub.ingest import MovementConsumer, RateLimitedWarning, decode_payload
from hub.movements import list_dead_letters, store_movements
from hub.storage.db import Database, StorageError
from hub.storage.models import Movement, MovementTag
from tests.hub.support import (
    GTIN,
    SSCC,
    Publisher,
    movement,
    sgtin,
    sscc_epc,
    wait_until,
)


async def count(database: Database, model: Any) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_movement_stored_and_confirmed(
    consumer: MovementConsumer, publisher: Publisher, database: Database, site_id: str
) -> None:
    payload = movement(site_id, epcs=[sgtin(7), sscc_epc()], weight_kg=812.5)

    await publisher.publish(payload)
    await consumer.wait_stored([payload["event_id"]], timeout_s=5)
    await wait_until(lambda: publisher.acked(payload["event_id"]) == 1)

    async with database.session() as session:
        row = await session.scalar(select(Movement))
        tags = (
            await session.scalars(select(MovementTag).order_by(MovementTag.id))
        ).all()
    assert row is not None
    assert row.portal == "door-3"
    assert row.tag_count == 2
    assert row.weight_kg == 812.5
    assert row.started_at.isoformat() == "2025-03-01T08:00:10+00:00"
    assert [t.gtin for t in tags] == [GTIN, None]
    assert [t.sscc for t in tags] == [None, SSCC]
    assert tags[0].uri == "urn:epc:id:sgtin:8719139.000574.7"
    assert publisher.ack_messages[0][0] == topic(site_id, "door-3", Kind.ACK)
    assert publisher.acks[0] == {
        "event_id": payload["event_id"],
        "status": "stored",
        "reason": None,
    }
    assert consumer.counters.stored == 1


async def test_resend_confirmed_again_not_stored_twice(
    consumer: MovementConsumer, publisher: Publisher, database: Database, site_id: str
) -> None:
    payload = movement(site_id)

    await publisher.publish(payload)
    await wait_until(lambda: publisher.acked(payload["event_id"]) == 1)
    await publisher.publish(payload)
    await wait_until(lambda: publisher.acked(payload["event_id"]) == 2)

    assert await count(database, Movement) == 1
    assert consumer.counters.duplicates == 1
    assert consumer.counters.stored == 1


async def test_redelivered_events_stored_once(
    consumer: MovementConsumer, publisher: Publisher, database: Database, site_id: str
) -> None:
    # 25 QoS 1 events whose PUBACKs were lost for the 20 in flight
    # reach the subscriber 45 times, all with DUP unset. Publishing 1-20 again as
    # new messages reproduces exactly what the hub receives.
    events = [movement(site_id, seq=n) for n in range(1, 26)]

    for payload in events + events[:20]:
        await publisher.publish(payload)
    await wait_until(lambda: consumer.counters.received == 45)
    await consumer.wait_stored([e["event_id"] for e in events], timeout_s=5)
    # The last duplicates may still be in a batch being committed.
    await wait_until(lambda: consumer.counters.stored + consumer.counters.duplicates == 45)

    assert await count(database, Movement) == 25
    assert await count(database, MovementTag) == 25
    assert consumer.counters.duplicates == 20
    assert consumer.counters.stored == 25


def _without_clip(site: str) -> tuple[str, dict[str, Any]]:
    payload = movement(site, event_id="evt-schema-0001")
    del payload["clip"]
    return "door-3", payload


def _other_site(site: str) -> tuple[str, dict[str, Any]]:
    return "door-3", movement("other-site", event_id="evt-site-0001")


def _unknown_portal(site: str) -> tuple[str, dict[str, Any]]:
    return "door-9", movement(site, portal="door-9", event_id="evt-portal-0001")


def _wrong_topic(site: str) -> tuple[str, dict[str, Any]]:
    payload = movement(
        site, portal="gate-1", portal_kind="gate", event_id="evt-topic-0001"
    )
    return "door-3", payload


def _wrong_kind(site: str) -> tuple[str, dict[str, Any]]:
    return "door-3", movement(site, portal_kind="gate", event_id="evt-kind-0001")


def _repeated_epc(site: str) -> tuple[str, dict[str, Any]]:
    return "door-3", movement(site, epcs=[sgtin(1), sgtin(1)], event_id="evt-epc-0001")


def _ends_before_start(site: str) -> tuple[str, dict[str, Any]]:
    payload = movement(site, duration_us=-1_000_000, event_id="evt-time-0001")
    return "door-3", payload


REJECTIONS: list[tuple[Callable[[str], tuple[str, dict[str, Any]]], str, str]] = [
    (
        _without_clip,
        "schema",
        "schema: bwms.movement/1 invalid at (root): 'clip' is a required property",
    ),
    (
        _other_site,
        "unknown_site",
        "unknown_site: site 'other-site' is not this hub's site '{site}'",
    ),
    (
        _unknown_portal,
        "unknown_portal",
        "unknown_portal: portal 'door-9' is not in the site file of site '{site}'",
    ),
    (
        _wrong_topic,
        "topic_mismatch",
        "topic_mismatch: payload names site '{site}' and portal 'gate-1' but came on "
        "topic 'bwms/v1/{site}/door-3/movement'",
    ),
    (
        _wrong_kind,
        "portal_kind_mismatch",
        "portal_kind_mismatch: portal 'door-3' is a dock_door in the site file, but "
        "the payload says gate",
    ),
    (
        _repeated_epc,
        "invalid_movement",
        f"invalid_movement: EPC {sgtin(1)} appears more than once in tags",
    ),
    (
        _ends_before_start,
        "invalid_movement",
        "invalid_movement: ended_at 2025-03-01T08:00:09.000000Z is before started_at "
        "2025-03-01T08:00:10.000000Z",
    ),
]


@pytest.mark.parametrize(
    ("build", "code", "reason"),
    REJECTIONS,
    ids=[build.__name__.strip("_") for build, _, _ in REJECTIONS],
)
async def test_rejection_confirmed_and_kept(
    consumer: MovementConsumer,
    publisher: Publisher,
    database: Database,
    site_id: str,
    build: Callable[[str], tuple[str, dict[str, Any]]],
    code: str,
    reason: str,
) -> None:
    portal, payload = build(site_id)
    expected = reason.format(site=site_id)

    await publisher.publish(payload, portal=portal)
    await wait_until(lambda: publisher.acked(payload["event_id"], "rejected") == 1)

    async with database.session() as session:
        letters = await list_dead_letters(session)
    assert publisher.acks == [
        {"event_id": payload["event_id"], "status": "rejected", "reason": expected}
    ]
    assert publisher.ack_messages[0][0] == topic(site_id, portal, Kind.ACK)
    assert len(letters) == 1
    assert letters[0].reason == expected
    assert letters[0].event_id == payload["event_id"]
    assert letters[0].topic == topic(site_id, portal, Kind.MOVEMENT)
    assert letters[0].portal == portal
    assert json.loads(letters[0].payload) == payload
    assert consumer.counters.rejected == {code: 1}
    assert await count(database, Movement) == 0


async def test_invalid_json_kept_unconfirmed(
    consumer: MovementConsumer, publisher: Publisher, database: Database, site_id: str
) -> None:
    await publisher.publish_raw(topic(site_id, "door-3", Kind.MOVEMENT), b"{not json")
    await wait_until(lambda: consumer.counters.rejected["invalid_json"] == 1)

    async with database.session() as session:
        letters = await list_dead_letters(session)
    assert letters[0].reason == (
        "invalid_json: payload is not valid UTF-8 JSON: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)"
    )
    assert letters[0].payload == "{not json"
    assert letters[0].event_id is None
    assert publisher.acks == []


async def test_garbage_then_valid_movement_stored(
    consumer: MovementConsumer, publisher: Publisher, site_id: str
) -> None:
    door = topic(site_id, "door-3", Kind.MOVEMENT)
    valid = movement(site_id)

    for raw in (b"", b"\xff\x00\xfe", b"[1, 2]", b'{"event_id": 5}', b"null" * 10):
        await publisher.publish_raw(door, raw)
    await publisher.publish(valid)
    await consumer.wait_stored([valid["event_id"]], timeout_s=5)

    assert consumer.counters.rejected == {"invalid_json": 3, "schema": 2}
    assert consumer.counters.stored == 1


async def test_oversized_garbage_truncated(
    make_settings: Callable[..., Any],
    site: Any,
    database: Database,
    publisher: Publisher,
    site_id: str,
) -> None:
    running = MovementConsumer(
        make_settings(dead_letter_max_bytes=1024), site, database
    )
    await running.start()
    await running.wait_subscribed(5)
    try:
        await publisher.publish_raw(
            topic(site_id, "door-3", Kind.MOVEMENT), b"x" * 5000
        )
        await wait_until(lambda: running.counters.rejected["invalid_json"] == 1)
    finally:
        await running.stop()

    async with database.session() as session:
        letters = await list_dead_letters(session)
    assert letters[0].payload == "x" * 1024
    assert letters[0].payload_truncated is True


async def test_status_kept_per_portal(
    consumer: MovementConsumer, publisher: Publisher, site_id: str
) -> None:
    status_topic = topic(site_id, "gate-1", Kind.STATUS)
    status = {
        "schema": "bwms.status/1",
        "site": site_id,
        "portal": "gate-1",
        "state": "degraded",
        "at": "2025-03-01T08:00:00.000000Z",
    }

    await publisher.publish_raw(status_topic, json.dumps(status).encode(), retain=True)
    try:
        await wait_until(lambda: "gate-1" in consumer.statuses)
    finally:
        # An empty retained message removes the retained status from the shared broker.
        await publisher.publish_raw(status_topic, b"", retain=True)
    await wait_until(lambda: "gate-1" not in consumer.statuses)

    assert consumer.counters.status_received == 2


def test_rejection_warning_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warning = RateLimitedWarning(10.0, clock=lambda: now[0])

    with caplog.at_level(logging.WARNING, logger="hub.ingest"):
        logged = [warning.warn("schema", "rejected %s", n) for n in range(3)]
        now[0] = 10.0
        logged.append(warning.warn("schema", "rejected %s", 3))

    assert logged == [True, False, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "rejected 0",
        "rejected 3 (2 more like it not logged)",
    ]


DECODE_CASES = [
    b"{not json",
    b"[1, 2]",
    json.dumps(movement("s")).encode(),
    json.dumps({**movement("s"), "seq": 0}).encode(),
    json.dumps({**movement("s"), "started_at": "2025-03-01T08:00:10Z"}).encode(),
]


@pytest.mark.parametrize("raw", DECODE_CASES)
def test_decode_payload_agrees_with_contract(raw: bytes) -> None:
    # decode_payload checks with jsonschema-rs first; it must reach the verdict
    # and the error text of bwms.contract.decode.
    try:
        expected: object = decode(Kind.MOVEMENT, raw)
    except PayloadError as exc:
        expected = str(exc)
    try:
        actual: object = decode_payload(Kind.MOVEMENT, raw)
    except PayloadError as exc:
        actual = str(exc)

    assert actual == expected


async def test_database_rejection_isolated(
    consumer: MovementConsumer,
    publisher: Publisher,
    site_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The database refusing one movement must not hold back the others of its
    # batch, nor leave the refused one unconfirmed for the edge to resend forever.
    poison = movement(site_id, seq=1, event_id="evt-poison-01")
    valid = movement(site_id, seq=2)

    async def refuse_poison(session: Any, movements: Any) -> dict[str, int]:
        if any(m.event_id == poison["event_id"] for m in movements):
            cause = IntegrityError("INSERT", {}, Exception("constraint failed"))
            raise StorageError("refused") from cause
        return await store_movements(session, movements)

    monkeypatch.setattr(hub.ingest, "store_movements", refuse_poison)
    await publisher.publish(poison)
    await publisher.publish(valid)
    await consumer.wait_stored([valid["event_id"]], timeout_s=5)
    await wait_until(lambda: publisher.acked(poison["event_id"], "rejected") == 1)

    assert consumer.counters.rejected == {"storage": 1}
    assert consumer.counters.storage_errors >= 1
    assert publisher.acked(valid["event_id"]) == 1


async def test_deeply_nested_json_rejected_alone(
    consumer: MovementConsumer, publisher: Publisher, database: Database, site_id: str
) -> None:
    door = topic(site_id, "door-3", Kind.MOVEMENT)
    valid = movement(site_id)

    await publisher.publish_raw(door, b"[" * 100_000)
    await publisher.publish(valid)
    await consumer.wait_stored([valid["event_id"]], timeout_s=5)

    assert consumer.counters.rejected == {"invalid_json": 1}
    async with database.session() as session:
        letters = await list_dead_letters(session)
    assert letters[0].reason == "invalid_json: payload is not usable JSON: nested too deeply"
