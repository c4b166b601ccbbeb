"""Movement storage and queries: the service behind the ingest and the movements API.

A movement is stored once per `event_id`. Its tags are decoded by the GS1 Tag Data
Standard on the way in, so that the API can find movements by EPC, GTIN or SSCC.
Rejected messages are kept in `dead_letters` for operators.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, Table, and_, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bwms.epc import decode_epc
from hub.storage.models import DeadLetter, Movement, MovementTag

MAX_PAGE = 1000
# The 5-bit length field of the Gen2 PC word counts 16-bit words, so an EPC has at
# most 31 words, which is 124 hex digits.
MAX_EPC_HEX = 124
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

Direction = Literal["in", "out", "unknown"]

# Core tables for bulk inserts, which skip the ORM's per-row bookkeeping.
MOVEMENTS = cast(Table, Movement.__table__)
MOVEMENT_TAGS = cast(Table, MovementTag.__table__)


class InvalidMovement(ValueError):
    """A movement that matches its schema but cannot be stored as it is."""


class InvalidCursor(ValueError):
    """A pagination cursor that this service did not issue."""


@dataclass(frozen=True)
class NewMovement:
    """A validated movement ready to insert: the row and its tag rows."""

    event_id: str
    row: dict[str, Any]
    tags: list[dict[str, Any]]


@dataclass(frozen=True)
class NewDeadLetter:
    """A rejected message ready to insert."""

    received_at: datetime
    topic: str
    payload: str
    payload_truncated: bool
    reason: str
    event_id: str | None = None
    site: str | None = None
    portal: str | None = None


def _time(payload_value: str, name: str) -> datetime:
    # The schema's pattern fixes the form, RFC 3339 UTC with microseconds, but not
    # the calendar, so 2025-02-30 gets this far.
    try:
        moment = datetime.fromisoformat(payload_value)
    except ValueError as exc:
        raise InvalidMovement(
            f"{name} {payload_value!r} is not a valid time: {exc}"
        ) from exc
    if moment.tzinfo is None:
        raise InvalidMovement(f"{name} {payload_value!r} has no UTC offset")
    return moment.astimezone(UTC)


def _check_no_nul(value: str | None, where: str) -> None:
    # PostgreSQL text cannot contain U+0000, so such a payload would store on SQLite
    # but fail on PostgreSQL; it is rejected on both. Only the strings checked here
    # reach a text column without a schema pattern that already excludes U+0000.
    if value is not None and "\x00" in value:
        raise InvalidMovement(f"{where} contains a NUL character")


def _check_range(value: int, maximum: int, where: str) -> None:
    # The schema bounds these integers below only, and a value past the column's
    # type would fail the whole batch's insert instead of this one movement.
    if value > maximum:
        raise InvalidMovement(f"{where} {value} is larger than {maximum}")


def _check_finite(value: float | None, where: str) -> None:
    # JSON numbers like 1e400 parse to infinity, which JSON columns cannot store.
    if value is not None and not math.isfinite(value):
        raise InvalidMovement(f"{where} {value} is not a finite number")


def _tag_row(tag: dict[str, Any], index: int) -> dict[str, Any]:
    epc = tag["epc"]
    _check_no_nul(tag["uri"], f"tags/{index}/uri")
    _check_range(tag["reads"], INT32_MAX, f"tags/{index}/reads")
    _check_finite(tag["peak_rssi_dbm"], f"tags/{index}/peak_rssi_dbm")
    if len(epc) > MAX_EPC_HEX:
        raise InvalidMovement(
            f"tags/{index}/epc has {len(epc)} hex digits; a Gen2 EPC has at most "
            f"{MAX_EPC_HEX}"
        )

    decoded = decode_epc(epc)
    scheme = str(decoded["scheme"])
    decoded_uri = decoded.get("uri")
    gtin = decoded.get("gtin")
    sscc = decoded.get("sscc")

    first_seen = _time(tag["first_seen"], f"tags/{index}/first_seen")
    last_seen = _time(tag["last_seen"], f"tags/{index}/last_seen")
    if last_seen < first_seen:
        raise InvalidMovement(f"tags/{index}: last_seen is before first_seen")

    return {
        "epc": epc,
        "scheme": scheme,
        # The hub's decoder is authoritative; the edge's URI is kept only for EPCs
        # that the decoder cannot place in a GS1 scheme.
        "uri": decoded_uri if decoded_uri is not None else tag["uri"],
        "gtin": gtin if isinstance(gtin, str) else None,
        "sscc": sscc if isinstance(sscc, str) else None,
        "reads": tag["reads"],
        "first_seen": first_seen,
        "last_seen": last_seen,
        "antennas": list(tag["antennas"]),
        "peak_rssi_dbm": tag["peak_rssi_dbm"],
    }


def prepare_movement(payload: dict[str, Any], received_at: datetime) -> NewMovement:
    """Convert a schema-valid bwms.movement/1 payload into rows, raising InvalidMovement.

    The checks here are those the JSON Schema cannot express: real calendar times,
    ended_at not before started_at, each EPC once per movement, no NUL characters,
    finite numbers, and integers that fit their columns.
    """
    started_at = _time(payload["started_at"], "started_at")
    ended_at = _time(payload["ended_at"], "ended_at")
    if ended_at < started_at:
        raise InvalidMovement(
            f"ended_at {payload['ended_at']} is before started_at {payload['started_at']}"
        )

    tags = [_tag_row(tag, index) for index, tag in enumerate(payload["tags"])]
    seen: set[str] = set()
    for tag in tags:
        if tag["epc"] in seen:
            raise InvalidMovement(f"EPC {tag['epc']} appears more than once in tags")
        seen.add(tag["epc"])

    weight = payload["weight"]
    clip = payload["clip"]
    if clip is not None:
        _check_no_nul(clip["clip_id"], "clip/clip_id")
    if weight is not None:
        _check_finite(weight["gross_kg"], "weight/gross_kg")
    _check_range(payload["seq"], INT64_MAX, "seq")
    row = {
        "event_id": payload["event_id"],
        "site": payload["site"],
        "portal": payload["portal"],
        "portal_kind": payload["portal_kind"],
        "direction": payload["direction"],
        "started_at": started_at,
        "ended_at": ended_at,
        "seq": payload["seq"],
        "tag_count": len(tags),
        "weight_kg": weight["gross_kg"] if weight else None,
        "clip_id": clip["clip_id"] if clip else None,
        "clip_status": clip["status"] if clip else None,
        "payload": payload,
        "received_at": received_at,
    }
    return NewMovement(event_id=payload["event_id"], row=row, tags=tags)


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    # INSERT ... ON CONFLICT (event_id) DO NOTHING exists in both dialects
    # (SQLite 3.24+, PostgreSQL 9.5+); the dialect decides which construct renders it.
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(MOVEMENTS)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(MOVEMENTS.c.id, MOVEMENTS.c.event_id)
    )


async def store_movements(
    session: AsyncSession, movements: Sequence[NewMovement]
) -> dict[str, int]:
    """Insert the movements not stored yet, with their tags, inside the caller's transaction.

    Returns the database id of each movement inserted now, by event_id. An event_id
    that is already stored, or repeated within `movements`, is skipped and absent from
    the result.
    """
    unique: dict[str, NewMovement] = {}
    for movement in movements:
        unique.setdefault(movement.event_id, movement)
    if not unique:
        return {}

    result = await session.execute(
        _insert_ignoring_duplicates(session), [m.row for m in unique.values()]
    )
    inserted = {event_id: movement_id for movement_id, event_id in result.all()}

    tag_rows = [
        {**tag, "movement_id": inserted[event_id]}
        for event_id, movement in unique.items()
        if event_id in inserted
        for tag in movement.tags
    ]
    if tag_rows:
        await session.execute(insert(MOVEMENT_TAGS), tag_rows)
    return inserted


async def store_dead_letters(
    session: AsyncSession, letters: Iterable[NewDeadLetter]
) -> int:
    """Insert rejected messages inside the caller's transaction; return how many."""
    rows = [letter.__dict__ for letter in letters]
    if rows:
        await session.execute(insert(DeadLetter), rows)
    return len(rows)


