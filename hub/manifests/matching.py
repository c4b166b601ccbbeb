"""Reconciliation of one manifest against the movements that passed its portals.

Pure code over plain dataclasses: no database, no clock. The service loads the data
and calls `reconcile`. The rules are written out in docs/manifests.md. In short:

- A movement matches when it is at the manifest's site, passes one of its portals in
  its direction, and starts inside its window (both ends inclusive, either open).
- Tags count once per EPC, however many matching movements carry them.
- An EPC listed on a line or in a pallet's contents counts against that entry. An
  SSCC counts against the pallet line with that SSCC. An SGTIN counts against the
  line or pallet contents entry with its GTIN. Anything else is unexpected.
- When several entries expect the same GTIN, RFID cannot tell which one a carton
  belongs to (an SGTIN carries no batch), so their counts are pooled and handed out
  in line order. See `_allocate`.

Cost is linear in lines, contents, listed EPCs and tags: every lookup is a dict.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

logger = logging.getLogger(__name__)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class LineStatus(StrEnum):
    COMPLETE = "complete"
    SHORT = "short"
    OVER = "over"


class ManifestStatus(StrEnum):
    PENDING = "pending"
    RECEIVING = "receiving"
    COMPLETE = "complete"
    SHORT = "short"
    OVER = "over"
    DISCREPANT = "discrepant"


OPEN_STATUSES = frozenset({ManifestStatus.PENDING, ManifestStatus.RECEIVING})


# --- input ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentData:
    """One entry of a pallet's contents: a GTIN with a quantity, or listed EPCs."""

    quantity: int
    gtin: str | None = None
    epcs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LineData:
    """One manifest line, identified by exactly one of gtin, sscc or epcs."""

    line_no: int
    quantity: int
    gtin: str | None = None
    sscc: str | None = None
    epcs: tuple[str, ...] = ()
    contents: tuple[ContentData, ...] = ()
    unit: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ManifestData:
    manifest_id: str
    direction: Direction
    site: str
    portals: frozenset[str]
    lines: tuple[LineData, ...]
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class TagData:
    """One EPC with its decoded identity. `epc` is uppercase hex."""

    epc: str
    scheme: str = "unknown"
    uri: str | None = None
    gtin: str | None = None
    sscc: str | None = None


@dataclass(frozen=True, slots=True)
class MovementData:
    event_id: str
    site: str
    portal: str
    direction: str
    started_at: datetime
    tags: tuple[TagData, ...] = ()


@dataclass(frozen=True, slots=True)
class ManualConfirmation:
    """Units a keeper confirmed by hand on one line: EPCs, or a bare quantity."""

    line_no: int
    by: str
    reason: str
    confirmed_at: datetime
    tags: tuple[TagData, ...] = ()
    quantity: int = 0


# --- output ---------------------------------------------------------------------


@dataclass(slots=True)
class ContentResult:
    gtin: str | None
    expected: int
    received: int
    confirmed_manually: int
    missing_epcs: list[str] | None
    status: LineStatus


@dataclass(slots=True)
class LineResult:
    line_no: int
    gtin: str | None
    sscc: str | None
    unit: str
    description: str
    expected: int
    received: int
    confirmed_manually: int
    missing_epcs: list[str] | None
    status: LineStatus
    contents: list[ContentResult]


@dataclass(slots=True)
class UnexpectedTag:
    epc: str
    scheme: str
    uri: str | None
    gtin: str | None
    sscc: str | None
    event_id: str


@dataclass(slots=True)
class Reconciliation:
    manifest_id: str
    status: ManifestStatus
    closed: bool
    lines: list[LineResult]
    unexpected: list[UnexpectedTag]
    event_ids: list[str]
    # Manifest tags read at one of its portals in its window, but in movements whose
    # direction the edge could not tell. They count for nothing; the receiving team
    # confirms them by hand if they did arrive.
    direction_unknown: list[UnexpectedTag] = field(default_factory=list)


