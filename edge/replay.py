"""Offline replay of a reads file through a portal's direction logic.

`replay` feeds the rows of a reads CSV to a `PortalTracker` with the read times as
the clock and yields the payloads the edge daemon would publish for them, without a
broker. `bwms edge replay` prints them as JSON lines.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

from bwms.contract import parse_time_us
from bwms.site import Site
from drivers.llrp.reads import ReadRow, TagRead
from edge.movement import crossing_payload, movement_payload, new_event_id
from edge.portal import PortalTracker

logger = logging.getLogger(__name__)

# Reads-file times at or above this are Unix epoch seconds (2001-09-09 onwards);
# smaller ones are seconds from the start of the recording.
ABSOLUTE_TIME_MIN_S = 1e9


class ReplayError(ValueError):
    """A reads file that cannot be replayed as a whole, naming the line."""


def parse_epoch(text: str) -> int:
    """Parse Unix epoch seconds or an RFC 3339 time with an offset into epoch us.

    Raises ReplayError with an example of each accepted form.
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ReplayError(f"epoch {text!r} is not a time at or after 1970")
        return round(seconds * 1_000_000)
    try:
        return parse_time_us(text)
    except ValueError as exc:
        raise ReplayError(
            f"epoch {text!r} is neither Unix epoch seconds (1767254400) nor RFC 3339 "
            f"with an offset (2026-01-01T08:00:00Z): {exc}"
        ) from exc


def replay(
    site: Site,
    portal_id: str,
    rows: Iterable[ReadRow],
    *,
    epoch_us: int,
    include_crossings: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield the movement payloads a portal's daemon would publish for `rows`.

    Rows are read in full and sorted by time before the first payload, so a bad
    row raises (ReadsFileError, ReplayError) before anything is yielded. Relative
    times are placed after `epoch_us`, microseconds since the Unix epoch. After the
    last row the clock moves past every deadline, so every movement closes.
    Movements are numbered from seq 1, each with a new event id. With
    `include_crossings`, crossing notices are yielded too, where they occur.
    Raises SiteError if the site has no portal `portal_id`.
    """
    portal = site.portal(portal_id)
    site_id = site.site.id
    reads = _tag_reads(portal.reader.id, rows, epoch_us)
    tracker = PortalTracker(site_id, portal)
    seq = 0

    for read in reads:
        for movement in tracker.advance(read.last_seen_us):
            seq += 1
            yield movement_payload(
                site_id, portal, movement, seq=seq, event_id=new_event_id()
            )
        crossings = tracker.feed(read)
        if include_crossings:
            for crossing in crossings:
                yield crossing_payload(site_id, portal, crossing)

    for movement in tracker.flush():
        seq += 1
        yield movement_payload(
            site_id, portal, movement, seq=seq, event_id=new_event_id()
        )

    logger.info(
        "portal %s: replayed %d reads into %d movements; counters %s",
        portal.id,
        len(reads),
        seq,
        tracker.counters,
    )


def _tag_reads(reader_id: str, rows: Iterable[ReadRow], epoch_us: int) -> list[TagRead]:
    """Convert rows to reads on the reader clock, sorted by time, then line."""
    first_absolute: ReadRow | None = None
    first_relative: ReadRow | None = None
    timed: list[tuple[int, int, TagRead]] = []
    for row in rows:
        if not math.isfinite(row.time_s):
            raise ReplayError(f"line {row.line}: time_s {row.time_s} is not finite")
        if not math.isfinite(row.rssi_dbm):
            raise ReplayError(f"line {row.line}: rssi_dbm {row.rssi_dbm} is not finite")
        if row.time_s >= ABSOLUTE_TIME_MIN_S:
            first_absolute = first_absolute or row
            time_us = round(row.time_s * 1_000_000)
        else:
            first_relative = first_relative or row
            time_us = epoch_us + round(row.time_s * 1_000_000)
        if first_absolute is not None and first_relative is not None:
            raise ReplayError(
                f"line {row.line}: time_s {row.time_s} mixes epoch seconds (line "
                f"{first_absolute.line}) with relative seconds (line "
                f"{first_relative.line}); use one kind in the whole file"
            )
        read = TagRead(
            reader_id=reader_id,
            antenna=row.antenna,
            epc=row.epc,
            first_seen_us=time_us,
            last_seen_us=time_us,
            rssi_dbm=row.rssi_dbm,
            phase_deg=row.phase_deg,
        )
        timed.append((time_us, row.line, read))

    timed.sort(key=lambda item: (item[0], item[1]))
    return [read for _, _, read in timed]
