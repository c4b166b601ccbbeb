"""Direction logic of a portal: staged tags, crossings, grouping, rejections."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bwms.site import Antenna, Portal, PortalKind, ReaderRef, Side, Tuning
from drivers.llrp.reads import TagRead
from edge.portal import (
    ClosedMovement,
    CrossingStarted,
    Direction,
    PortalTracker,
)

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
US = 1_000_000
READER = "door-3-reader"

EPC_A = "3036142C8C008F8000053244"
EPC_B = "3036142C8C008F8000053245"
EPC_C = "3036142C8C008F8000053246"

INSIDE = 1  # antenna 1 hangs on the warehouse side of door 3
OUTSIDE = 2  # antenna 2 on the dock side


def door3(**tuning: float) -> Portal:
    return Portal(
        id="door-3",
        kind=PortalKind.DOCK_DOOR,
        reader=ReaderRef(id=READER),
        antennas=[
            Antenna(port=INSIDE, side=Side.INSIDE),
            Antenna(port=OUTSIDE, side=Side.OUTSIDE),
        ],
        tuning=Tuning(**tuning),  # type: ignore[arg-type]
    )


def read(epc: str, antenna: int, t_s: float, rssi_dbm: float | None) -> TagRead:
    time_us = T0_US + round(t_s * US)
    return TagRead(READER, antenna, epc, time_us, time_us, rssi_dbm)


def sweep(
    epc: str,
    antenna: int,
    start_s: float,
    end_s: float,
    peak_s: float,
    peak_dbm: float,
    rng: random.Random,
    edge_dbm: float = -66.0,
    noise_db: float = 0.0,
) -> list[TagRead]:
    """Reads every 0.1-0.2 s in [start, end], RSSI rising linearly to the peak.

    Each RSSI is off by up to `noise_db` either way, at random.
    """
    times = [peak_s]
    t = peak_s
    while (t := t - rng.uniform(0.1, 0.2)) >= start_s:
        times.append(t)
    t = peak_s
    while (t := t + rng.uniform(0.1, 0.2)) <= end_s:
        times.append(t)
    half_s = max(peak_s - start_s, end_s - peak_s)
    reads = []
    for t in times:
        rssi = peak_dbm - (peak_dbm - edge_dbm) * abs(t - peak_s) / half_s
        rssi += rng.uniform(-noise_db, noise_db)
        reads.append(read(epc, antenna, t, rssi))
    return reads


def crossing_in(epc: str, start_s: float, rng: random.Random) -> list[TagRead]:
    """The dock-door case's tag B: dock side, then warehouse side."""
    return sweep(epc, OUTSIDE, start_s, start_s + 1.2, start_s + 0.6, -48, rng) + sweep(
        epc, INSIDE, start_s + 1.0, start_s + 2.6, start_s + 1.8, -50, rng
    )


def crossing_out(epc: str, start_s: float, rng: random.Random) -> list[TagRead]:
    """The dock-door case's tag C: tag B's reads with the antennas swapped."""
    return sweep(epc, INSIDE, start_s, start_s + 1.2, start_s + 0.6, -48, rng) + sweep(
        epc, OUTSIDE, start_s + 1.0, start_s + 2.6, start_s + 1.8, -50, rng
    )


def run(
    tracker: PortalTracker, reads: Iterable[TagRead]
) -> tuple[list[ClosedMovement], list[CrossingStarted]]:
    """Feed reads in time order with the read times as the clock, then flush."""
    movements: list[ClosedMovement] = []
    crossings: list[CrossingStarted] = []
    for r in sorted(reads, key=lambda r: (r.last_seen_us, r.antenna, r.epc)):
        movements += tracker.advance(r.last_seen_us)
        crossings += tracker.feed(r)
    movements += tracker.flush()
    return movements, crossings


def epcs(movement: ClosedMovement) -> list[str]:
    return [tag.epc for tag in movement.tags]