# --- matching -------------------------------------------------------------------


def movement_matches(
    manifest: ManifestData, movement: MovementData, *, direction: str | None = None
) -> bool:
    """Return whether a movement passed one of the manifest's portals as expected.

    `direction` replaces the manifest's own direction in the test, to find the
    movements of unknown direction at its portals.
    """
    if movement.site != manifest.site or movement.portal not in manifest.portals:
        return False
    if movement.direction != (direction or manifest.direction.value):
        return False
    if manifest.window_start is not None and movement.started_at < manifest.window_start:
        return False
    if manifest.window_end is not None and movement.started_at > manifest.window_end:
        return False
    return True


@dataclass(slots=True, eq=False)
class _Entry:
    """One expected quantity being counted: a line or one pallet contents entry."""

    expected: int
    listed: tuple[str, ...] = ()
    received: int = 0
    manual: int = 0
    received_epcs: set[str] = field(default_factory=set)
    manual_epcs: set[str] = field(default_factory=set)

    def status(self) -> LineStatus:
        total = self.received + self.manual
        if total < self.expected:
            return LineStatus.SHORT
        if total > self.expected:
            return LineStatus.OVER
        return LineStatus.COMPLETE

    def missing(self) -> list[str] | None:
        if not self.listed:
            return None
        return [
            epc
            for epc in self.listed
            if epc not in self.received_epcs and epc not in self.manual_epcs
        ]


@dataclass(slots=True, eq=False)
class _Pool:
    """Entries that share one GTIN or SSCC, with the units counted for the key."""

    entries: list[_Entry] = field(default_factory=list)
    received: int = 0
    manual: int = 0


@dataclass(slots=True)
class _Index:
    """Lookup tables from a manifest's EPCs, SSCCs and GTINs to what they count against."""

    by_epc: dict[str, _Entry] = field(default_factory=dict)
    by_sscc: dict[str, _Pool] = field(default_factory=dict)
    by_gtin: dict[str, _Pool] = field(default_factory=dict)
    # For each line: its own entry, the pool it counts through (if any), and the
    # entries of its contents, in manifest order.
    lines: dict[int, tuple[LineData, _Entry, _Pool | None, list[_Entry]]] = field(
        default_factory=dict
    )

    def target(self, tag: TagData) -> _Entry | _Pool | None:
        """Return the entry or pool a tag counts against, or None if unexpected."""
        entry = self.by_epc.get(tag.epc)
        if entry is not None:
            return entry
        if tag.sscc is not None and tag.sscc in self.by_sscc:
            return self.by_sscc[tag.sscc]
        if tag.gtin is not None and tag.gtin in self.by_gtin:
            return self.by_gtin[tag.gtin]
        return None


def _pool(pools: dict[str, _Pool], key: str, entry: _Entry) -> _Pool:
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = _Pool()
    pool.entries.append(entry)
    return pool


def _build_index(manifest: ManifestData) -> _Index:
    index = _Index()
    for line in sorted(manifest.lines, key=lambda item: item.line_no):
        entry = _Entry(expected=line.quantity, listed=tuple(line.epcs))
        pool: _Pool | None = None
        if line.sscc is not None:
            pool = _pool(index.by_sscc, line.sscc, entry)
        elif line.gtin is not None:
            pool = _pool(index.by_gtin, line.gtin, entry)
        for epc in line.epcs:
            index.by_epc[epc] = entry

        content_entries: list[_Entry] = []
        for content in line.contents:
            item = _Entry(expected=content.quantity, listed=tuple(content.epcs))
            if content.gtin is not None:
                _pool(index.by_gtin, content.gtin, item)
            for epc in content.epcs:
                index.by_epc[epc] = item
            content_entries.append(item)

        index.lines[line.line_no] = (line, entry, pool, content_entries)
    return index


