"""The known set of tags a scenario sends through the portals.

In each round, one new tag enters and one new tag leaves through every portal at
the same moment, so each round closes into two movements per portal, one tag each.
The reads of a round lie in the last few tens of milliseconds of the reader clock
when they are injected, as a reader reports reads just made. Older reads would be
rejected as late by the portal logic, which refuses reads older than its clock
minus the idle gap. Rounds follow each other after the idle gap plus a pause, so
two rounds never merge into one movement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bwms.chaos.errors import ChaosError
from bwms.chaos.parts import PortalReader
from bwms.chaos.settings import READ_INTERVAL_S, READS_PER_SIDE, ChaosSettings
from bwms.epc import encode_sgtin96, gs1_check_digit
from drivers.llrp.simulator import SimRead

logger = logging.getLogger(__name__)

# Antenna ports of every test portal (the site file written by the bench).
INSIDE_PORT = 1
OUTSIDE_PORT = 2
READ_RSSI_DBM = -52.0
# A made-up GTIN whose 7-digit company prefix 6901234 lies in GS1 China's range.
_GTIN_BODY = "0690123400042"
_GTIN = _GTIN_BODY + gs1_check_digit(_GTIN_BODY)
_COMPANY_PREFIX_DIGITS = 7


@dataclass(frozen=True)
class Crossing:
    """One tag that passed one portal in one direction."""

    epc: str
    portal_id: str
    direction: str  # "in" or "out"
    round_no: int


def crossing_reads(epc: str, end_us: int, *, inward: bool) -> list[SimRead]:
    """Return the reads of one tag passing a door, the last one at `end_us`."""
    first, second = (
        (OUTSIDE_PORT, INSIDE_PORT) if inward else (INSIDE_PORT, OUTSIDE_PORT)
    )
    count = READS_PER_SIDE * 2
    step_us = round(READ_INTERVAL_S * 1_000_000)
    return [
        SimRead(
            antenna=first if index < READS_PER_SIDE else second,
            epc=epc,
            rssi_dbm=READ_RSSI_DBM,
            time_us=end_us - (count - 1 - index) * step_us,
        )
        for index in range(count)
    ]


RoundHook = Callable[[int], Awaitable[None]]


class CrossingStream:
    """Rounds of crossings through every portal, and the record of what crossed."""

    def __init__(
        self,
        readers: dict[str, PortalReader],
        settings: ChaosSettings,
        *,
        link_up: Callable[[str], bool] | None = None,
        serial_start: int = 1,
    ) -> None:
        self._readers = readers
        self._settings = settings
        self._link_up = link_up or (lambda portal_id: readers[portal_id].streaming)
        self._next_serial = serial_start
        self.crossings: list[Crossing] = []
        self.rounds = 0
        self._last_injected: float | None = None

    @property
    def expected_tags(self) -> set[str]:
        return {crossing.epc for crossing in self.crossings}

    def movements_of(self, portal_id: str) -> int:
        """Return how many movements the rounds so far make at one portal."""
        return sum(1 for c in self.crossings if c.portal_id == portal_id)

    async def play(self, rounds: int, after_round: RoundHook | None = None) -> None:
        """Run `rounds` rounds and await the hook after each one."""
        for _ in range(rounds):
            await self.round()
            if after_round is not None:
                await after_round(self.rounds)

    async def round(self, *, buffered: bool = False) -> list[Crossing]:
        """Send one tag in and one tag out through every portal, once all can read.

        The round waits for the wave period after the previous one, counted from
        the moment that one was injected, so a fault that delayed this round never
        brings two rounds closer than the idle gap. With `buffered`, the reads are
        injected at once even if a reader cannot send them, so they wait in the
        reader's buffer, as a reader keeps reports while its client is away.
        """
        if self._last_injected is not None:
            due = self._last_injected + self._settings.wave_period_s
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
        if not buffered:
            await self.wait_streaming()
        self._last_injected = time.monotonic()
        self.rounds += 1
        sent: list[Crossing] = []
        before = {portal: reader.reads_sent for portal, reader in self._readers.items()}
        for portal_id, reader in self._readers.items():
            end_us = reader.reader_time_us()
            reads: list[SimRead] = []
            for direction in ("in", "out"):
                epc = self._new_epc()
                reads += crossing_reads(epc, end_us, inward=direction == "in")
                sent.append(Crossing(epc, portal_id, direction, self.rounds))
            reads.sort(key=lambda read: read.time_us or 0)
            reader.inject(reads)
        if not buffered:
            await self._wait_delivered(before, len(sent) * READS_PER_SIDE * 2)
        self.crossings += sent
        return sent

    async def wait_streaming(self) -> None:
        """Wait until every reader has a client whose ROSpec runs.

        `link_up` may add a check of the client's own view of the link.
        """
        timeout_s = self._settings.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while not all(self._link_up(portal_id) for portal_id in self._readers):
            if time.monotonic() > deadline:
                down = [p for p in self._readers if not self._link_up(p)]
                raise ChaosError(
                    f"readers of {', '.join(down)} had no inventorying client "
                    f"within {timeout_s} s"
                )
            await asyncio.sleep(0.02)

    async def _wait_delivered(self, before: dict[str, int], reads: int) -> None:
        # Reads that reach the daemon after the idle gap would be rejected as late,
        # and then missing tags would be the harness's fault, not the product's.
        # So a round the readers could not send in time stops the run.
        per_reader = reads // len(self._readers)
        limit_s = self._settings.idle_gap_s / 2
        deadline = time.monotonic() + limit_s
        while True:
            short = [
                portal
                for portal, reader in self._readers.items()
                if reader.reads_sent - before[portal] < per_reader
            ]
            if not short:
                return
            if time.monotonic() > deadline:
                raise ChaosError(
                    f"round {self.rounds}: the readers of {', '.join(short)} did not "
                    f"send their reads within {limit_s:g} s, so the portal logic "
                    "would reject them as late"
                )
            await asyncio.sleep(0.005)

    def _new_epc(self) -> str:
        serial = self._next_serial
        self._next_serial += 1
        return encode_sgtin96(_GTIN, serial, _COMPANY_PREFIX_DIGITS)
