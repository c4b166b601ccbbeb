"""The harness's counting: lost, duplicated and unexpected tags from the hub's rows."""

from __future__ import annotations

from bwms.chaos.tally import StoredTag, tally

A, B, C, D = "EPC-A", "EPC-B", "EPC-C", "EPC-D"


def rows(*entries: tuple[int, str, str]) -> list[StoredTag]:
    return [
        StoredTag(movement_id, event_id, epc) for movement_id, event_id, epc in entries
    ]


def test_tally_all_stored_once() -> None:
    result = tally([A, B], rows((1, "e1", A), (2, "e2", B)), dropped=0)

    assert result.expected == 2
    assert result.stored == 2
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.unexpected == 0
    assert result.movements_stored == 2


def test_tally_counts_missing_tag() -> None:
    result = tally([A, B, C], rows((1, "e1", A)), dropped=0)

    assert result.stored == 1
    assert result.lost == 2
    assert result.missing == (B, C)


def test_tally_tag_in_two_movements() -> None:
    result = tally([A, B], rows((1, "e1", A), (1, "e1", B), (2, "e2", A)), dropped=0)

    assert result.stored == 2
    assert result.duplicated == 1
    assert result.movements_stored == 2


def test_tally_event_id_in_two_rows() -> None:
    # Impossible while the hub's unique constraint holds; counted in case it breaks.
    result = tally([A, B], rows((1, "e1", A), (2, "e1", B)), dropped=0)

    assert result.duplicated == 1


def test_tally_unexpected_tag() -> None:
    result = tally([A], rows((1, "e1", A), (2, "e2", D)), dropped=0)

    assert result.unexpected == 1
    assert result.lost == 0


def test_tally_drops_offset_missing() -> None:
    result = tally([A, B, C], rows((1, "e1", A)), dropped=2)

    assert result.lost == 0
    assert result.dropped == 2


def test_tally_loss_beyond_drops() -> None:
    result = tally([A, B, C], rows((1, "e1", A)), dropped=1)

    assert result.lost == 1
