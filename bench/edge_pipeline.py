"""Benchmark 1: tag reports through the edge pipeline, per core and at a fixed pace.

Workload. Pallets of 100 SGTIN-96 tags cross a dock door inwards, one pallet every
6 s of reader time. Each tag is read 5 times on the outside antenna (port 2) and
then 5 times on the inside one (port 1), 150 ms apart and strongest in the middle.
Every pallet therefore closes as one movement of 100 tags with direction `in`, and
a movement takes 1,000 tag reports. The reads carry these reader timestamps at any sending speed,
and the portal logic's clock follows the newest read, so every run closes the same
movements however fast the reads arrive.

Pipeline: what the edge daemon does with each read, minus MQTT. PortalTracker.feed
takes every read; every crossing notice becomes a bwms.crossing/1 payload (the
daemon builds one per tag and pass to publish it); every closed movement becomes a
bwms.movement/1 payload committed to the SQLite outbox (WAL, synchronous=FULL, the
daemon's defaults).

Each variant runs in a fresh process, so that its CPU time (getrusage, all threads)
and its peak resident memory are its own:

- portal logic only: TagRead objects fed to PortalTracker, no payloads, no outbox;
- pipeline without LLRP: TagRead objects through the whole pipeline;
- pipeline over LLRP/TCP: a ReaderSimulator in a second process sends
  RO_ACCESS_REPORTs of 100 tag reports at full speed over loopback TCP, and
  ReaderClient (sllurp) decodes them into TagReads for the pipeline;
- paced: the same, with the simulator sending 1,500 tag reports per second in
  reports of about 15, one every 10 ms.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.report import (
    Figure,
    Section,
    at_least,
    at_most,
    current_rss_mib,
    measured,
    peak_rss_mib,
    reset_peak_rss,
)
from bwms.epc import encode_sgtin96
from bwms.site import Antenna, Portal, PortalKind, ReaderRef, Side
from drivers.llrp.client import STATE_CONNECTED, ReaderClient
from drivers.llrp.profile import load_profile
from drivers.llrp.reads import TagRead
from drivers.llrp.simulator import ReaderSimulator, SimRead
from edge.movement import crossing_payload, movement_payload, new_event_id
from edge.outbox import Outbox
from edge.portal import ClosedMovement, PortalTracker

logger = logging.getLogger(__name__)

SITE_ID = "bench"
PORTAL_ID = "door-3"
READER_ID = "bench-reader"
GTIN = "08719139005740"
COMPANY_PREFIX_DIGITS = 7
INSIDE_PORT = 1
OUTSIDE_PORT = 2

PALLET_TAGS = 100
READS_PER_SIDE = 5
READS_PER_PALLET = PALLET_TAGS * READS_PER_SIDE * 2
# Reader-time layout of one pallet: the outside rounds start at 0, the inside ones
# 1 s later, rounds 150 ms apart, and the tags of a round 0.1 ms apart. A pallet
# then lasts 1.61 s, and the next one starts after the 3 s idle gap has closed it.
PALLET_INTERVAL_US = 6_000_000
SIDE_OFFSET_US = 1_000_000
ROUND_INTERVAL_US = 150_000
TAG_OFFSET_US = 100
# 2025-03-01T08:00:00Z, the reader time of the first pallet.
START_US = 1_740_816_000_000_000

# Tag reports per RO_ACCESS_REPORT at full speed (the simulator's default batch).
REPORT_READS = 100
PACED_READS_PER_S = 1_500
PACE_SLICE_S = 0.01
# How often the pipeline closes idle movements. The daemon's default tick is 0.25 s,
# and this shorter one only makes the end of a run easier to time.
TICK_S = 0.05
# The reads carry reader times far from the host clock, so the client's clock-skew
# warning is kept out of the way.
CLOCK_SKEW_IGNORED_MS = 1e15

OUTBOX_QUOTA = 100_000

TARGET_READS_PER_CORE_S = 20_000.0
TARGET_PACED_CORE_PERCENT = 10.0

CONNECT_TIMEOUT_S = 20.0
CONTROL_TIMEOUT_S = 120.0
VARIANT_TIMEOUT_S = 600.0


class EdgeBenchError(Exception):
    """A variant of the edge benchmark failed or did not finish in time."""


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """One tag report of the workload, in reader time."""

    antenna: int
    epc: str
    rssi_dbm: float
    time_us: int


def bench_portal() -> Portal:
    """Return the dock door the workload crosses, with the site file's default tuning."""
    return Portal(
        id=PORTAL_ID,
        kind=PortalKind.DOCK_DOOR,
        reader=ReaderRef(id=READER_ID),
        antennas=[
            Antenna(port=INSIDE_PORT, side=Side.INSIDE),
            Antenna(port=OUTSIDE_PORT, side=Side.OUTSIDE),
        ],
    )