def _allocate(pool: _Pool) -> None:
    """Hand a pool's counts to its entries in line order.

    RFID units fill each entry up to its expected quantity, then manual units fill
    what is still short. Whatever is left goes to the last entry, so a surplus shows
    as over on one line instead of vanishing.
    """
    remaining = pool.received
    for entry in pool.entries:
        assigned = min(entry.expected, remaining)
        entry.received = assigned
        remaining -= assigned
    pool.entries[-1].received += remaining

    remaining = pool.manual
    for entry in pool.entries:
        assigned = min(max(entry.expected - entry.received, 0), remaining)
        entry.manual = assigned
        remaining -= assigned
    pool.entries[-1].manual += remaining


def lines_counting(manifest: ManifestData, tags: Iterable[TagData]) -> dict[str, set[int]]:
    """Return, per EPC, the numbers of the lines that the tag would count against.

    A GTIN that several lines expect maps to all of them. An unexpected tag maps to
    an empty set.
    """
    index = _build_index(manifest)
    owners: dict[int, set[int]] = {}
    for line_no, (_line, entry, pool, content_entries) in index.lines.items():
        for item in (entry, pool, *content_entries):
            if item is not None:
                owners.setdefault(id(item), set()).add(line_no)
    for pool in index.by_gtin.values():
        for entry in pool.entries:
            owners.setdefault(id(pool), set()).update(owners.get(id(entry), set()))

    result: dict[str, set[int]] = {}
    for tag in tags:
        target = index.target(tag)
        result[tag.epc] = set() if target is None else owners.get(id(target), set())
    return result


def _count_movements(
    manifest: ManifestData, movements: Iterable[MovementData], index: _Index
) -> tuple[list[str], list[UnexpectedTag], set[str]]:
    matching: dict[str, MovementData] = {}
    for movement in movements:
        if movement.event_id not in matching and movement_matches(manifest, movement):
            matching[movement.event_id] = movement
    ordered = sorted(matching.values(), key=lambda m: (m.started_at, m.event_id))

    seen: set[str] = set()
    unexpected: list[UnexpectedTag] = []
    for movement in ordered:
        for tag in movement.tags:
            if tag.epc in seen:
                continue
            seen.add(tag.epc)
            target = index.target(tag)
            if isinstance(target, _Entry):
                target.received += 1
                target.received_epcs.add(tag.epc)
            elif target is not None:
                target.received += 1
            else:
                unexpected.append(
                    UnexpectedTag(
                        epc=tag.epc,
                        scheme=tag.scheme,
                        uri=tag.uri,
                        gtin=tag.gtin,
                        sscc=tag.sscc,
                        event_id=movement.event_id,
                    )
                )
    return [m.event_id for m in ordered], unexpected, seen


def _direction_unknown(
    manifest: ManifestData,
    movements: Iterable[MovementData],
    index: _Index,
    read_epcs: set[str],
) -> list[UnexpectedTag]:
    found: dict[str, UnexpectedTag] = {}
    for movement in sorted(movements, key=lambda m: (m.started_at, m.event_id)):
        if not movement_matches(manifest, movement, direction="unknown"):
            continue
        for tag in movement.tags:
            if tag.epc in read_epcs or tag.epc in found or index.target(tag) is None:
                continue
            found[tag.epc] = UnexpectedTag(
                epc=tag.epc,
                scheme=tag.scheme,
                uri=tag.uri,
                gtin=tag.gtin,
                sscc=tag.sscc,
                event_id=movement.event_id,
            )
    return list(found.values())


