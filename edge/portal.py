"""Direction logic of one portal: tag reads in, crossing notices and movements out.

`PortalTracker` is a pure function of the reads it is fed and of the reader-clock
times it is given. It never looks at the wall clock, sleeps or does I/O, so the edge
daemon and `bwms edge replay` get the same movements from the same reads.

Each tag has at most one open pass: the reads since it was last quiet for the idle
gap. A pass keeps one aggregate per side (read count, first and last time, peak RSSI
and its time, RSSI-weighted mean time and spread, antennas), never the reads
themselves. Passes that overlap or follow each other within the idle gap form one
group, and the group closes into one `ClosedMovement` per direction once none of its
tags has been read for the idle gap. The rules are set out in docs/portal-logic.md.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from bwms.site import Portal, Side
from drivers.llrp.reads import TagRead

logger = logging.getLogger(__name__)

_US_PER_S = 1_000_000

# A direction is decided only when the RSSI-weighted mean read times of the two
# sides lie at least this many mean spreads apart. In synthetic reads of a tag
# passing a dock door (side peaks 1.2 s apart, 3 dB noise) the score is about 3.5,
# while reads that alternate between the sides with no order score near 0.
MIN_CENTRE_SEPARATION = 1.0

# A group open this long closes its quiet passes even while other tags keep it
# busy. NOTE: a slow pallet whose first tags went quiet just before such a split
# is reported as two movements. A longer span makes that rarer, but it keeps more
# tags in memory at a busy door.
_MAX_GROUP_SPAN_US = 60 * _US_PER_S

# Reader time between two warnings about the same kind of rejected read; the
# rejections in between are only counted.
_WARN_INTERVAL_US = 60 * _US_PER_S

# Log text of each rejection reason, by counter name.
_REJECT_REASONS = {
    "unknown_antenna": "the site file lists no such antenna port for this portal",
    "invalid_epc": "the EPC is not uppercase hex in whole 16-bit words",
    "invalid_rssi": "the RSSI is not a finite number",
    "late": "it is older than the reader clock given to advance() minus the idle "
    "gap; check the reader clock estimate",
}

_EPC_RE = re.compile(r"(?:[0-9A-F]{4})+")

COUNTER_NAMES = (
    "reads",  # every read fed
    "qualifying",  # reads at or above the RSSI floor that reached a tag's state
    "below_floor",  # weaker than the portal's RSSI floor, ignored
    "no_rssi",  # reader sent no RSSI, so the read counts as qualifying at the floor level
    "unknown_antenna",  # antenna port the portal does not have, rejected
    "invalid_epc",  # EPC not uppercase hex in 16-bit words, rejected
    "invalid_rssi",  # RSSI NaN or infinite, rejected
    "duplicate",  # same reader, antenna, EPC and last-seen time as an earlier read
    "late",  # older than the clock given to advance() minus the idle gap, rejected
    "crossings",  # crossing notices emitted
    "staged_tags",  # times a tag was found staged
    "forgotten_tags",  # staged tags dropped after going quiet
    "noise_tags",  # passes closed with fewer than min_reads qualifying reads
    "movements",  # movements closed
)


class Direction(StrEnum):
    """Direction of a movement through a portal, seen from the warehouse."""

    IN = "in"
    OUT = "out"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CrossingStarted:
    """Early notice that a tag has begun to pass the portal.

    `direction` is provisional: the closed movement carries the final one.
    `at_us` is the reader time of the read that triggered the notice.
    """

    epc: str
    direction: Direction
    first_seen_us: int
    at_us: int


@dataclass(frozen=True, slots=True)
class MovementTag:
    """One tag of a closed movement, summarised over its qualifying reads."""

    epc: str
    reads: int
    first_seen_us: int
    last_seen_us: int
    antennas: tuple[int, ...]
    peak_rssi_dbm: float | None


@dataclass(frozen=True, slots=True)
class ClosedMovement:
    """Tags that passed the portal together in one direction.

    Tags are ordered by first-seen time, then EPC.
    """

    direction: Direction
    started_us: int
    ended_us: int
    tags: tuple[MovementTag, ...]


@dataclass(slots=True)
class _SideStats:
    """Aggregate of one tag's qualifying reads on the antennas of one side."""

    reads: int = 0
    first_us: int = 0
    last_us: int = 0
    # Strongest read for the peak time. A read without RSSI counts at the floor.
    peak_level_dbm: float = -math.inf
    peak_us: int = 0
    # Strongest RSSI the reader actually reported, None if it reported none.
    peak_rssi_dbm: float | None = None
    # Sum of read weights (see _read_weight), the weighted mean read time and the
    # weighted sum of squared deviations from it (West's incremental algorithm).
    weight: float = 0.0
    mean_us: float = 0.0
    m2: float = 0.0
    antennas: set[int] = field(default_factory=set)

    def add(
        self,
        read: TagRead,
        level_dbm: float,
        weight: float,
    ) -> None:
        time_us = read.last_seen_us
        first_us = min(read.first_seen_us, time_us)
        count = max(1, read.seen_count)
        if self.reads == 0:
            self.first_us = first_us
            self.last_us = time_us
        else:
            self.first_us = min(self.first_us, first_us)
            self.last_us = max(self.last_us, time_us)
        self.reads += count

        # An equal level keeps the earlier time, so the feed order does not matter.
        if level_dbm > self.peak_level_dbm or (
            level_dbm == self.peak_level_dbm and time_us < self.peak_us
        ):
            self.peak_level_dbm = level_dbm
            self.peak_us = time_us
        rssi = read.rssi_dbm
        if rssi is not None and (
            self.peak_rssi_dbm is None or rssi > self.peak_rssi_dbm
        ):
            self.peak_rssi_dbm = rssi

        read_weight = weight * count
        if self.weight == 0.0:
            # Set the first mean exactly. Times are about 1.8e15 us, so any rounding
            # here would swamp the variance of reads a few microseconds apart.
            self.mean_us = float(time_us)
            self.weight = read_weight
        else:
            total = self.weight + read_weight
            delta = time_us - self.mean_us
            self.mean_us += delta * (read_weight / total)
            self.m2 += read_weight * delta * (time_us - self.mean_us)
            self.weight = total
        self.antennas.add(read.antenna)

    def merge(self, other: _SideStats) -> None:
        """Add another aggregate of the same side (Chan's parallel variance)."""
        if other.reads == 0:
            return
        if self.reads == 0:
            self.reads = other.reads
            self.first_us = other.first_us
            self.last_us = other.last_us
            self.peak_level_dbm = other.peak_level_dbm
            self.peak_us = other.peak_us
            self.peak_rssi_dbm = other.peak_rssi_dbm
            self.weight = other.weight
            self.mean_us = other.mean_us
            self.m2 = other.m2
            self.antennas = set(other.antennas)
            return

        total = self.weight + other.weight
        delta = other.mean_us - self.mean_us
        self.mean_us += delta * (other.weight / total)
        self.m2 += other.m2 + delta * delta * self.weight * other.weight / total
        self.weight = total
        self.reads += other.reads
        self.first_us = min(self.first_us, other.first_us)
        self.last_us = max(self.last_us, other.last_us)
        if other.peak_level_dbm > self.peak_level_dbm or (
            other.peak_level_dbm == self.peak_level_dbm and other.peak_us < self.peak_us
        ):
            self.peak_level_dbm = other.peak_level_dbm
            self.peak_us = other.peak_us
        if other.peak_rssi_dbm is not None and (
            self.peak_rssi_dbm is None or other.peak_rssi_dbm > self.peak_rssi_dbm
        ):
            self.peak_rssi_dbm = other.peak_rssi_dbm
        self.antennas |= other.antennas

    def spread_us(self) -> float:
        """Weighted standard deviation of the read times."""
        return math.sqrt(max(self.m2, 0.0) / self.weight) if self.weight else 0.0


