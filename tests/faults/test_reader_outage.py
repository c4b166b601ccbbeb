"""Crossings a reader held while its link was down, reported after the reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bwms.chaos import Bench, settings_for
from bwms.chaos.parts import InProcessEdge

pytestmark = pytest.mark.slow


async def test_crossing_held_over_reconnect(tmp_path: Path) -> None:
    settings = settings_for("ci", portals=1, settle_timeout_s=3.0, seed=13)

    async with Bench(settings, tmp_path / "bench") as bench:
        assert bench.stream is not None
        reader = bench.readers["door-1"]
        edge = bench.edges["door-1"]
        assert isinstance(edge, InProcessEdge)
        await bench.stream.round()
        # A half-open link: the tag crosses while the reader cannot report it, so
        # the reader keeps the reads until a client runs its ROSpec again.
        reader.go_silent()
        await bench.stream.round(buffered=True)
        async with asyncio.timeout(10):
            while edge.reader_state() != "lost":
                await asyncio.sleep(0.02)
        # An outage of a second or more, as a reader reboot or a switch port
        # reset takes, rather than one that ends within the idle gap.
        await asyncio.sleep(1.0)
        reader.resume()
        # A connection the daemon opened during the silence never got its
        # greeting; resetting it saves the client's 5 s handshake timeout.
        reader.drop_connections()
        await bench.stream.round()
        outcome = await bench.outcome("reader-outage", "held", faults=1, seed=13)

    assert outcome.tally.lost == 0, outcome.notes
