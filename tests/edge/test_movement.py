"""Movement and crossing payloads against their JSON Schemas."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from bwms.contract import Kind, PayloadError, validate
from bwms.site import Antenna, Portal, PortalKind, ReaderRef, Side
from edge.movement import crossing_payload, movement_payload, new_event_id
from edge.portal import ClosedMovement, CrossingStarted, Direction, MovementTag

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SGTIN_HEX = "3036142C8C008F8000053244"
SGTIN_URI = "urn:epc:id:sgtin:8719139.000574.340548"
# A factory-programmed tag: header 0xE2 is no GS1 scheme
NON_GS1_HEX = "E2009A9040060AF000000372"
EVENT_ID = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"

GATE = Portal(
    id="gate-1",
    kind=PortalKind.GATE,
    reader=ReaderRef(id="gate-1-reader"),
    antennas=[Antenna(port=1, side=Side.INSIDE), Antenna(port=2, side=Side.OUTSIDE)],
)


def movement(direction: Direction = Direction.OUT) -> ClosedMovement:
    return ClosedMovement(
        direction=direction,
        started_us=T0_US,
        ended_us=T0_US + 2_600_000,
        tags=(
            MovementTag(SGTIN_HEX, 18, T0_US, T0_US + 2_500_000, (1, 2), -48.0),
            MovementTag(NON_GS1_HEX, 3, T0_US + 100_000, T0_US + 2_600_000, (2,), None),
        ),
    )


def test_movement_payload_validates() -> None:
    payload = movement_payload("demo-wgq", GATE, movement(), seq=7, event_id=EVENT_ID)

    validate(Kind.MOVEMENT, payload)
    assert payload["schema"] == "bwms.movement/1"
    assert payload["portal_kind"] == "gate"
    assert payload["direction"] == "out"
    assert payload["seq"] == 7
    assert payload["started_at"] == "2026-01-01T00:00:00.000000Z"
    assert payload["ended_at"] == "2026-01-01T00:00:02.600000Z"
    assert payload["weight"] is None
    assert payload["clip"] is None


def test_movement_payload_tags() -> None:
    payload = movement_payload("demo-wgq", GATE, movement(), seq=1, event_id=EVENT_ID)

    first, second = payload["tags"]
    assert first["uri"] == SGTIN_URI
    assert first["reads"] == 18
    assert first["antennas"] == [1, 2]
    assert first["last_seen"] == "2026-01-01T00:00:02.500000Z"
    assert first["peak_rssi_dbm"] == -48.0
    assert second["uri"] is None
    assert second["peak_rssi_dbm"] is None


def test_movement_payload_weight_clip() -> None:
    weight = {
        "scale_id": "door-3-scale",
        "gross_kg": 812.5,
        "stable": True,
        "measured_at": "2026-01-01T00:00:01.000000Z",
    }
    clip = {"clip_id": "c-1", "camera_id": "gate-1-cam", "status": "planned"}

    payload = movement_payload(
        "demo-wgq", GATE, movement(), seq=1, event_id=EVENT_ID, weight=weight, clip=clip
    )

    assert payload["weight"] == weight
    assert payload["clip"] == clip


def test_movement_payload_rejects_bad_weight() -> None:
    with pytest.raises(PayloadError, match="weight"):
        movement_payload(
            "demo-wgq",
            GATE,
            movement(),
            seq=1,
            event_id=EVENT_ID,
            weight={"gross_kg": 1.0},
        )


def test_movement_payload_rejects_seq_zero() -> None:
    with pytest.raises(PayloadError, match="seq"):
        movement_payload("demo-wgq", GATE, movement(), seq=0, event_id=EVENT_ID)


def test_crossing_payload_validates() -> None:
    crossing = CrossingStarted(SGTIN_HEX, Direction.IN, T0_US, T0_US + 1_000_000)

    payload = crossing_payload("demo-wgq", GATE, crossing)

    validate(Kind.CROSSING, payload)
    assert payload["uri"] == SGTIN_URI
    assert payload["direction"] == "in"
    assert payload["first_seen"] == "2026-01-01T00:00:00.000000Z"
    assert payload["at"] == "2026-01-01T00:00:01.000000Z"


def test_crossing_payload_non_gs1_uri() -> None:
    crossing = CrossingStarted(NON_GS1_HEX, Direction.UNKNOWN, T0_US, T0_US)

    payload = crossing_payload("demo-wgq", GATE, crossing)

    assert payload["uri"] is None


def test_event_ids_unique_and_valid() -> None:
    ids = [new_event_id() for _ in range(2000)]

    assert len(set(ids)) == len(ids)
    for event_id in ids[:50]:
        assert 8 <= len(event_id) <= 64
        assert re.fullmatch(r"[A-Za-z0-9._:-]+", event_id)
        assert uuid.UUID(event_id).version == 7


def test_event_id_starts_with_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after_ms = time.time_ns() // 1_000_000

    unix_ms = uuid.UUID(event_id).int >> 80
    assert before_ms <= unix_ms <= after_ms
