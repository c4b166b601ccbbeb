"""Manifest storage and reconciliation over the hub's database.

Routers, the CSV import and the demo call these functions with an AsyncSession.
Functions that write only flush, and the caller commits. Several calls can then share
one transaction, as the CSV import does for a whole file.

`now` parameters exist so that tests can place the clock; they default to the
current UTC time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bwms.epc import decode_epc
from bwms.site import Site
from hub.manifests.matching import (
    OPEN_STATUSES,
    ContentData,
    Direction,
    LineData,
    ManifestData,
    ManifestStatus,
    ManualConfirmation,
    MovementData,
    Reconciliation,
    TagData,
    UnexpectedTag,
    lines_counting,
    reconcile,
)
from hub.manifests.models import Manifest, ManifestConfirmation, ManifestLine
from hub.manifests.schemas import (
    DEFAULT_HS_CODE_DIGITS,
    ConfirmIn,
    ContentOut,
    LineOut,
    ManifestIn,
    ManifestOut,
    ManifestSummary,
)
from hub.manifests.validation import parse_manifest
from hub.storage.models import Movement, MovementTag

logger = logging.getLogger(__name__)

MAX_PAGE = 1000


class ManifestExists(ValueError):
    """A manifest id that is already stored."""

    def __init__(self, manifest_id: str) -> None:
        super().__init__(f"manifest {manifest_id} already exists")
        self.manifest_id = manifest_id


class ManifestNotFound(LookupError):
    """A manifest id, or a line number of a manifest, that is not stored."""


class ConfirmationRejected(ValueError):
    """A manual confirmation that does not fit the line it names."""


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# --- create -----------------------------------------------------------------------


def _line_row(manifest_id: str, line: Any) -> dict[str, Any]:
    return {
        "manifest_id": manifest_id,
        "line_no": line.line_no,
        "gtin": line.gtin,
        "sscc": line.sscc,
        "epcs": line.epcs,
        "quantity": line.quantity,
        "unit": line.unit,
        "description": line.description,
        "hs_code": line.hs_code,
        "batch": line.batch,
        "gross_kg": line.gross_kg,
        "contents": [content.model_dump() for content in line.contents],
    }


async def existing_manifest_ids(session: AsyncSession, manifest_ids: Iterable[str]) -> set[str]:
    """Return which of the given manifest ids are already stored."""
    requested = list(dict.fromkeys(manifest_ids))
    found: set[str] = set()
    # Chunks keep each statement under the drivers' bind parameter limits.
    for start in range(0, len(requested), 500):
        chunk = requested[start : start + 500]
        rows = await session.scalars(
            select(Manifest.manifest_id).where(Manifest.manifest_id.in_(chunk))
        )
        found.update(rows)
    return found


async def store_manifests(
    session: AsyncSession, manifests: Sequence[ManifestIn], *, now: datetime | None = None
) -> None:
    """Insert manifests that `parse_manifest` has validated, and flush.

    Raises ManifestExists for the first manifest id already stored; the caller then
    rolls back, so none of them is kept.
    """
    existing = await existing_manifest_ids(session, (m.manifest_id for m in manifests))
    for manifest in manifests:
        if manifest.manifest_id in existing:
            raise ManifestExists(manifest.manifest_id)

    created_at = _now(now)
    for manifest in manifests:
        session.add(
            Manifest(
                manifest_id=manifest.manifest_id,
                direction=manifest.direction,
                declaration_no=manifest.declaration_no,
                site=manifest.site,
                portals=list(manifest.portals),
                window_start=manifest.window_start,
                window_end=manifest.window_end,
                status=ManifestStatus.PENDING.value,
                created_at=created_at,
            )
        )
    try:
        await session.flush()
        # Bulk inserts: one executemany per batch instead of one ORM object per line.
        rows = [
            _line_row(manifest.manifest_id, line)
            for manifest in manifests
            for line in manifest.lines
        ]
        for start in range(0, len(rows), 5000):
            await session.execute(insert(ManifestLine), rows[start : start + 5000])
    except IntegrityError as exc:
        # Another request stored the same id between the check and the insert.
        raise ManifestExists(_duplicate_of(manifests, exc)) from exc
    for manifest in manifests:
        logger.info(
            "manifest %s: stored, %s %s, declaration %s, %s lines",
            manifest.manifest_id,
            manifest.direction,
            ",".join(manifest.portals),
            manifest.declaration_no,
            len(manifest.lines),
        )


def _duplicate_of(manifests: Sequence[ManifestIn], exc: IntegrityError) -> str:
    text = str(exc.orig)
    for manifest in manifests:
        if manifest.manifest_id in text:
            return manifest.manifest_id
    return manifests[0].manifest_id if len(manifests) == 1 else "(one of the file's)"


async def create_manifest(
    session: AsyncSession,
    data: ManifestIn | Mapping[str, Any],
    site: Site | None,
    hs_code_digits: int = DEFAULT_HS_CODE_DIGITS,
    *,
    now: datetime | None = None,
) -> ManifestOut:
    """Validate and store one manifest, and return it as stored.

    Raises ManifestInvalid with every issue, or ManifestExists. The caller commits.
    """
    payload = data.model_dump(mode="json") if isinstance(data, ManifestIn) else data
    manifest = parse_manifest(payload, site=site, hs_code_digits=hs_code_digits)
    await store_manifests(session, [manifest], now=now)
    return await get_manifest(session, manifest.manifest_id)


# --- read -------------------------------------------------------------------------


async def _load(session: AsyncSession, manifest_id: str) -> Manifest:
    manifest = await session.scalar(select(Manifest).where(Manifest.manifest_id == manifest_id))
    if manifest is None:
        raise ManifestNotFound(f"manifest {manifest_id} not found")
    return manifest


async def _load_lines(session: AsyncSession, manifest_id: str) -> list[ManifestLine]:
    rows = await session.scalars(
        select(ManifestLine)
        .where(ManifestLine.manifest_id == manifest_id)
        .order_by(ManifestLine.line_no)
    )
    return list(rows)


def _line_out(line: ManifestLine) -> LineOut:
    return LineOut(
        line_no=line.line_no,
        gtin=line.gtin,
        sscc=line.sscc,
        epcs=line.epcs,
        quantity=line.quantity,
        unit=line.unit,
        description=line.description,
        hs_code=line.hs_code,
        batch=line.batch,
        gross_kg=line.gross_kg,
        contents=[ContentOut.model_validate(content) for content in line.contents],
    )


def _header_fields(manifest: Manifest) -> dict[str, Any]:
    """Return the manifest fields that a summary and a full manifest share."""
    return {
        "manifest_id": manifest.manifest_id,
        "direction": manifest.direction,
        "declaration_no": manifest.declaration_no,
        "site": manifest.site,
        "portals": manifest.portals,
        "window_start": manifest.window_start,
        "window_end": manifest.window_end,
        "status": manifest.status,
        "created_at": manifest.created_at,
        "closed_at": manifest.closed_at,
    }


async def get_manifest(session: AsyncSession, manifest_id: str) -> ManifestOut:
    """Return one manifest with its lines, or raise ManifestNotFound."""
    manifest = await _load(session, manifest_id)
    lines = await _load_lines(session, manifest_id)
    return ManifestOut(
        **_header_fields(manifest),
        closed_by=manifest.closed_by,
        lines=[_line_out(line) for line in lines],
    )


async def list_manifests(
    session: AsyncSession,
    *,
    status: str | None = None,
    direction: str | None = None,
    declaration_no: str | None = None,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> list[ManifestSummary]:
    """List manifests, newest first, filtered on status, direction and declaration.

    The statuses of manifests still pending or receiving are computed again first,
    so a manifest whose window has ended shows its final status.
    """
    await refresh_open_statuses(session, now=now)

    line_count = (
        select(func.count())
        .where(ManifestLine.manifest_id == Manifest.manifest_id)
        .correlate(Manifest)
        .scalar_subquery()
    )
    query = select(Manifest, line_count)
    if status is not None:
        query = query.where(Manifest.status == status)
    if direction is not None:
        query = query.where(Manifest.direction == direction)
    if declaration_no is not None:
        query = query.where(Manifest.declaration_no == declaration_no)
    query = query.order_by(Manifest.created_at.desc(), Manifest.id.desc())
    query = query.limit(min(limit, MAX_PAGE)).offset(offset)

    result = await session.execute(query)
    return [
        ManifestSummary(
            **_header_fields(manifest),
            line_count=count,
        )
        for manifest, count in result.all()
    ]


# --- reconciliation ---------------------------------------------------------------


def _manifest_data(manifest: Manifest, lines: Sequence[ManifestLine]) -> ManifestData:
    return ManifestData(
        manifest_id=manifest.manifest_id,
        direction=Direction(manifest.direction),
        site=manifest.site,
        portals=frozenset(manifest.portals),
        window_start=manifest.window_start,
        window_end=manifest.window_end,
        lines=tuple(
            LineData(
                line_no=line.line_no,
                quantity=line.quantity,
                gtin=line.gtin,
                sscc=line.sscc,
                epcs=tuple(line.epcs or ()),
                contents=tuple(
                    ContentData(
                        quantity=int(content["quantity"]),
                        gtin=content.get("gtin"),
                        epcs=tuple(content.get("epcs") or ()),
                    )
                    for content in line.contents
                ),
                unit=line.unit,
                description=line.description,
            )
            for line in lines
        ),
    )


def _movement_filter(manifest: Manifest) -> list[Any]:
    conditions: list[Any] = [
        Movement.site == manifest.site,
        Movement.portal.in_(manifest.portals),
        # Movements of unknown direction are loaded too, so that the manifest's
        # tags among them can be shown to the receiving team (never counted).
        Movement.direction.in_([manifest.direction, "unknown"]),
    ]
    if manifest.window_start is not None:
        conditions.append(Movement.started_at >= manifest.window_start)
    if manifest.window_end is not None:
        conditions.append(Movement.started_at <= manifest.window_end)
    return conditions


async def _load_movements(session: AsyncSession, manifest: Manifest) -> list[MovementData]:
    conditions = _movement_filter(manifest)
    movements = await session.execute(
        select(
            Movement.id,
            Movement.event_id,
            Movement.site,
            Movement.portal,
            Movement.direction,
            Movement.started_at,
        ).where(*conditions)
    )
    heads = {row.id: row for row in movements}
    tags: dict[int, list[TagData]] = {movement_id: [] for movement_id in heads}

    rows = await session.stream(
        select(
            MovementTag.movement_id,
            MovementTag.epc,
            MovementTag.scheme,
            MovementTag.uri,
            MovementTag.gtin,
            MovementTag.sscc,
        )
        .join(Movement, Movement.id == MovementTag.movement_id)
        .where(*conditions)
        .execution_options(yield_per=10_000)
    )
    async for row in rows:
        tags[row.movement_id].append(
            TagData(epc=row.epc, scheme=row.scheme, uri=row.uri, gtin=row.gtin, sscc=row.sscc)
        )

    return [
        MovementData(
            event_id=head.event_id,
            site=head.site,
            portal=head.portal,
            direction=head.direction,
            started_at=head.started_at,
            tags=tuple(tags[movement_id]),
        )
        for movement_id, head in heads.items()
    ]


def _tag_of(epc: str) -> TagData:
    decoded = decode_epc(epc)
    return TagData(
        epc=epc,
        scheme=str(decoded["scheme"]),
        uri=_text(decoded.get("uri")),
        gtin=_text(decoded.get("gtin")),
        sscc=_text(decoded.get("sscc")),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def _load_confirmations(
    session: AsyncSession, manifest_id: str
) -> list[ManifestConfirmation]:
    rows = await session.scalars(
        select(ManifestConfirmation)
        .where(ManifestConfirmation.manifest_id == manifest_id)
        .order_by(ManifestConfirmation.confirmed_at, ManifestConfirmation.id)
    )
    return list(rows)


def _manual(confirmations: Sequence[ManifestConfirmation]) -> list[ManualConfirmation]:
    return [
        ManualConfirmation(
            line_no=row.line_no,
            by=row.confirmed_by,
            reason=row.reason,
            confirmed_at=row.confirmed_at,
            tags=tuple(_tag_of(epc) for epc in row.epcs or ()),
            quantity=row.quantity or 0,
        )
        for row in confirmations
    ]


def is_closed(manifest: Manifest, now: datetime) -> bool:
    """Return whether a manifest was closed by hand or its window has ended."""
    if manifest.closed_at is not None:
        return True
    return manifest.window_end is not None and now > manifest.window_end


async def _reconcile(
    session: AsyncSession, manifest: Manifest, now: datetime
) -> tuple[Reconciliation, list[ManifestConfirmation]]:
    lines = await _load_lines(session, manifest.manifest_id)
    movements = await _load_movements(session, manifest)
    confirmations = await _load_confirmations(session, manifest.manifest_id)
    result = reconcile(
        _manifest_data(manifest, lines),
        movements,
        _manual(confirmations),
        closed=is_closed(manifest, now),
    )
    if manifest.status != result.status.value:
        logger.info(
            "manifest %s: status %s -> %s",
            manifest.manifest_id,
            manifest.status,
            result.status.value,
        )
        manifest.status = result.status.value
        await session.flush()
    return result, confirmations


def _confirmation_dict(row: ManifestConfirmation) -> dict[str, Any]:
    return {
        "line_no": row.line_no,
        "epcs": row.epcs,
        "quantity": row.quantity,
        "by": row.confirmed_by,
        "reason": row.reason,
        "confirmed_at": row.confirmed_at,
    }


def _tag_dict(tag: UnexpectedTag) -> dict[str, Any]:
    return {
        "epc": tag.epc,
        "scheme": tag.scheme,
        "uri": tag.uri,
        "gtin": tag.gtin,
        "sscc": tag.sscc,
        "event_id": tag.event_id,
    }


def _reconciliation_dict(
    manifest: Manifest,
    result: Reconciliation,
    confirmations: Sequence[ManifestConfirmation],
    now: datetime,
) -> dict[str, Any]:
    return {
        "manifest_id": manifest.manifest_id,
        "declaration_no": manifest.declaration_no,
        "direction": manifest.direction,
        "status": result.status.value,
        "closed": result.closed,
        "closed_at": manifest.closed_at,
        "window_start": manifest.window_start,
        "window_end": manifest.window_end,
        "computed_at": now,
        "lines": [
            {
                "line_no": line.line_no,
                "gtin": line.gtin,
                "sscc": line.sscc,
                "unit": line.unit,
                "description": line.description,
                "expected": line.expected,
                "received": line.received,
                "confirmed_manually": line.confirmed_manually,
                "missing_epcs": line.missing_epcs,
                "status": line.status.value,
                "contents": [
                    {
                        "gtin": content.gtin,
                        "expected": content.expected,
                        "received": content.received,
                        "confirmed_manually": content.confirmed_manually,
                        "missing_epcs": content.missing_epcs,
                        "status": content.status.value,
                    }
                    for content in line.contents
                ],
            }
            for line in result.lines
        ],
        "unexpected": [_tag_dict(tag) for tag in result.unexpected],
        "direction_unknown": [_tag_dict(tag) for tag in result.direction_unknown],
        "event_ids": result.event_ids,
        "confirmations": [_confirmation_dict(row) for row in confirmations],
    }


async def reconciliation(
    session: AsyncSession, manifest_id: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Reconcile a manifest against the stored movements and return the result.

    The result is computed from every stored movement each time, so late and resent
    movements count. The manifest's stored status is updated (flushed, not
    committed). Raises ManifestNotFound.
    """
    moment = _now(now)
    manifest = await _load(session, manifest_id)
    result, confirmations = await _reconcile(session, manifest, moment)
    return _reconciliation_dict(manifest, result, confirmations, moment)


