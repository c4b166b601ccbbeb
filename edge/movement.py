"""Wire payloads of the portal tracker's output: movements and crossing notices.

The payloads follow `bwms.movement/1` and `bwms.crossing/1` (bwms/schemas/) and are
validated before they are returned, so a payload that the hub would reject fails
here with `bwms.contract.PayloadError` instead.
"""

from __future__ import annotations

import secrets
import time
import uuid
from functools import lru_cache
from typing import Any

from bwms.contract import SCHEMA_IDS, Kind, format_time_us, validate
from bwms.epc import decode_epc
from bwms.site import Portal
from edge.portal import ClosedMovement, CrossingStarted, MovementTag


def movement_payload(
    site_id: str,
    portal: Portal,
    movement: ClosedMovement,
    *,
    seq: int,
    event_id: str,
    weight: dict[str, Any] | None = None,
    clip: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and validate the `bwms.movement/1` payload of a closed movement.

    `seq` is the portal's movement number, increasing from 1. `event_id` is the
    id the hub deduplicates by. Both must stay the same when the movement is sent
    again. Raises PayloadError if the result does not match the schema.
    """
    payload: dict[str, Any] = {
        "schema": SCHEMA_IDS[Kind.MOVEMENT],
        "event_id": event_id,
        "site": site_id,
        "portal": portal.id,
        "portal_kind": portal.kind.value,
        "direction": movement.direction.value,
        "started_at": format_time_us(movement.started_us),
        "ended_at": format_time_us(movement.ended_us),
        "seq": seq,
        "tags": [_tag_entry(tag) for tag in movement.tags],
        "weight": weight,
        "clip": clip,
    }
    validate(Kind.MOVEMENT, payload)
    return payload


def crossing_payload(
    site_id: str, portal: Portal, crossing: CrossingStarted
) -> dict[str, Any]:
    """Build and validate the `bwms.crossing/1` payload of a crossing notice."""
    payload: dict[str, Any] = {
        "schema": SCHEMA_IDS[Kind.CROSSING],
        "site": site_id,
        "portal": portal.id,
        "portal_kind": portal.kind.value,
        "epc": crossing.epc,
        "uri": epc_uri(crossing.epc),
        "direction": crossing.direction.value,
        "first_seen": format_time_us(crossing.first_seen_us),
        "at": format_time_us(crossing.at_us),
    }
    validate(Kind.CROSSING, payload)
    return payload


def new_event_id() -> str:
    """Return a new random event id in the UUID version 7 layout (RFC 9562).

    The first 48 bits are the Unix time in milliseconds, so ids sort roughly by
    creation time, and 74 bits are random, so two edge daemons never collide.
    """
    unix_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(secrets.token_bytes(10), "big")
    rand_a = (random_bits >> 62) & 0xFFF
    rand_b = random_bits & ((1 << 62) - 1)
    value = (
        (unix_ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76  # version 7
        | rand_a << 64
        | 0b10 << 62  # the RFC 4122 variant
        | rand_b
    )
    return str(uuid.UUID(int=value))


@lru_cache(maxsize=4096)
def epc_uri(epc: str) -> str | None:
    """Return the GS1 pure-identity URI of an EPC, or None for a non-GS1 EPC."""
    uri = decode_epc(epc).get("uri")
    return uri if isinstance(uri, str) else None


def _tag_entry(tag: MovementTag) -> dict[str, Any]:
    return {
        "epc": tag.epc,
        "uri": epc_uri(tag.epc),
        "reads": tag.reads,
        "first_seen": format_time_us(tag.first_seen_us),
        "last_seen": format_time_us(tag.last_seen_us),
        "antennas": list(tag.antennas),
        "peak_rssi_dbm": tag.peak_rssi_dbm,
    }
