"""The movement service: conversion of payloads to rows, idempotent storing, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.movements import (
    InvalidCursor,
    InvalidMovement,
    decode_cursor,
    encode_cursor,
    prepare_movement,
    store_movements,
)
from hub.storage.db import Database
from tests.hub.support import movement, sgtin

RECEIVED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_non_gs1_tag_kept_undecoded() -> None:
    # A factory-programmed tag has header 0xE2, which no GS1 scheme
    # uses, so it must get no GTIN. The edge's URI, here null, is kept.
    payload = movement("s", epcs=["E2009A9040060AF000000372"])

    tag = prepare_movement(payload, RECEIVED).tags[0]

    assert tag["scheme"] == "unknown"
    assert tag["gtin"] is None
    assert tag["uri"] is None


def test_check_digit_zero_gtin() -> None:
    # The weighted sum ends in 0, so the check digit is 0, not 10.
    payload = movement("s", epcs=["3036142C8C008F8000053244"])

    tag = prepare_movement(payload, RECEIVED).tags[0]

    assert tag["gtin"] == "08719139005740"
    assert tag["uri"] == "urn:epc:id:sgtin:8719139.000574.340548"


def test_nul_character_rejected() -> None:
    payload = movement("s")
    payload["clip"] = {"clip_id": "a\x00b", "camera_id": "cam-1", "status": "planned"}

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value) == "clip/clip_id contains a NUL character"


def test_overlong_epc_rejected() -> None:
    payload = movement("s", epcs=["3" + "0" * 131])

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value) == (
        "tags/0/epc has 132 hex digits; a Gen2 EPC has at most 124"
    )


def test_impossible_date_rejected() -> None:
    payload = movement("s")
    payload["started_at"] = "2025-02-30T08:00:00.000000Z"

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value).startswith(
        "started_at '2025-02-30T08:00:00.000000Z' is not a valid time"
    )


async def test_store_skips_repeats(database: Database) -> None:
    first = prepare_movement(movement("s", event_id="evt-repeat-01"), RECEIVED)
    other = prepare_movement(movement("s", seq=2, epcs=[sgtin(9)]), RECEIVED)

    async with database.transaction() as session:
        now = await store_movements(session, [first, first, other])
    async with database.transaction() as session:
        again = await store_movements(session, [first])

    assert sorted(now) == sorted(["evt-repeat-01", other.event_id])
    assert again == {}


def test_cursor_round_trip() -> None:
    moment = datetime(2025, 3, 1, 8, 0, 0, 999999, tzinfo=UTC)

    assert decode_cursor(encode_cursor(moment, 42)) == (moment, 42)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90LWEtY3Vyc29y", "MTo"])
def test_foreign_cursor_rejected(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


def test_seq_beyond_bigint_rejected() -> None:
    payload = movement("s", seq=2**63, epcs=[sgtin(1)], start_us=1_740_816_000_000_000)

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value) == f"seq {2**63} is larger than {2**63 - 1}"


def test_reads_beyond_integer_rejected() -> None:
    payload = movement("s")
    payload["tags"][0]["reads"] = 2**31

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value) == f"tags/0/reads {2**31} is larger than {2**31 - 1}"


def test_infinite_weight_rejected() -> None:
    # json.loads turns 1e400 into infinity, which JSON columns cannot store.
    payload = movement("s", weight_kg=float("inf"))

    with pytest.raises(InvalidMovement) as caught:
        prepare_movement(payload, RECEIVED)

    assert str(caught.value) == "weight/gross_kg inf is not a finite number"