async def refresh_open_statuses(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Recompute the status of every manifest that is still pending or receiving.

    Returns how many changed. A final status changes later only when a late movement
    arrives, and is updated the next time that manifest's reconciliation is read.
    """
    moment = _now(now)
    manifests = await session.scalars(
        select(Manifest).where(Manifest.status.in_([s.value for s in OPEN_STATUSES]))
    )
    changed = 0
    for manifest in list(manifests):
        before = manifest.status
        await _reconcile(session, manifest, moment)
        changed += manifest.status != before
    return changed


# --- close and confirm ------------------------------------------------------------


async def close_manifest(
    session: AsyncSession,
    manifest_id: str,
    *,
    by: str | None = None,
    now: datetime | None = None,
) -> None:
    """Close a manifest so that its result becomes final. Closing it again changes nothing.

    Raises ManifestNotFound. The caller commits.
    """
    moment = _now(now)
    manifest = await _load(session, manifest_id)
    if manifest.closed_at is None:
        manifest.closed_at = moment
        manifest.closed_by = by
        logger.info("manifest %s: closed by %s", manifest_id, by or "(not given)")
    await _reconcile(session, manifest, moment)


async def confirm_units(
    session: AsyncSession,
    manifest_id: str,
    line_no: int,
    data: ConfirmIn,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record units of one line that a keeper confirmed by hand, and return the record.

    Each EPC must be one that would count against this line if it were read.
    Raises ManifestNotFound for an unknown manifest or line, and
    ConfirmationRejected for an EPC of another line or of none. The caller commits.
    """
    moment = _now(now)
    manifest = await _load(session, manifest_id)
    lines = await _load_lines(session, manifest_id)
    if all(line.line_no != line_no for line in lines):
        raise ManifestNotFound(f"manifest {manifest_id} has no line {line_no}")

    if data.epcs:
        owners = lines_counting(
            _manifest_data(manifest, lines), [_tag_of(epc) for epc in data.epcs]
        )
        wrong = [epc for epc in data.epcs if line_no not in owners[epc]]
        if wrong:
            raise ConfirmationRejected(
                f"EPC {wrong[0]} does not belong to line {line_no} of manifest "
                f"{manifest_id}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
            )

    row = ManifestConfirmation(
        manifest_id=manifest_id,
        line_no=line_no,
        epcs=data.epcs,
        quantity=data.quantity,
        confirmed_by=data.by,
        reason=data.reason,
        confirmed_at=moment,
    )
    session.add(row)
    await session.flush()
    logger.info(
        "manifest %s: line %s: %s confirmed by hand by %s: %s",
        manifest_id,
        line_no,
        f"{len(data.epcs)} EPCs" if data.epcs else f"quantity {data.quantity}",
        data.by,
        data.reason,
    )
    await _reconcile(session, manifest, moment)
    return {"manifest_id": manifest_id, **_confirmation_dict(row)}