async def stored_event_ids(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    """Return which of `event_ids` are stored."""
    requested = list(set(event_ids))
    found: set[str] = set()
    # Chunks keep each IN list well under SQLite's bound-parameter limit.
    for start in range(0, len(requested), 500):
        chunk = requested[start : start + 500]
        rows = await session.scalars(
            select(Movement.event_id).where(Movement.event_id.in_(chunk))
        )
        found.update(rows)
    return found


async def count_movements(session: AsyncSession) -> int:
    """Return how many movements are stored."""
    return int(await session.scalar(select(func.count()).select_from(Movement)) or 0)


class TagOut(BaseModel):
    """One EPC of a movement with its GS1 decoding."""

    model_config = ConfigDict(from_attributes=True)

    epc: str = Field(description="EPC as uppercase hex.")
    scheme: str = Field(description="GS1 TDS binary scheme, e.g. sgtin-96, or unknown.")
    uri: str | None = Field(description="GS1 pure-identity URI.")
    gtin: str | None = Field(description="GTIN-14 of an SGTIN.")
    sscc: str | None = Field(description="SSCC-18 of an SSCC.")
    reads: int
    first_seen: datetime = Field(description="Reader time of the first read, UTC.")
    last_seen: datetime = Field(description="Reader time of the last read, UTC.")
    antennas: list[int] = Field(description="LLRP antenna ids that read the tag.")
    peak_rssi_dbm: float | None


class MovementOut(BaseModel):
    """A stored movement and its tags."""

    model_config = ConfigDict(from_attributes=True)

    event_id: str
    site: str
    portal: str
    portal_kind: str
    direction: str
    started_at: datetime = Field(description="Reader time the movement began, UTC.")
    ended_at: datetime = Field(description="Reader time the movement ended, UTC.")
    seq: int = Field(description="Per-portal sequence number from the edge.")
    tag_count: int
    weight_kg: float | None = Field(
        description="Gross weight from the portal scale, kg."
    )
    clip_id: str | None
    clip_status: str | None
    received_at: datetime = Field(description="Hub time the movement was stored, UTC.")
    tags: list[TagOut]


class MovementPage(BaseModel):
    """One page of movements, newest first."""

    items: list[MovementOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class DeadLetterOut(BaseModel):
    """A rejected message."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    topic: str
    payload: str = Field(description="Raw payload as text, invalid UTF-8 replaced.")
    payload_truncated: bool
    reason: str = Field(description="Reason code, a colon, and the detail.")
    event_id: str | None
    site: str | None
    portal: str | None


@dataclass(frozen=True)
class MovementQuery:
    """Filters of a movement search; None leaves a filter out."""

    portal: str | None = None
    direction: Direction | None = None
    since: datetime | None = None
    until: datetime | None = None
    epc: str | None = None
    gtin: str | None = None
    sscc: str | None = None
    limit: int = 100
    cursor: str | None = None


def encode_cursor(started_at: datetime, movement_id: int) -> str:
    """Encode the position after one movement as an opaque cursor."""
    epoch_us = (started_at - EPOCH) // timedelta(microseconds=1)
    raw = f"{epoch_us}:{movement_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Decode a cursor into (started_at, id), raising InvalidCursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        epoch_text, id_text = text.split(":")
        epoch_us, movement_id = int(epoch_text), int(id_text)
        seconds, micros = divmod(epoch_us, 1_000_000)
        started_at = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    except (
        binascii.Error,
        UnicodeDecodeError,
        ValueError,
        OverflowError,
        OSError,
    ) as exc:
        raise InvalidCursor(
            f"invalid cursor {cursor!r}; use next_cursor of a page"
        ) from exc
    return started_at, movement_id


def _require_utc(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} {value.isoformat()} needs a UTC offset, e.g. Z")
    return value


def _filtered(query: MovementQuery) -> Select[Movement]:
    statement = select(Movement)
    if query.portal is not None:
        statement = statement.where(Movement.portal == query.portal)
    if query.direction is not None:
        statement = statement.where(Movement.direction == query.direction)
    since = _require_utc("since", query.since)
    until = _require_utc("until", query.until)
    if since is not None:
        statement = statement.where(Movement.started_at >= since)
    if until is not None:
        statement = statement.where(Movement.started_at < until)

    tag_conditions = []
    if query.epc is not None:
        tag_conditions.append(MovementTag.epc == query.epc.strip().upper())
    if query.gtin is not None:
        tag_conditions.append(MovementTag.gtin == query.gtin.strip())
    if query.sscc is not None:
        tag_conditions.append(MovementTag.sscc == query.sscc.strip())
    for condition in tag_conditions:
        # One IN (subquery) per condition: a movement may match the EPC on one tag
        # and the GTIN on another, and a join would repeat the movement per
        # matching tag. SQLite runs a correlated EXISTS once per movement row; the
        # uncorrelated subquery uses the tag index instead.
        statement = statement.where(
            Movement.id.in_(select(MovementTag.movement_id).where(condition))
        )
    return statement


async def list_movements(session: AsyncSession, query: MovementQuery) -> MovementPage:
    """Return one page of movements matching `query`, newest started_at first.

    Raises InvalidCursor for a cursor this service did not issue and ValueError for
    a limit outside 1..1000 or a time without a UTC offset.
    """
    if not 1 <= query.limit <= MAX_PAGE:
        raise ValueError(f"limit {query.limit} is outside 1..{MAX_PAGE}")
    statement = _filtered(query)
    if query.cursor is not None:
        after_started, after_id = decode_cursor(query.cursor)
        statement = statement.where(
            or_(
                Movement.started_at < after_started,
                and_(Movement.started_at == after_started, Movement.id < after_id),
            )
        )
    statement = (
        statement.options(selectinload(Movement.tags))
        .order_by(Movement.started_at.desc(), Movement.id.desc())
        .limit(query.limit + 1)
    )
    rows = list((await session.scalars(statement)).all())
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1].started_at, rows[-1].id) if has_more else None
    return MovementPage(
        items=[MovementOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


async def get_movement(session: AsyncSession, event_id: str) -> MovementOut | None:
    """Return the movement with this event_id, or None."""
    statement = (
        select(Movement)
        .where(Movement.event_id == event_id)
        .options(selectinload(Movement.tags))
    )
    row = await session.scalar(statement)
    return MovementOut.model_validate(row) if row is not None else None


async def list_dead_letters(
    session: AsyncSession, limit: int = 100
) -> list[DeadLetterOut]:
    """Return the newest rejected messages first."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit {limit} is outside 1..{MAX_PAGE}")
    statement = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    rows = (await session.scalars(statement)).all()
    return [DeadLetterOut.model_validate(row) for row in rows]