def crossing_reads(pallets: int) -> list[PlannedRead]:
    """Return the tag reports of `pallets` pallets crossing inwards, in time order."""
    reads: list[PlannedRead] = []
    for pallet in range(pallets):
        base_us = START_US + pallet * PALLET_INTERVAL_US
        epcs = [
            encode_sgtin96(GTIN, pallet * PALLET_TAGS + tag + 1, COMPANY_PREFIX_DIGITS)
            for tag in range(PALLET_TAGS)
        ]
        for side, port in enumerate((OUTSIDE_PORT, INSIDE_PORT)):
            for round_no in range(READS_PER_SIDE):
                rssi_dbm = -48.0 - 4.0 * abs(round_no - READS_PER_SIDE // 2)
                round_us = (
                    base_us + side * SIDE_OFFSET_US + round_no * ROUND_INTERVAL_US
                )
                for tag, epc in enumerate(epcs):
                    time_us = round_us + tag * TAG_OFFSET_US
                    reads.append(PlannedRead(port, epc, rssi_dbm, time_us))
    return reads


class Pipeline:
    """The edge daemon's work per read without MQTT: portal logic, payloads, outbox.

    Without an outbox only the portal logic runs, and no payload is built.
    """

    def __init__(self, outbox: Outbox | None) -> None:
        self.portal = bench_portal()
        self.tracker = PortalTracker(SITE_ID, self.portal)
        self.outbox = outbox
        self.reads = 0
        self.crossings = 0
        self.movements: list[ClosedMovement] = []
        self._newest_us = 0

    def on_reads(self, reads: list[TagRead]) -> None:
        """Feed one report's reads, building a crossing payload per notice."""
        for read in reads:
            for crossing in self.tracker.feed(read):
                self.crossings += 1
                if self.outbox is not None:
                    crossing_payload(SITE_ID, self.portal, crossing)
            if read.last_seen_us > self._newest_us:
                self._newest_us = read.last_seen_us
        self.reads += len(reads)

    async def close_idle(self) -> None:
        """Store the movements idle at the newest read's time."""
        for movement in self.tracker.advance(self._newest_us):
            await self._store(movement)

    async def finish(self) -> None:
        """Store every movement still open, as at the end of input."""
        for movement in self.tracker.flush():
            await self._store(movement)

    async def _store(self, movement: ClosedMovement) -> None:
        self.movements.append(movement)
        if self.outbox is None:
            return
        event_id = new_event_id()
        portal = self.portal

        def make_payload(seq: int) -> dict[str, Any]:
            return movement_payload(
                SITE_ID, portal, movement, seq=seq, event_id=event_id
            )

        await self.outbox.add(make_payload)

    def outcome(self) -> dict[str, Any]:
        """Return what the pipeline produced, for the correctness check."""
        return {
            "reads": self.reads,
            "crossings": self.crossings,
            "movements": len(self.movements),
            "tags": sum(len(m.tags) for m in self.movements),
            "directions": sorted({m.direction.value for m in self.movements}),
        }


async def _open_outbox(workdir: Path) -> Outbox:
    # Nothing confirms the movements here, so the quota must hold all of them: the
    # daemon's default of 100,000 does, and keeps the high-water warning away.
    return await Outbox.open(
        workdir / "outbox.sqlite3",
        quota=OUTBOX_QUOTA,
        site_id=SITE_ID,
        portal_id=PORTAL_ID,
    )


# --- variants: each runs in its own process ----------------------------------------


async def run_direct(pallets: int, with_outbox: bool, workdir: Path) -> dict[str, Any]:
    """Feed TagRead objects straight into the pipeline, 100 per report."""
    reads = [
        TagRead(READER_ID, r.antenna, r.epc, r.time_us, r.time_us, r.rssi_dbm)
        for r in crossing_reads(pallets)
    ]
    outbox = await _open_outbox(workdir) if with_outbox else None
    pipeline = Pipeline(outbox)
    rss_before = current_rss_mib()
    reset_peak_rss()
    try:
        with measured() as usage:
            for start in range(0, len(reads), REPORT_READS):
                pipeline.on_reads(reads[start : start + REPORT_READS])
                await pipeline.close_idle()
            await pipeline.finish()
    finally:
        if outbox is not None:
            await outbox.close()
    return {
        **pipeline.outcome(),
        "expected_reads": len(reads),
        "wall_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "rss_before_mib": rss_before,
        "rss_peak_mib": peak_rss_mib(),
    }


async def run_over_llrp(
    pallets: int, reads_per_s: float | None, workdir: Path
) -> dict[str, Any]:
    """Receive the reads from a simulator process over LLRP, at full speed or paced."""
    context = multiprocessing.get_context("spawn")
    control, remote = context.Pipe()
    simulator = context.Process(
        target=simulator_main,
        args=(remote, pallets, reads_per_s),
        name="bench-reader-simulator",
    )
    simulator.start()
    remote.close()
    try:
        port = await _receive(control, "the simulator's port")
        return await _drive_client(control, port, pallets, workdir)
    finally:
        await asyncio.to_thread(simulator.join, 10.0)
        if simulator.is_alive():
            simulator.terminate()
            simulator.join(5.0)


async def _drive_client(
    control: Connection, port: int, pallets: int, workdir: Path
) -> dict[str, Any]:
    outbox = await _open_outbox(workdir)
    pipeline = Pipeline(outbox)
    client = ReaderClient(
        READER_ID,
        "127.0.0.1",
        port,
        load_profile("generic"),
        on_reads=pipeline.on_reads,
        antennas=[INSIDE_PORT, OUTSIDE_PORT],
        max_clock_skew_ms=CLOCK_SKEW_IGNORED_MS,
    )
    running = asyncio.create_task(client.run())
    expected = pallets * READS_PER_PALLET
    try:
        await _wait_until(
            lambda: client.health.state == STATE_CONNECTED,
            CONNECT_TIMEOUT_S,
            "the reader client to connect",
        )
        rss_before = current_rss_mib()
        reset_peak_rss()
        with measured() as usage:
            control.send("go")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CONTROL_TIMEOUT_S
            while pipeline.reads < expected:
                if loop.time() > deadline:
                    raise EdgeBenchError(
                        f"only {pipeline.reads} of {expected} reads arrived within "
                        f"{CONTROL_TIMEOUT_S:.0f} s"
                    )
                await asyncio.sleep(TICK_S)
                await pipeline.close_idle()
            await pipeline.finish()
        sent = await _receive(control, "the simulator's count of reads sent")
    finally:
        # The client closes the LLRP connection before the simulator stops, as a
        # reader's client does.
        await client.stop()
        await asyncio.gather(running, return_exceptions=True)
        await outbox.close()
        control.send("stop")
    health = client.health
    return {
        **pipeline.outcome(),
        "expected_reads": expected,
        "reads_sent": sent,
        "rejected_reads": health.rejected_reads,
        "reports": health.reports,
        "wall_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "rss_before_mib": rss_before,
        "rss_peak_mib": peak_rss_mib(),
    }


async def _receive(control: Connection, expected: str) -> Any:
    if not await asyncio.to_thread(control.poll, CONTROL_TIMEOUT_S):
        raise EdgeBenchError(
            f"timed out after {CONTROL_TIMEOUT_S:.0f} s waiting for {expected}"
        )
    try:
        return control.recv()
    except EOFError as exc:
        raise EdgeBenchError(
            f"the simulator process ended before sending {expected}"
        ) from exc


async def _wait_until(
    predicate: Callable[[], bool], timeout_s: float, condition: str
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise EdgeBenchError(
                f"timed out after {timeout_s:.0f} s waiting for {condition}"
            )
        await asyncio.sleep(0.01)


# --- the simulator process ---------------------------------------------------------


def simulator_main(
    control: Connection, pallets: int, reads_per_s: float | None
) -> None:
    """Serve the workload from a ReaderSimulator until the pipeline sends stop."""
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve_reads(control, pallets, reads_per_s))


async def _serve_reads(
    control: Connection, pallets: int, reads_per_s: float | None
) -> None:
    reads = [
        SimRead(r.antenna, r.epc, r.rssi_dbm, None, r.time_us)
        for r in crossing_reads(pallets)
    ]
    simulator = ReaderSimulator(
        report_batch_max=REPORT_READS, report_buffer_max=len(reads) + 1
    )
    await simulator.start()
    try:
        control.send(simulator.port)
        if not await asyncio.to_thread(control.poll, CONTROL_TIMEOUT_S):
            return
        control.recv()
        if reads_per_s is None:
            await _inject_all(simulator, reads)
        else:
            await _inject_paced(simulator, reads, reads_per_s)
        await _wait_until(
            lambda: simulator.reads_sent >= len(reads),
            CONTROL_TIMEOUT_S,
            "the simulator to send every read",
        )
        control.send(simulator.reads_sent)
        await asyncio.to_thread(control.poll, CONTROL_TIMEOUT_S)
    except (EOFError, BrokenPipeError):
        # The pipeline process ended first, and its own error is reported.
        pass
    finally:
        await simulator.stop()


async def _inject_all(simulator: ReaderSimulator, reads: list[SimRead]) -> None:
    # In chunks, so that the first reports go out while the rest is queued.
    for start in range(0, len(reads), 5_000):
        simulator.inject(reads[start : start + 5_000])
        await asyncio.sleep(0)


async def _inject_paced(
    simulator: ReaderSimulator, reads: list[SimRead], reads_per_s: float
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while sent < len(reads):
        due = min(len(reads), math.floor((loop.time() - started) * reads_per_s) + 1)
        if due > sent:
            simulator.inject(reads[sent:due])
            sent = due
        await asyncio.sleep(PACE_SLICE_S)


# --- running the variants ------------------------------------------------------------


def _variant_main(
    result: Connection, variant: str, pallets: int, reads_per_s: float | None
) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="bwms-bench-edge-") as name:
            workdir = Path(name)
            runner: Coroutine[Any, Any, dict[str, Any]]
            if variant == "portal":
                runner = run_direct(pallets, False, workdir)
            elif variant == "pipeline":
                runner = run_direct(pallets, True, workdir)
            else:
                runner = run_over_llrp(pallets, reads_per_s, workdir)
            outcome = asyncio.run(runner)
        result.send(("ok", outcome))
    except Exception:  # noqa: BLE001
        result.send(("error", traceback.format_exc()))


def run_variant(
    variant: str, pallets: int, reads_per_s: float | None = None
) -> dict[str, Any]:
    """Run one variant in a fresh process and return its measurements."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_variant_main,
        args=(sender, variant, pallets, reads_per_s),
        name=f"bench-edge-{variant}",
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(VARIANT_TIMEOUT_S):
            raise EdgeBenchError(
                f"variant {variant} did not finish within {VARIANT_TIMEOUT_S:.0f} s"
            )
        try:
            status, payload = receiver.recv()
        except EOFError as exc:
            raise EdgeBenchError(
                f"variant {variant} ended without a result (exit code "
                f"{process.exitcode})"
            ) from exc
    finally:
        process.join(30.0)
        if process.is_alive():
            process.terminate()
            process.join(5.0)
    if status != "ok":
        raise EdgeBenchError(f"variant {variant} failed:\n{payload}")
    result: dict[str, Any] = payload
    return result


def _check_outcome(
    section: Section, name: str, outcome: dict[str, Any], pallets: int
) -> None:
    expected_reads = pallets * READS_PER_PALLET
    if outcome["reads"] != expected_reads:
        section.problems.append(
            f"{name}: {outcome['reads']} reads processed, {expected_reads} expected"
        )
    if outcome["movements"] != pallets or outcome["tags"] != pallets * PALLET_TAGS:
        section.problems.append(
            f"{name}: {outcome['movements']} movements of {outcome['tags']} tags, "
            f"{pallets} of {pallets * PALLET_TAGS} expected"
        )
    if outcome["directions"] not in ([], ["in"]):
        section.problems.append(f"{name}: directions {outcome['directions']}, not in")
    if outcome.get("rejected_reads"):
        section.problems.append(
            f"{name}: the reader client rejected {outcome['rejected_reads']} reads"
        )


def _per_core(outcome: dict[str, Any]) -> float:
    return float(outcome["reads"] / outcome["cpu_s"]) if outcome["cpu_s"] > 0 else 0.0


def _us_per_read(outcome: dict[str, Any]) -> float:
    return float(outcome["cpu_s"] * 1e6 / outcome["reads"]) if outcome["reads"] else 0.0


def run(pallets: int, paced_s: float) -> Section:
    """Run every variant and return the section of figures."""
    section = Section(1, "Edge pipeline: LLRP tag reports to the outbox")
    paced_pallets = max(1, round(PACED_READS_PER_S * paced_s / READS_PER_PALLET))
    section.notes += [
        f"workload: {pallets} pallets x {PALLET_TAGS} tags x {READS_PER_SIDE * 2} "
        f"reads = {pallets * READS_PER_PALLET:,} tag reports, one movement per pallet",
        "pipeline: PortalTracker.feed -> bwms.crossing/1 payload per notice -> "
        "bwms.movement/1 payload -> Outbox.add (SQLite WAL, synchronous=FULL)",
        "rate per core = tag reports / CPU seconds of the pipeline process "
        "(getrusage, all threads); each variant in a fresh process",
        f"paced run: {paced_pallets * READS_PER_PALLET:,} tag reports at "
        f"{PACED_READS_PER_S:,}/s, a report every {PACE_SLICE_S * 1000:.0f} ms",
        "peak RSS: VmHWM of the pipeline process during the reads; without LLRP, "
        "the memory before the reads includes the TagRead objects built in advance",
    ]

    portal = run_variant("portal", pallets)
    _check_outcome(section, "portal logic only", portal, pallets)
    pipeline = run_variant("pipeline", pallets)
    _check_outcome(section, "pipeline without LLRP", pipeline, pallets)
    llrp = run_variant("llrp", pallets)
    _check_outcome(section, "pipeline over LLRP/TCP", llrp, pallets)
    paced = run_variant("llrp", paced_pallets, PACED_READS_PER_S)
    _check_outcome(section, "paced pipeline over LLRP/TCP", paced, paced_pallets)

    section.add(
        at_least(
            "pipeline over LLRP/TCP, per core",
            _per_core(llrp),
            "reads/s",
            TARGET_READS_PER_CORE_S,
        )
    )
    section.add(
        Figure(
            "pipeline over LLRP/TCP, wall clock",
            llrp["reads"] / llrp["wall_s"],
            "reads/s",
        )
    )
    section.add(
        Figure("pipeline without LLRP, per core", _per_core(pipeline), "reads/s")
    )
    section.add(Figure("portal logic only, per core", _per_core(portal), "reads/s"))
    paced_percent = 100.0 * paced["cpu_s"] / paced["wall_s"]
    section.add(
        at_most(
            f"CPU at {PACED_READS_PER_S:,} reads/s over LLRP/TCP",
            paced_percent,
            "% of a core",
            TARGET_PACED_CORE_PERCENT,
            digits=1,
        )
    )
    section.add(
        Figure(
            "paced rate reached",
            paced["reads"] / paced["wall_s"],
            "reads/s",
        )
    )
    layers = (
        ("CPU per read: portal logic", _us_per_read(portal)),
        (
            "CPU per read: payloads and outbox",
            _us_per_read(pipeline) - _us_per_read(portal),
        ),
        (
            "CPU per read: LLRP decoding (sllurp) and TCP",
            _us_per_read(llrp) - _us_per_read(pipeline),
        ),
    )
    for label, value in layers:
        section.add(Figure(label, value, "us", digits=1))
    section.add(
        Figure(
            "peak RSS over LLRP/TCP",
            llrp["rss_peak_mib"],
            f"MiB ({llrp['rss_before_mib']:.0f} MiB before the reads)",
        )
    )
    section.add(
        Figure(
            "peak RSS without LLRP",
            pipeline["rss_peak_mib"],
            f"MiB ({pipeline['rss_before_mib']:.0f} MiB before the reads)",
        )
    )
    section.notes.append(
        f"checked: {llrp['movements']} movements of {llrp['tags']:,} tags over "
        f"LLRP/TCP, directions {llrp['directions']}, {llrp['reports']:,} reports"
    )
    return section