def _opposite(side: Side) -> Side:
    return Side.OUTSIDE if side is Side.INSIDE else Side.INSIDE


@dataclass(slots=True)
class _Pass:
    """One tag's reads from its first qualifying read until it goes quiet."""

    epc: str
    inside: _SideStats = field(default_factory=_SideStats)
    outside: _SideStats = field(default_factory=_SideStats)
    # Side the tag was staged at when this pass began, None for a fresh tag.
    origin: Side | None = None
    notified: bool = False
    # Set when the tag crossed and then stayed on the far side until it was staged:
    # the pass takes no more reads and waits for its group to close.
    finished: bool = False

    def side(self, side: Side) -> _SideStats:
        return self.inside if side is Side.INSIDE else self.outside

    @property
    def reads(self) -> int:
        return self.inside.reads + self.outside.reads

    @property
    def first_us(self) -> int:
        sides = [s.first_us for s in (self.inside, self.outside) if s.reads]
        return min(sides)

    @property
    def last_us(self) -> int:
        return max(self.inside.last_us, self.outside.last_us)

    def summary(self) -> MovementTag:
        peaks = [
            s.peak_rssi_dbm
            for s in (self.inside, self.outside)
            if s.peak_rssi_dbm is not None
        ]
        return MovementTag(
            epc=self.epc,
            reads=self.reads,
            first_seen_us=self.first_us,
            last_seen_us=self.last_us,
            antennas=tuple(sorted(self.inside.antennas | self.outside.antennas)),
            peak_rssi_dbm=max(peaks) if peaks else None,
        )


