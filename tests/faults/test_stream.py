"""The crossing stream, the bench site file and the fault schedule, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bwms.chaos import ChaosError, ChaosSettings
from bwms.chaos.bench import write_site
from bwms.chaos.scenarios import fault_rounds
from bwms.chaos.stream import crossing_reads
from bwms.site import load_site
from drivers.llrp.reads import TagRead
from edge.portal import PortalTracker

IN_EPC = "3035A537C8000A8000000001"
OUT_EPC = "3035A537C8000A8000000002"
END_US = 1_800_000_000_000_000


def test_round_reads_make_two_movements(tmp_path: Path) -> None:
    settings = ChaosSettings()
    site_file = tmp_path / "site.toml"
    write_site(site_file, "chaos-test", {"door-1": 5084}, settings.idle_gap_s)
    site = load_site(site_file)
    tracker = PortalTracker(site.site.id, site.portal("door-1"))
    reads = crossing_reads(IN_EPC, END_US, inward=True)
    reads += crossing_reads(OUT_EPC, END_US, inward=False)

    # The daemon's clock is at the last read when the reads arrive.
    tracker.advance(END_US)
    for read in sorted(reads, key=lambda r: r.time_us or 0):
        assert read.time_us is not None
        tracker.feed(
            TagRead(
                "door-1-reader",
                read.antenna,
                read.epc,
                read.time_us,
                read.time_us,
                read.rssi_dbm,
            )
        )
    movements = tracker.advance(END_US + round(settings.idle_gap_s * 1_000_000))

    directions = {m.direction.value: [t.epc for t in m.tags] for m in movements}
    assert directions == {"in": [IN_EPC], "out": [OUT_EPC]}
    assert tracker.counters["late"] == 0


def test_round_reads_span_under_idle_gap() -> None:
    settings = ChaosSettings()
    reads = crossing_reads(IN_EPC, END_US, inward=True)
    first_us = min(read.time_us or 0 for read in reads)

    assert END_US - first_us == round(settings.crossing_span_s * 1_000_000)
    assert settings.crossing_span_s < settings.idle_gap_s / 2


def test_fault_rounds_spread() -> None:
    assert fault_rounds(24, 3) == {6, 12, 18}


def test_fault_rounds_too_few() -> None:
    with pytest.raises(ChaosError, match="too few"):
        fault_rounds(5, 5)


def test_settings_reject_unknown_field() -> None:
    with pytest.raises(ValidationError):
        ChaosSettings.model_validate({"wave": 3})


def test_settings_reject_ack_over_backoff() -> None:
    with pytest.raises(ValidationError, match="ack_timeout_s"):
        ChaosSettings(ack_timeout_s=2.0, resend_backoff_max_s=1.0)


def test_settings_reject_slow_keepalive() -> None:
    with pytest.raises(ValidationError, match="reader_keepalive_s"):
        ChaosSettings(reader_keepalive_s=0.5, idle_gap_s=0.3)
