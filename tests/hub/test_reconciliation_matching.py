"""Pure reconciliation rules: statuses, pallet contents, duplicates, matching limits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from bwms.epc import decode_epc, encode_sgtin96, encode_sscc96
from hub.manifests.matching import (
    ContentData,
    Direction,
    LineData,
    LineStatus,
    ManifestData,
    ManifestStatus,
    ManualConfirmation,
    MovementData,
    TagData,
    lines_counting,
    reconcile,
)

GTIN_A = "08719139005740"
GTIN_B = "04012345000016"
SSCC = "946100520000000072"
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
END = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def sgtin(serial: int, gtin: str = GTIN_A) -> str:
    return encode_sgtin96(gtin, serial, 7)


def tag(epc: str) -> TagData:
    decoded = decode_epc(epc)
    return TagData(
        epc=epc,
        scheme=str(decoded["scheme"]),
        uri=decoded.get("uri"),  # type: ignore[arg-type]
        gtin=decoded.get("gtin"),  # type: ignore[arg-type]
        sscc=decoded.get("sscc"),  # type: ignore[arg-type]
    )


def manifest(*lines: LineData, direction: Direction = Direction.IN) -> ManifestData:
    return ManifestData(
        manifest_id="IN-1",
        direction=direction,
        site="site-1",
        portals=frozenset({"door-3"}),
        lines=lines,
        window_start=START,
        window_end=END,
    )


def moved(
    event_id: str,
    *epcs: str,
    portal: str = "door-3",
    direction: str = "in",
    started_at: datetime = START + timedelta(hours=1),
    site: str = "site-1",
) -> MovementData:
    return MovementData(
        event_id=event_id,
        site=site,
        portal=portal,
        direction=direction,
        started_at=started_at,
        tags=tuple(tag(epc) for epc in epcs),
    )


GTIN_LINE = LineData(line_no=1, quantity=2, gtin=GTIN_A, unit="CT")


def test_status_complete() -> None:
    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1), sgtin(2))], [], closed=True
    )

    assert result.status is ManifestStatus.COMPLETE
    assert result.lines[0].received == 2
    assert result.lines[0].status is LineStatus.COMPLETE


def test_status_short() -> None:
    result = reconcile(manifest(GTIN_LINE), [moved("m1", sgtin(1))], [], closed=True)

    assert result.status is ManifestStatus.SHORT
    assert result.lines[0].status is LineStatus.SHORT


def test_status_over() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("m1", sgtin(1), sgtin(2), sgtin(3))],
        [],
        closed=True,
    )

    assert result.status is ManifestStatus.OVER
    assert result.lines[0].received == 3
    assert result.lines[0].status is LineStatus.OVER


def test_status_discrepant() -> None:
    other = LineData(line_no=2, quantity=1, gtin=GTIN_B, unit="CT")

    result = reconcile(
        manifest(GTIN_LINE, other),
        [moved("m1", sgtin(1), sgtin(7, GTIN_B), sgtin(8, GTIN_B))],
        [],
        closed=True,
    )

    assert result.status is ManifestStatus.DISCREPANT
    assert result.lines[0].status is LineStatus.SHORT
    assert result.lines[1].status is LineStatus.OVER


def test_status_pending_while_open() -> None:
    result = reconcile(manifest(GTIN_LINE), [], [], closed=False)

    assert result.status is ManifestStatus.PENDING
    assert result.event_ids == []


def test_status_receiving_while_open() -> None:
    result = reconcile(manifest(GTIN_LINE), [moved("m1", sgtin(1))], [], closed=False)

    assert result.status is ManifestStatus.RECEIVING
    assert result.lines[0].status is LineStatus.SHORT


def test_closed_without_movements_short() -> None:
    result = reconcile(manifest(GTIN_LINE), [], [], closed=True)

    assert result.status is ManifestStatus.SHORT


def test_unexpected_tag_makes_over() -> None:
    stray = sgtin(5, GTIN_B)

    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1), sgtin(2), stray)], [], closed=True
    )

    assert result.status is ManifestStatus.OVER
    assert result.lines[0].status is LineStatus.COMPLETE
    assert [item.epc for item in result.unexpected] == [stray]
    assert result.unexpected[0].gtin == GTIN_B
    assert result.unexpected[0].scheme == "sgtin-96"
    assert result.unexpected[0].uri == "urn:epc:id:sgtin:4012345.000001.5"
    assert result.unexpected[0].event_id == "m1"


def test_unexpected_non_gs1_tag() -> None:
    # A factory-programmed EPC has no GTIN; it is unexpected, with scheme unknown.
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("m1", sgtin(1), sgtin(2), "E2009A9040060AF000000372")],
        [],
        closed=True,
    )

    assert result.unexpected[0].scheme == "unknown"
    assert result.unexpected[0].gtin is None


def test_pallet_contents_count_against_pallet() -> None:
    pallet = LineData(
        line_no=1,
        quantity=1,
        sscc=SSCC,
        unit="PLT",
        contents=(ContentData(quantity=2, gtin=GTIN_A),),
    )
    pallet_epc = encode_sscc96(SSCC, 7, filter_value=6)

    result = reconcile(
        manifest(pallet), [moved("m1", pallet_epc, sgtin(1), sgtin(2))], [], closed=True
    )

    assert result.status is ManifestStatus.COMPLETE
    assert result.unexpected == []
    assert result.lines[0].received == 1
    assert result.lines[0].contents[0].received == 2
    assert result.lines[0].contents[0].status is LineStatus.COMPLETE


def test_pallet_contents_short_without_pallet_tag() -> None:
    pallet = LineData(
        line_no=1,
        quantity=1,
        sscc=SSCC,
        unit="PLT",
        contents=(ContentData(quantity=3, gtin=GTIN_A),),
    )

    result = reconcile(
        manifest(pallet), [moved("m1", sgtin(1), sgtin(2))], [], closed=True
    )

    assert result.status is ManifestStatus.SHORT
    assert result.lines[0].status is LineStatus.SHORT
    assert result.lines[0].contents[0].received == 2


def test_pallet_contents_listed_epcs() -> None:
    listed = (sgtin(1), sgtin(2))
    pallet = LineData(
        line_no=1,
        quantity=1,
        sscc=SSCC,
        unit="PLT",
        contents=(ContentData(quantity=2, epcs=listed),),
    )
    pallet_epc = encode_sscc96(SSCC, 7, filter_value=6)

    result = reconcile(
        manifest(pallet), [moved("m1", pallet_epc, sgtin(1))], [], closed=True
    )

    assert result.lines[0].contents[0].missing_epcs == [sgtin(2)]
    assert result.status is ManifestStatus.SHORT


def test_tag_in_two_movements_counts_once() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("m1", sgtin(1)), moved("m2", sgtin(1), sgtin(2))],
        [],
        closed=True,
    )

    assert result.lines[0].received == 2
    assert result.status is ManifestStatus.COMPLETE
    assert result.event_ids == ["m1", "m2"]


def test_same_movement_twice_counts_once() -> None:
    first = moved("m1", sgtin(1), sgtin(2), sgtin(3))

    result = reconcile(manifest(GTIN_LINE), [first, first], [], closed=True)

    assert result.lines[0].received == 3
    assert result.event_ids == ["m1"]


def test_wrong_portal_not_matched() -> None:
    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1), portal="gate-1")], [], closed=False
    )

    assert result.event_ids == []
    assert result.status is ManifestStatus.PENDING


def test_wrong_site_not_matched() -> None:
    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1), site="site-2")], [], closed=False
    )

    assert result.event_ids == []


def test_wrong_direction_not_matched() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [
            moved("m1", sgtin(1), direction="out"),
            moved("m2", sgtin(2), direction="unknown"),
        ],
        [],
        closed=True,
    )

    assert result.event_ids == []
    assert result.lines[0].received == 0


def test_outbound_manifest_matches_out() -> None:
    outbound = manifest(GTIN_LINE, direction=Direction.OUT)

    result = reconcile(
        outbound, [moved("m1", sgtin(1), sgtin(2), direction="out")], [], closed=True
    )

    assert result.status is ManifestStatus.COMPLETE


@pytest.mark.parametrize(
    "started_at",
    [START - timedelta(microseconds=1), END + timedelta(microseconds=1)],
    ids=["before-start", "after-end"],
)
def test_outside_window_not_matched(started_at: datetime) -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("m1", sgtin(1), started_at=started_at)],
        [],
        closed=True,
    )

    assert result.event_ids == []


@pytest.mark.parametrize("started_at", [START, END], ids=["at-start", "at-end"])
def test_window_ends_inclusive(started_at: datetime) -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("m1", sgtin(1), started_at=started_at)],
        [],
        closed=True,
    )

    assert result.event_ids == ["m1"]


def test_open_window_ends() -> None:
    unbounded = ManifestData(
        manifest_id="IN-2",
        direction=Direction.IN,
        site="site-1",
        portals=frozenset({"door-3"}),
        lines=(GTIN_LINE,),
    )
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)

    result = reconcile(
        unbounded, [moved("m1", sgtin(1), started_at=long_ago)], [], closed=False
    )

    assert result.event_ids == ["m1"]


def test_late_movement_after_close_counts() -> None:
    closed_short = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1))], [], closed=True
    )
    # Stored after the close, but it started inside the window.
    late = moved("m2", sgtin(2), started_at=START + timedelta(minutes=5))

    with_late = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1)), late], [], closed=True
    )

    assert closed_short.status is ManifestStatus.SHORT
    assert with_late.status is ManifestStatus.COMPLETE
    assert with_late.event_ids == ["m2", "m1"]


def test_manual_quantity_shown_apart() -> None:
    confirmation = ManualConfirmation(
        line_no=1, by="keeper", reason="tag damaged", confirmed_at=END, quantity=1
    )

    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1))], [confirmation], closed=True
    )

    assert result.lines[0].received == 1
    assert result.lines[0].confirmed_manually == 1
    assert result.status is ManifestStatus.COMPLETE


def test_manual_epc_already_read_not_counted() -> None:
    confirmation = ManualConfirmation(
        line_no=1,
        by="keeper",
        reason="checked by hand",
        confirmed_at=END,
        tags=(tag(sgtin(1)), tag(sgtin(2))),
    )

    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1))], [confirmation], closed=True
    )

    assert result.lines[0].received == 1
    assert result.lines[0].confirmed_manually == 1


def test_manual_epc_counts_once_across_confirmations() -> None:
    confirmations = [
        ManualConfirmation(
            line_no=1, by=by, reason="no read", confirmed_at=END, tags=(tag(sgtin(2)),)
        )
        for by in ("keeper", "supervisor")
    ]

    result = reconcile(
        manifest(GTIN_LINE), [moved("m1", sgtin(1))], confirmations, closed=True
    )

    assert result.lines[0].confirmed_manually == 1


def test_manual_unknown_line_ignored(caplog: pytest.LogCaptureFixture) -> None:
    confirmation = ManualConfirmation(
        line_no=9, by="keeper", reason="typo", confirmed_at=END, quantity=5
    )

    with caplog.at_level(logging.WARNING, logger="hub.manifests.matching"):
        result = reconcile(manifest(GTIN_LINE), [], [confirmation], closed=True)

    assert result.lines[0].confirmed_manually == 0
    assert "unknown line 9" in caplog.text


def test_listed_epcs_missing() -> None:
    listed = LineData(
        line_no=1, quantity=3, epcs=(sgtin(1), sgtin(2), sgtin(3)), unit="PCE"
    )
    manual = ManualConfirmation(
        line_no=1, by="keeper", reason="seen", confirmed_at=END, tags=(tag(sgtin(3)),)
    )

    result = reconcile(manifest(listed), [moved("m1", sgtin(1))], [manual], closed=True)

    assert result.lines[0].missing_epcs == [sgtin(2)]
    assert result.lines[0].received == 1
    assert result.lines[0].confirmed_manually == 1
    assert result.status is ManifestStatus.SHORT


def test_listed_epc_wins_over_gtin_line() -> None:
    # The EPC is listed on line 2, so it counts there and not against the GTIN.
    listed = LineData(line_no=2, quantity=1, epcs=(sgtin(9),), unit="PCE")

    result = reconcile(
        manifest(GTIN_LINE, listed), [moved("m1", sgtin(9))], [], closed=True
    )

    assert result.lines[0].received == 0
    assert result.lines[1].received == 1


def test_shared_gtin_filled_in_line_order() -> None:
    first = LineData(line_no=1, quantity=2, gtin=GTIN_A, unit="CT")
    second = LineData(line_no=2, quantity=2, gtin=GTIN_A, unit="CT")
    reads = [moved("m1", *(sgtin(n) for n in range(1, 6)))]

    result = reconcile(manifest(second, first), reads, [], closed=True)

    assert [line.line_no for line in result.lines] == [1, 2]
    assert [line.received for line in result.lines] == [2, 3]
    assert result.lines[1].status is LineStatus.OVER


def test_shared_gtin_manual_fills_shortfall() -> None:
    first = LineData(line_no=1, quantity=2, gtin=GTIN_A, unit="CT")
    second = LineData(line_no=2, quantity=2, gtin=GTIN_A, unit="CT")
    manual = ManualConfirmation(
        line_no=1, by="keeper", reason="counted", confirmed_at=END, quantity=1
    )

    result = reconcile(
        manifest(first, second),
        [moved("m1", sgtin(1), sgtin(2), sgtin(3))],
        [manual],
        closed=True,
    )

    assert [line.confirmed_manually for line in result.lines] == [0, 1]
    assert result.status is ManifestStatus.COMPLETE


def test_lines_counting_maps_epcs() -> None:
    pallet = LineData(
        line_no=2,
        quantity=1,
        sscc=SSCC,
        unit="PLT",
        contents=(ContentData(quantity=4, gtin=GTIN_B),),
    )
    tags = [
        tag(sgtin(1)),
        tag(sgtin(2, GTIN_B)),
        tag(encode_sscc96(SSCC, 7)),
        tag("E200"),
    ]

    owners = lines_counting(manifest(GTIN_LINE, pallet), tags)

    assert owners[sgtin(1)] == {1}
    assert owners[sgtin(2, GTIN_B)] == {2}
    assert owners[encode_sscc96(SSCC, 7)] == {2}
    assert owners["E200"] == set()


def test_direction_unknown_listed_apart() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("e1", sgtin(1)), moved("e2", sgtin(2), sgtin(3, GTIN_B), direction="unknown")],
        [],
        closed=True,
    )

    assert [t.epc for t in result.direction_unknown] == [sgtin(2)]
    assert result.direction_unknown[0].event_id == "e2"
    assert result.lines[0].received == 1
    assert result.unexpected == []
    assert result.event_ids == ["e1"]
    assert result.status is ManifestStatus.SHORT


def test_direction_unknown_skips_received_tag() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("e1", sgtin(1)), moved("e2", sgtin(1), direction="unknown")],
        [],
        closed=False,
    )

    assert result.direction_unknown == []


def test_direction_unknown_only_at_manifest_portals() -> None:
    result = reconcile(
        manifest(GTIN_LINE),
        [moved("e1", sgtin(1), direction="unknown", portal="door-9")],
        [],
        closed=False,
    )

    assert result.direction_unknown == []
    assert result.status is ManifestStatus.PENDING