@dataclass(slots=True)
class _Staged:
    """A tag parked on one side, with its recent reads there.

    The recent reads sit in two windows of about the idle gap each, rotated as
    reads arrive, so they cover the last one to two idle gaps. They become the
    first side of the pass if the tag later crosses.
    """

    side: Side
    last_us: int
    token: int
    previous: _SideStats = field(default_factory=_SideStats)
    current: _SideStats = field(default_factory=_SideStats)

    def recent(self) -> _SideStats:
        stats = _SideStats()
        stats.merge(self.previous)
        stats.merge(self.current)
        return stats


@dataclass(slots=True)
class _Tag:
    """State of one EPC: an open pass or a staged record, exactly one of them."""

    epc: str
    open_pass: _Pass | None = None
    staged: _Staged | None = None


@dataclass(slots=True)
class _Group:
    """Passes that overlap or follow each other within the idle gap, by EPC."""

    started_us: int
    last_us: int
    members: dict[str, _Pass] = field(default_factory=dict)


def _read_weight(rssi_dbm: float, floor_dbm: float) -> float:
    """Weight of a read in a side's mean time: its dB above the floor, plus 1.

    Linear in dB so that the strong reads near an antenna count most, without
    letting one read that fading made a few dB stronger decide the mean alone.
    """
    return rssi_dbm - floor_dbm + 1.0


def _decide_direction(inside: _SideStats, outside: _SideStats) -> Direction:
    """Decide a pass's direction from its inside and outside aggregates.

    `in` needs the outside reads before the inside ones by both measures: the
    peak-RSSI time and the RSSI-weighted mean time, with the mean times at least
    MIN_CENTRE_SEPARATION mean spreads apart. `out` is the mirror image. Anything
    else (one side only, measures that disagree, no clear order) is `unknown`.
    """
    if inside.reads == 0 or outside.reads == 0:
        return Direction.UNKNOWN

    centre_gap_us = inside.mean_us - outside.mean_us
    peak_gap_us = inside.peak_us - outside.peak_us
    spread_us = (inside.spread_us() + outside.spread_us()) / 2
    if centre_gap_us == 0 or abs(centre_gap_us) < MIN_CENTRE_SEPARATION * spread_us:
        return Direction.UNKNOWN
    if (peak_gap_us > 0) != (centre_gap_us > 0) or peak_gap_us == 0:
        return Direction.UNKNOWN
    return Direction.IN if centre_gap_us > 0 else Direction.OUT