# Dock-door case from the field: tag A is staged by door 3 and read on antenna 1
# only, every 2 s for 15 min at -71 to -73 dBm. Tags B and C pass the door with
# overlapping side reads. A must produce nothing, B one movement in, C one out.
def test_dock_door_staged_and_crossing_tags() -> None:
    rng = random.Random(9)
    tag_a = [read(EPC_A, INSIDE, 2.0 * i, -71 - 2 * rng.random()) for i in range(451)]
    reads = tag_a + crossing_in(EPC_B, 300.0, rng) + crossing_out(EPC_C, 600.0, rng)
    tracker = PortalTracker("demo-wgq", door3(rssi_floor_dbm=-75.0))

    movements, crossings = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.IN, Direction.OUT]
    assert epcs(movements[0]) == [EPC_B]
    assert epcs(movements[1]) == [EPC_C]
    assert EPC_A not in {c.epc for c in crossings}
    assert tracker.counters["below_floor"] == 0
    assert tracker.counters["staged_tags"] == 1


def test_dock_door_case_with_tags_at_once() -> None:
    rng = random.Random(10)
    tag_a = [read(EPC_A, INSIDE, 2.0 * i, -71 - 2 * rng.random()) for i in range(451)]
    # B and C pass while A has been staged for a while, B right after C
    reads = tag_a + crossing_out(EPC_C, 40.0, rng) + crossing_in(EPC_B, 41.5, rng)
    tracker = PortalTracker("demo-wgq", door3(rssi_floor_dbm=-75.0))

    movements, _ = run(tracker, reads)

    by_direction = {m.direction: epcs(m) for m in movements}
    assert len(movements) == 2
    assert by_direction[Direction.IN] == [EPC_B]
    assert by_direction[Direction.OUT] == [EPC_C]


def test_staged_tag_never_moves_while_read() -> None:
    tracker = PortalTracker("s", door3(rssi_floor_dbm=-75.0))
    rng = random.Random(1)
    closed: list[ClosedMovement] = []
    for i in range(451):
        r = read(EPC_A, INSIDE, 2.0 * i, -71 - 2 * rng.random())
        closed += tracker.advance(r.last_seen_us)
        assert tracker.feed(r) == []
    closed += tracker.flush()

    assert closed == []


def test_reads_below_floor_ignored() -> None:
    rng = random.Random(2)
    reads = [
        read(r.epc, r.antenna, (r.last_seen_us - T0_US) / US, -80.0)
        for r in crossing_in(EPC_B, 0.0, rng)
    ]
    tracker = PortalTracker("s", door3(rssi_floor_dbm=-70.0))

    movements, crossings = run(tracker, reads)

    assert movements == []
    assert crossings == []
    assert tracker.counters["below_floor"] == len(reads)


def test_one_sided_pass_is_unknown() -> None:
    reads = [read(EPC_B, OUTSIDE, 0.2 * i, -55.0) for i in range(6)]
    tracker = PortalTracker("s", door3())

    movements, crossings = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.UNKNOWN]
    assert movements[0].tags[0].reads == 6
    assert crossings == []


def test_one_sided_pass_below_min_reads() -> None:
    reads = [read(EPC_B, OUTSIDE, 0.2 * i, -55.0) for i in range(2)]
    tracker = PortalTracker("s", door3(min_reads=3))

    movements, _ = run(tracker, reads)

    assert movements == []
    assert tracker.counters["noise_tags"] == 1


def test_alternating_sides_unknown() -> None:
    rng = random.Random(3)
    reads = [
        read(EPC_B, INSIDE if i % 2 else OUTSIDE, 0.1 * i, rng.uniform(-65, -50))
        for i in range(30)
    ]
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.UNKNOWN]


def test_in_and_back_out_unknown() -> None:
    rng = random.Random(4)
    # dock side, warehouse side, dock side again, all within the idle gap
    reads = (
        sweep(EPC_B, OUTSIDE, 0.0, 1.0, 0.5, -50, rng)
        + sweep(EPC_B, INSIDE, 0.8, 2.2, 1.5, -50, rng)
        + sweep(EPC_B, OUTSIDE, 2.0, 3.0, 2.5, -50, rng)
    )
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.UNKNOWN]


def test_peak_against_mean_unknown() -> None:
    # The mean times point in, but the strongest outside read comes last.
    reads = [read(EPC_B, OUTSIDE, 0.1 * i, -60.0) for i in range(11)]
    reads += [read(EPC_B, INSIDE, 1.2 + 0.1 * i, -55.0) for i in range(9)]
    reads.append(read(EPC_B, OUTSIDE, 2.4, -45.0))
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.UNKNOWN]