def _count_manual(
    manifest_id: str,
    manual: Iterable[ManualConfirmation],
    index: _Index,
    read_epcs: set[str],
) -> None:
    confirmed: set[str] = set()
    for confirmation in manual:
        known = index.lines.get(confirmation.line_no)
        if known is None:
            logger.warning(
                "manifest %s: manual confirmation by %s names unknown line %s; ignored",
                manifest_id,
                confirmation.by,
                confirmation.line_no,
            )
            continue
        _line, entry, pool, _contents = known
        own: _Entry | _Pool = entry if pool is None else pool
        own.manual += confirmation.quantity

        for tag in confirmation.tags:
            # A unit read by RFID or confirmed before is already counted.
            if tag.epc in read_epcs or tag.epc in confirmed:
                continue
            confirmed.add(tag.epc)
            target = index.target(tag) or own
            target.manual += 1
            if isinstance(target, _Entry):
                target.manual_epcs.add(tag.epc)


def _content_result(content: ContentData, entry: _Entry) -> ContentResult:
    return ContentResult(
        gtin=content.gtin,
        expected=entry.expected,
        received=entry.received,
        confirmed_manually=entry.manual,
        missing_epcs=entry.missing(),
        status=entry.status(),
    )


def _line_results(index: _Index) -> list[LineResult]:
    results: list[LineResult] = []
    for line, entry, _, content_entries in index.lines.values():
        results.append(
            LineResult(
                line_no=line.line_no,
                gtin=line.gtin,
                sscc=line.sscc,
                unit=line.unit,
                description=line.description,
                expected=entry.expected,
                received=entry.received,
                confirmed_manually=entry.manual,
                missing_epcs=entry.missing(),
                status=entry.status(),
                contents=[
                    _content_result(content, item)
                    for content, item in zip(line.contents, content_entries, strict=True)
                ],
            )
        )
    return results


def _overall(
    lines: list[LineResult], unexpected: list[UnexpectedTag]
) -> ManifestStatus:
    statuses = {line.status for line in lines}
    for line in lines:
        statuses.update(content.status for content in line.contents)
    short = LineStatus.SHORT in statuses
    over = LineStatus.OVER in statuses or bool(unexpected)
    if short and over:
        return ManifestStatus.DISCREPANT
    if short:
        return ManifestStatus.SHORT
    if over:
        return ManifestStatus.OVER
    return ManifestStatus.COMPLETE


def reconcile(
    manifest: ManifestData,
    movements: Iterable[MovementData],
    manual: Iterable[ManualConfirmation],
    *,
    closed: bool,
) -> Reconciliation:
    """Count the tags of matching movements and manual confirmations per line.

    `movements` may hold any movements: those that do not match are skipped, and a
    movement given twice counts once. While the manifest is open the status is
    `pending` (no matching movement yet) or `receiving`; once `closed` it is the
    final result. Line statuses are filled in either way.
    """
    # The cyclic garbage collector would walk the index and tag objects again and
    # again as they are created, which made large manifests grow faster than
    # linearly. Nothing here creates cycles, so it is paused for this call, which
    # runs without awaiting and so holds up no other task longer.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _reconcile(manifest, movements, manual, closed=closed)
    finally:
        if enabled:
            gc.enable()


def _reconcile(
    manifest: ManifestData,
    movements: Iterable[MovementData],
    manual: Iterable[ManualConfirmation],
    *,
    closed: bool,
) -> Reconciliation:
    index = _build_index(manifest)
    movements = list(movements)
    event_ids, unexpected, read_epcs = _count_movements(manifest, movements, index)
    undirected = _direction_unknown(manifest, movements, index, read_epcs)
    _count_manual(manifest.manifest_id, manual, index, read_epcs)
    for pool in (*index.by_sscc.values(), *index.by_gtin.values()):
        _allocate(pool)

    lines = _line_results(index)
    if closed:
        status = _overall(lines, unexpected)
    elif event_ids:
        status = ManifestStatus.RECEIVING
    else:
        status = ManifestStatus.PENDING
    return Reconciliation(
        manifest_id=manifest.manifest_id,
        status=status,
        closed=closed,
        lines=lines,
        unexpected=unexpected,
        event_ids=event_ids,
        direction_unknown=undirected,
    )