class PortalTracker:
    """Turn one portal's tag reads into crossing notices and closed movements.

    Times are the reader's clock in microseconds since the Unix epoch (the LLRP
    LastSeenTimestampUTC of each read). Call `feed` for every read, `advance` with
    the reader-clock estimate of now to close what has gone quiet, and `flush` at
    the end of input.
    """

    def __init__(self, site_id: str, portal: Portal) -> None:
        self.site_id = site_id
        self.portal = portal
        tuning = portal.tuning
        self._floor_dbm = tuning.rssi_floor_dbm
        self._floor_weight = _read_weight(tuning.rssi_floor_dbm, tuning.rssi_floor_dbm)
        self._idle_us = round(tuning.idle_gap_s * _US_PER_S)
        self._dwell_us = round(tuning.staged_dwell_s * _US_PER_S)
        self._forget_us = self._idle_us + self._dwell_us
        self._min_reads = tuning.min_reads
        self._side_of_port = {antenna.port: antenna.side for antenna in portal.antennas}

        self._tags: dict[str, _Tag] = {}
        self._group: _Group | None = None
        self._pending: list[ClosedMovement] = []
        # (forget-after time, EPC, token) of staged tags; stale entries are skipped.
        self._staged_deadlines: list[tuple[int, str, int]] = []
        self._next_token = 0
        # Keys of recent reads for duplicate detection, kept for one idle gap.
        self._seen_keys: set[tuple[str, int, str, int]] = set()
        self._seen_order: deque[tuple[int, tuple[str, int, str, int]]] = deque()
        self._newest_us = 0
        self._now_us: int | None = None
        self._warned: dict[tuple[str, int], tuple[int, int]] = {}

        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

    @property
    def tracked_tags(self) -> int:
        """Number of EPCs the tracker keeps state for (open passes and staged tags)."""
        return len(self._tags)

    def feed(self, read: TagRead) -> list[CrossingStarted]:
        """Take one read and return the crossing notices it triggers, usually none."""
        counters = self.counters
        counters["reads"] += 1

        side = self._side_of_port.get(read.antenna)
        if side is None:
            self._reject(read, "unknown_antenna")
            return []
        if read.epc not in self._tags and not _EPC_RE.fullmatch(read.epc):
            self._reject(read, "invalid_epc")
            return []
        if self._is_duplicate(read):
            counters["duplicate"] += 1
            return []
        time_us = read.last_seen_us
        if self._now_us is not None and time_us < self._now_us - self._idle_us:
            self._reject(read, "late")
            return []

        rssi = read.rssi_dbm
        if rssi is None:
            counters["no_rssi"] += 1
            level_dbm = self._floor_dbm
            weight = self._floor_weight
        elif not math.isfinite(rssi):
            self._reject(read, "invalid_rssi")
            return []
        elif rssi < self._floor_dbm:
            counters["below_floor"] += 1
            return []
        else:
            level_dbm = rssi
            weight = _read_weight(rssi, self._floor_dbm)
        counters["qualifying"] += 1

        # The read's own time shows the reader clock has reached it, so a group
        # idle by then closes now even if advance() was not called in between.
        self._close_group_if_idle(time_us)
        return self._add_to_tag(read, side, level_dbm, weight)

    def advance(self, now_us: int) -> list[ClosedMovement]:
        """Close the movements that are idle at reader time `now_us` and return them.

        Also forgets staged tags that have not been read for the idle gap plus the
        staged dwell. `now_us` never moves the tracker's clock backwards.
        """
        self._now_us = now_us if self._now_us is None else max(self._now_us, now_us)
        now_us = self._now_us
        self._close_group_if_idle(now_us)
        closed, self._pending = self._pending, []
        self._forget_staged(now_us)
        return closed

    def flush(self) -> list[ClosedMovement]:
        """Close everything that would close at the end of input and return it.

        The clock moves past every deadline: the open group closes and staged tags
        are forgotten, so reads fed afterwards that are older count as late.
        """
        horizon_us = self._now_us if self._now_us is not None else 0
        if self._group is not None:
            horizon_us = max(horizon_us, self._group.last_us + self._idle_us)
        for tag in self._tags.values():
            if tag.staged is not None:
                horizon_us = max(horizon_us, tag.staged.last_us + self._forget_us + 1)
        return self.advance(horizon_us)

    def _add_to_tag(
        self, read: TagRead, side: Side, level_dbm: float, weight: float
    ) -> list[CrossingStarted]:
        time_us = read.last_seen_us
        tag = self._tags.get(read.epc)
        if (
            tag is not None
            and tag.staged is not None
            and time_us - tag.staged.last_us > self._forget_us
        ):
            # quiet long enough to be forgotten, though advance() has not run since
            self._drop_staged(tag)
            tag = None

        if tag is None:
            tag = _Tag(read.epc)
            self._tags[read.epc] = tag
            current = self._start_pass(tag, origin=None, time_us=time_us)
        elif tag.staged is not None:
            staged = tag.staged
            if side is staged.side:
                self._add_staged_read(staged, read, level_dbm, weight)
                return []
            # the first strong read on the far side: the staged tag starts to cross
            recent = staged.recent()
            tag.staged = None
            current = self._start_pass(tag, origin=staged.side, time_us=time_us)
            current.side(staged.side).merge(recent)
        else:
            open_pass = tag.open_pass
            assert open_pass is not None
            current = open_pass
            if time_us - current.last_us >= self._idle_us:
                # quiet for the idle gap, then back: this is a new pass
                current = self._start_pass(tag, origin=None, time_us=time_us)

        current.side(side).add(read, level_dbm, weight)
        group = self._group
        assert group is not None
        group.last_us = max(group.last_us, time_us)

        if self._is_staged(current, side):
            self._stage(tag, current, side)
            return []
        return self._notice(current, time_us)

    def _start_pass(self, tag: _Tag, origin: Side | None, time_us: int) -> _Pass:
        """Open a new pass for `tag` in the open group, starting a group if needed."""
        if self._group is not None and tag.epc in self._group.members:
            # The tag passed once already in this group: its movements must stay
            # apart, so the group closes now and its still-active passes carry on.
            self._split_group(time_us)
        if self._group is None:
            self._group = _Group(started_us=time_us, last_us=time_us)

        new_pass = _Pass(tag.epc, origin=origin)
        self._group.members[tag.epc] = new_pass
        tag.open_pass = new_pass
        self._tags[tag.epc] = tag
        return new_pass

    def _is_staged(self, current: _Pass, side: Side) -> bool:
        """Return whether the tag has been read only on `side` for over the dwell."""
        own = current.side(side)
        other = current.side(_opposite(side))
        since_us = other.last_us if other.reads else own.first_us
        return own.last_us - since_us > self._dwell_us

    def _stage(self, tag: _Tag, current: _Pass, side: Side) -> None:
        """Mark `tag` staged on `side` and settle its pass.

        A pass that came from the other side and now rests here is a movement: it
        stays in its group, finished. A one-sided pass, or one that returned to the
        side it was staged at, is dropped without a movement.
        """
        self.counters["staged_tags"] += 1
        group = self._group
        assert group is not None
        crossed = current.side(_opposite(side)).reads > 0 and current.origin is not side
        if crossed:
            current.finished = True
        else:
            del group.members[current.epc]
            if group.members:
                group.last_us = max(p.last_us for p in group.members.values())
            else:
                self._group = None

        own = current.side(side)
        self._next_token += 1
        staged = _Staged(side=side, last_us=own.last_us, token=self._next_token)
        staged.current.merge(own)
        tag.open_pass = None
        tag.staged = staged
        heapq.heappush(
            self._staged_deadlines,
            (staged.last_us + self._forget_us, tag.epc, staged.token),
        )

    def _add_staged_read(
        self, staged: _Staged, read: TagRead, level_dbm: float, weight: float
    ) -> None:
        time_us = read.last_seen_us
        if staged.current.reads and time_us - staged.current.first_us > self._idle_us:
            staged.previous = staged.current
            staged.current = _SideStats()
        staged.current.add(read, level_dbm, weight)
        staged.last_us = max(staged.last_us, time_us)

    def _notice(self, current: _Pass, time_us: int) -> list[CrossingStarted]:
        """Emit the pass's one crossing notice once it has reads on both sides.

        One-sided reads trigger no notice because a staged tag looks the same
        until its dwell has passed. The provisional direction points away from
        the side read first.
        """
        if current.notified or current.finished:
            return []
        inside, outside = current.inside, current.outside
        if not inside.reads or not outside.reads or current.reads < self._min_reads:
            return []

        current.notified = True
        self.counters["crossings"] += 1
        if current.origin is not None:
            first_side: Side | None = current.origin
        elif outside.first_us < inside.first_us:
            first_side = Side.OUTSIDE
        elif inside.first_us < outside.first_us:
            first_side = Side.INSIDE
        else:
            first_side = None
        direction = {
            Side.OUTSIDE: Direction.IN,
            Side.INSIDE: Direction.OUT,
            None: Direction.UNKNOWN,
        }[first_side]
        return [CrossingStarted(current.epc, direction, current.first_us, time_us)]

    def _close_group_if_idle(self, now_us: int) -> None:
        group = self._group
        if group is None:
            return
        if now_us - group.last_us >= self._idle_us:
            self._group = None
            self._pending.extend(self._close_passes(list(group.members.values())))
        elif now_us - group.started_us >= _MAX_GROUP_SPAN_US:
            # Traffic without a pause would keep one group, and all its tags,
            # open forever: close what has gone quiet so memory stays bounded.
            self._split_group(now_us)

    def _split_group(self, time_us: int) -> None:
        """Close the open group's quiet and finished passes, keep the active ones."""
        group = self._group
        assert group is not None
        active = {
            epc: p
            for epc, p in group.members.items()
            if not p.finished and time_us - p.last_us < self._idle_us
        }
        quiet = [p for epc, p in group.members.items() if epc not in active]
        self._pending.extend(self._close_passes(quiet))
        if active:
            last_us = max(p.last_us for p in active.values())
            self._group = _Group(started_us=time_us, last_us=last_us, members=active)
        else:
            self._group = None

    def _close_passes(self, passes: list[_Pass]) -> list[ClosedMovement]:
        """Turn finished passes into movements, one per direction."""
        by_direction: dict[Direction, list[MovementTag]] = {}
        for closing in passes:
            tag = self._tags.get(closing.epc)
            if tag is not None and tag.open_pass is closing:
                del self._tags[closing.epc]
            if closing.reads < self._min_reads:
                self.counters["noise_tags"] += 1
                continue
            direction = _decide_direction(closing.inside, closing.outside)
            by_direction.setdefault(direction, []).append(closing.summary())

        movements: list[ClosedMovement] = []
        for direction, tags in by_direction.items():
            tags.sort(key=lambda t: (t.first_seen_us, t.epc))
            movements.append(
                ClosedMovement(
                    direction=direction,
                    started_us=min(t.first_seen_us for t in tags),
                    ended_us=max(t.last_seen_us for t in tags),
                    tags=tuple(tags),
                )
            )
        movements.sort(key=lambda m: (m.started_us, m.direction.value))
        self.counters["movements"] += len(movements)
        return movements

    def _forget_staged(self, now_us: int) -> None:
        deadlines = self._staged_deadlines
        while deadlines and deadlines[0][0] < now_us:
            _, epc, token = heapq.heappop(deadlines)
            tag = self._tags.get(epc)
            if tag is None or tag.staged is None or tag.staged.token != token:
                continue
            forget_at_us = tag.staged.last_us + self._forget_us
            if forget_at_us < now_us:
                self._drop_staged(tag)
            else:
                # read again since this entry was made: check again later
                heapq.heappush(deadlines, (forget_at_us, epc, token))

    def _drop_staged(self, tag: _Tag) -> None:
        del self._tags[tag.epc]
        self.counters["forgotten_tags"] += 1

    def _is_duplicate(self, read: TagRead) -> bool:
        key = (read.reader_id, read.antenna, read.epc, read.last_seen_us)
        if key in self._seen_keys:
            return True
        self._seen_keys.add(key)
        self._seen_order.append((read.last_seen_us, key))
        self._newest_us = max(self._newest_us, read.last_seen_us)
        horizon_us = self._newest_us - self._idle_us
        order = self._seen_order
        while order and order[0][0] < horizon_us:
            self._seen_keys.discard(order.popleft()[1])
        return False

    def _reject(self, read: TagRead, reason: str) -> None:
        """Count a rejected read and warn once per reason and port per interval."""
        self.counters[reason] += 1
        key = (reason, read.antenna)
        previous = self._warned.get(key)
        suppressed = 0
        if previous is not None:
            warned_at_us, suppressed = previous
            if read.last_seen_us - warned_at_us < _WARN_INTERVAL_US:
                self._warned[key] = (warned_at_us, suppressed + 1)
                return
        self._warned[key] = (read.last_seen_us, 0)
        logger.warning(
            "portal %s: rejected read of EPC %r on antenna port %d at %d us: %s "
            "(%d more since the last warning)",
            self.portal.id,
            read.epc,
            read.antenna,
            read.last_seen_us,
            _REJECT_REASONS[reason],
            suppressed,
        )