def test_in_then_out_two_movements() -> None:
    rng = random.Random(5)
    reads = crossing_in(EPC_B, 0.0, rng) + crossing_out(EPC_B, 20.0, rng)
    tracker = PortalTracker("s", door3())

    movements, crossings = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.IN, Direction.OUT]
    assert [c.direction for c in crossings] == [Direction.IN, Direction.OUT]


def test_in_twice_two_movements() -> None:
    rng = random.Random(6)
    # the second pass starts 4 s after the first one's last read (idle gap 3 s)
    reads = crossing_in(EPC_B, 0.0, rng) + crossing_in(EPC_B, 6.6, rng)
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.IN, Direction.IN]
    assert movements[0].ended_us < movements[1].started_us


def test_second_pass_while_group_open() -> None:
    rng = random.Random(7)
    # Other tags cross every 2 s and keep the group open. Tag B passes twice in it.
    others = [
        crossing_in(f"30340242201D8840000000{i:02X}", 2.0 * i, rng) for i in range(8)
    ]
    reads = [r for rs in others for r in rs]
    reads += crossing_in(EPC_B, 0.0, rng) + crossing_in(EPC_B, 6.6, rng)
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    with_b = [m for m in movements if EPC_B in epcs(m)]
    assert len(with_b) == 2
    assert all(m.direction is Direction.IN for m in movements)
    assert sum(len(m.tags) for m in movements) == 10


def test_unknown_antenna_counted(caplog: pytest.LogCaptureFixture) -> None:
    reads = [read(EPC_B, 7, 0.1 * i, -50.0) for i in range(20)]
    tracker = PortalTracker("s", door3())

    with caplog.at_level(logging.WARNING, logger="edge.portal"):
        movements, _ = run(tracker, reads)

    warnings = [r for r in caplog.records if "antenna port 7" in r.getMessage()]
    assert movements == []
    assert tracker.counters["unknown_antenna"] == 20
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("portal door-3:")


def test_invalid_epc_rejected() -> None:
    tracker = PortalTracker("s", door3())

    tracker.feed(read("3036142c8c008f8000053244", OUTSIDE, 0.0, -50.0))
    tracker.feed(read("3036142C8C", OUTSIDE, 0.1, -50.0))

    assert tracker.counters["invalid_epc"] == 2
    assert tracker.tracked_tags == 0


def test_nan_rssi_rejected() -> None:
    tracker = PortalTracker("s", door3())

    tracker.feed(read(EPC_B, OUTSIDE, 0.0, float("nan")))

    assert tracker.counters["invalid_rssi"] == 1
    assert tracker.tracked_tags == 0


def test_duplicate_reads_dropped() -> None:
    rng = random.Random(8)
    reads = crossing_in(EPC_B, 0.0, rng)
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads + list(reads))

    assert tracker.counters["duplicate"] == len(reads)
    assert movements[0].tags[0].reads == len(reads)


def test_pallet_of_50_tags_one_movement() -> None:
    rng = random.Random(11)
    cartons = [f"30340242201D88400000{i:04X}" for i in range(50)]
    reads = [r for epc in cartons for r in crossing_in(epc, rng.uniform(0, 0.3), rng)]
    tracker = PortalTracker("s", door3())

    movements, crossings = run(tracker, reads)

    assert len(movements) == 1
    assert movements[0].direction is Direction.IN
    assert sorted(epcs(movements[0])) == cartons
    assert len(crossings) == 50


def test_movement_tags_ordered_by_first_seen() -> None:
    reads = []
    # C and A are first seen at the same time, so their EPCs decide the order
    for epc, start_s in ((EPC_C, 0.5), (EPC_B, 0.0), (EPC_A, 0.5)):
        reads += [
            read(epc, OUTSIDE, start_s, -55.0),
            read(epc, OUTSIDE, start_s + 0.2, -50.0),
            read(epc, INSIDE, start_s + 1.0, -50.0),
            read(epc, INSIDE, start_s + 1.2, -55.0),
        ]
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert epcs(movements[0]) == [EPC_B, EPC_A, EPC_C]


def test_same_reads_same_movements() -> None:
    rng = random.Random(13)
    reads = [read(EPC_A, INSIDE, 2.0 * i, -72.0) for i in range(100)]
    for i in range(10):
        reads += crossing_in(f"30340242201D88400000{i:04X}", 15.0 * i, rng)
        reads += crossing_out(f"30340242201D88400001{i:04X}", 15.0 * i + 7, rng)

    first = run(PortalTracker("s", door3(rssi_floor_dbm=-75.0)), reads)
    second = run(PortalTracker("s", door3(rssi_floor_dbm=-75.0)), reads)

    assert first == second
    assert len(first[0]) == 20


def test_movement_tag_summary() -> None:
    reads = [
        read(EPC_B, OUTSIDE, 0.0, -60.0),
        read(EPC_B, OUTSIDE, 0.5, -45.5),
        read(EPC_B, INSIDE, 1.5, -52.0),
        read(EPC_B, INSIDE, 2.0, -62.0),
    ]
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    tag = movements[0].tags[0]
    assert tag.reads == 4
    assert tag.first_seen_us == T0_US
    assert tag.last_seen_us == T0_US + 2 * US
    assert tag.antennas == (INSIDE, OUTSIDE)
    assert tag.peak_rssi_dbm == -45.5
    assert movements[0].started_us == T0_US
    assert movements[0].ended_us == T0_US + 2 * US


def test_staged_state_stays_bounded() -> None:
    tracker = PortalTracker("s", door3(rssi_floor_dbm=-75.0))
    sizes = set()
    # one staged tag read twice a second for an hour
    for i in range(7200):
        r = read(EPC_A, INSIDE, 0.5 * i, -72.0)
        tracker.advance(r.last_seen_us)
        tracker.feed(r)
        sizes.add(tracker.tracked_tags)
    last_s = 0.5 * 7199

    tracker.advance(T0_US + round((last_s + 3.0 + 8.0 + 0.1) * US))

    assert sizes == {1}
    assert tracker.tracked_tags == 0
    assert tracker.counters["forgotten_tags"] == 1
    assert tracker.counters["staged_tags"] == 1


def test_tags_forgotten_after_movement() -> None:
    rng = random.Random(14)
    tracker = PortalTracker("s", door3())
    for i in range(20):
        for r in sorted(
            crossing_in(f"30340242201D88400000{i:04X}", 10.0 * i, rng),
            key=lambda r: r.last_seen_us,
        ):
            tracker.advance(r.last_seen_us)
            tracker.feed(r)

    tracker.advance(T0_US + 300 * US)

    assert tracker.tracked_tags == 0
    assert tracker.counters["movements"] == 20


def test_busy_door_state_stays_bounded() -> None:
    rng = random.Random(19)
    reads = []
    # a new carton every 2 s for 10 min, so the door is never quiet for 3 s
    for i in range(300):
        reads += crossing_in(f"30340242201D88400000{i:04X}", 2.0 * i, rng)
    tracker = PortalTracker("s", door3())
    sizes = []
    movements: list[ClosedMovement] = []

    for r in sorted(reads, key=lambda r: r.last_seen_us):
        movements += tracker.advance(r.last_seen_us)
        tracker.feed(r)
        sizes.append(tracker.tracked_tags)
    movements += tracker.flush()

    assert max(sizes) <= 40
    assert sum(len(m.tags) for m in movements) == 300
    assert all(m.direction is Direction.IN for m in movements)


def test_crossing_notice_once_before_close() -> None:
    rng = random.Random(15)
    reads = sorted(crossing_in(EPC_B, 0.0, rng), key=lambda r: r.last_seen_us)
    tracker = PortalTracker("s", door3())
    notices: list[CrossingStarted] = []
    closed_at: list[int] = []
    for r in reads:
        if tracker.advance(r.last_seen_us):
            closed_at.append(r.last_seen_us)
        notices += tracker.feed(r)
    first_inside = min(r.last_seen_us for r in reads if r.antenna == INSIDE)

    movements = tracker.flush()

    assert closed_at == []
    assert len(movements) == 1
    assert len(notices) == 1
    assert notices[0].direction is Direction.IN
    assert notices[0].at_us == first_inside
    assert notices[0].first_seen_us == movements[0].started_us


def test_staged_tag_that_crosses_moves() -> None:
    rng = random.Random(16)
    # parked inside for a minute, then carried out through the door
    staged = [read(EPC_A, INSIDE, 0.5 * i, -72.0) for i in range(120)]
    reads = staged + crossing_out(EPC_A, 60.0, rng)
    tracker = PortalTracker("s", door3(rssi_floor_dbm=-75.0))

    movements, crossings = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.OUT]
    assert [c.direction for c in crossings] == [Direction.OUT]
    assert tracker.counters["staged_tags"] == 1


def test_tag_parked_after_crossing_moves() -> None:
    rng = random.Random(17)
    # comes in, then is set down where the inside antenna still reads it
    parked = [read(EPC_B, INSIDE, 3.0 + 0.5 * i, -68.0) for i in range(60)]
    reads = crossing_in(EPC_B, 0.0, rng) + parked
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.IN]
    assert tracker.counters["staged_tags"] == 1


def test_staged_tag_reflection_no_movement() -> None:
    # staged inside, read a few times on the dock side, and still staged inside
    reads = [read(EPC_A, INSIDE, 0.5 * i, -60.0) for i in range(80)]
    reads += [read(EPC_A, INSIDE, 40.0 + 0.5 * i, -60.0) for i in range(60)]
    reads += [read(EPC_A, OUTSIDE, 40.1 + 0.3 * i, -68.0) for i in range(3)]
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert movements == []


def test_late_read_rejected() -> None:
    tracker = PortalTracker("s", door3())
    tracker.advance(T0_US + 100 * US)

    notices = tracker.feed(read(EPC_B, OUTSIDE, 50.0, -50.0))

    assert notices == []
    assert tracker.counters["late"] == 1
    assert tracker.tracked_tags == 0


def test_reads_without_rssi_use_timing() -> None:
    reads = [read(EPC_B, OUTSIDE, 0.1 * i, None) for i in range(8)]
    reads += [read(EPC_B, INSIDE, 1.5 + 0.1 * i, None) for i in range(8)]
    tracker = PortalTracker("s", door3())

    movements, _ = run(tracker, reads)

    assert [m.direction for m in movements] == [Direction.IN]
    assert movements[0].tags[0].peak_rssi_dbm is None
    assert tracker.counters["no_rssi"] == 16


def test_feed_alone_closes_idle_group() -> None:
    rng = random.Random(18)
    tracker = PortalTracker("s", door3())
    for r in sorted(crossing_in(EPC_B, 0.0, rng), key=lambda r: r.last_seen_us):
        tracker.feed(r)
    tracker.feed(read(EPC_C, OUTSIDE, 30.0, -50.0))

    closed = tracker.advance(T0_US + 30 * US)

    assert [epcs(m) for m in closed] == [[EPC_B]]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    outside_s=st.floats(0.6, 2.0),
    inside_s=st.floats(0.6, 2.0),
    overlap=st.floats(0.0, 0.3),
    noise_db=st.floats(0.0, 3.0),
)
def test_clean_crossing_in_any_order(
    seed: int, outside_s: float, inside_s: float, overlap: float, noise_db: float
) -> None:
    rng = random.Random(seed)
    inside_start_s = outside_s * (1 - overlap)
    inside_end_s = inside_start_s + inside_s
    reads = sweep(
        EPC_B, OUTSIDE, 0.0, outside_s, outside_s / 2, -50, rng, noise_db=noise_db
    )
    reads += sweep(
        EPC_B,
        INSIDE,
        inside_start_s,
        inside_end_s,
        (inside_start_s + inside_end_s) / 2,
        -50,
        rng,
        noise_db=noise_db,
    )
    # the reader may report the reads of one pass in any order
    rng.shuffle(reads)
    tracker = PortalTracker("s", door3())
    for r in reads:
        tracker.feed(r)

    movements = tracker.flush()

    assert [m.direction for m in movements] == [Direction.IN]
