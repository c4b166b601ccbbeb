"""The bench a scenario runs on: simulator → edge daemon → Mosquitto → hub.

`Bench.start()` starts the parts in the order they depend on each other. First
come the broker and the reader simulators, whose ports the site file names, then
the site file. The hub follows, so that its session exists before the first
movement, and last one edge daemon per portal. A scenario then plays rounds of
crossings, breaks parts in between, and calls `outcome()`. `Bench.close()`
stops every part it started.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bwms.chaos.broker import Broker, MosquittoBroker
from bwms.chaos.errors import ChaosError
from bwms.chaos.parts import (
    Edge,
    EdgeProcess,
    Hub,
    HubProcess,
    InProcessEdge,
    InProcessHub,
    PortalReader,
    edge_options,
    hub_options,
)
from bwms.chaos.settings import ChaosSettings
from bwms.chaos.stream import INSIDE_PORT, OUTSIDE_PORT, CrossingStream
from bwms.chaos.tally import Tally, read_hub_tags, read_outbox, tally
from bwms.site import Site, load_site

logger = logging.getLogger(__name__)

Mode = Literal["inprocess", "process"]
SETTLE_POLL_S = 0.2


@dataclass(frozen=True)
class Outcome:
    """The result of one scenario variant, as the table prints it."""

    scenario: str
    variant: str
    faults: int  # faults injected
    tally: Tally
    movements_expected: int
    pending: int  # movements still unconfirmed in the outboxes at the end
    edges_running: bool
    hub_running: bool
    seed: int
    expect_dropped: bool = False  # the variant fills the outbox past its quota
    problems: tuple[str, ...] = ()  # failed checks of the scenario's own
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every tag is stored once, or counted as dropped where expected."""
        counts = self.tally
        if self.expect_dropped:
            dropped_as_expected = counts.dropped > 0
        else:
            dropped_as_expected = counts.dropped == 0
        return (
            counts.lost == 0
            and counts.duplicated == 0
            and counts.unexpected == 0
            and self.pending == 0
            and self.edges_running
            and self.hub_running
            and dropped_as_expected
            and not self.problems
        )


def write_site(
    path: Path, site_id: str, reader_ports: dict[str, int], idle_gap_s: float
) -> None:
    """Write the site file of the bench: one dock door per reader."""
    lines = [
        "[site]",
        f'id = "{site_id}"',
        'name = "Fault-injection bench"',
        "",
    ]
    for portal_id, port in reader_ports.items():
        lines += [
            "[[portals]]",
            f'id = "{portal_id}"',
            'kind = "dock_door"',
            f'reader = {{ id = "{portal_id}-reader", host = "127.0.0.1", '
            f'port = {port}, profile = "generic" }}',
            f'antennas = [{{ port = {INSIDE_PORT}, side = "inside" }}, '
            f'{{ port = {OUTSIDE_PORT}, side = "outside" }}]',
            # A long staged dwell, because no bench tag ever waits at a door.
            f"tuning = {{ rssi_floor_dbm = -75.0, idle_gap_s = {idle_gap_s}, "
            "min_reads = 2, staged_dwell_s = 30.0 }",
            "",
        ]
    path.write_text("\n".join(lines))


class Bench:
    """One site's parts for one scenario variant, in a folder of its own."""

    def __init__(
        self,
        settings: ChaosSettings,
        folder: Path,
        *,
        broker: Broker | None = None,
        persistence: bool = False,
        max_queued: int | None = None,
        edge_mode: Mode = "inprocess",
        hub_mode: Mode = "inprocess",
        outbox_quota: int | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.edge_mode = edge_mode
        self.hub_mode = hub_mode
        self.outbox_quota = outbox_quota
        self.site_id = "chaos-" + uuid.uuid4().hex[:8]
        self.hub_client_id = f"bwms-hub-{self.site_id}"
        self.site_file = folder / "site.toml"
        self.hub_database = folder / "hub.sqlite3"
        self.portal_ids = [f"door-{n}" for n in range(1, settings.portals + 1)]

        self._own_broker = broker is None
        self._persistence = persistence
        self._max_queued = max_queued
        self.broker: Broker | None = broker
        self.readers: dict[str, PortalReader] = {}
        self.edges: dict[str, Edge] = {}
        self.hub: Hub | None = None
        self.site: Site | None = None
        self.stream: CrossingStream | None = None
        self._keep_folder = False
        self._log_handler: logging.Handler | None = None

    # Start-up, in dependency order

    async def start(self) -> None:
        """Start every part; returns once every reader has an inventorying client."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start_log()
        await self._start_broker()
        await self._start_readers()
        self._write_site()
        await self.start_hub()
        await self._start_edges()
        self.stream = CrossingStream(self.readers, self.settings, link_up=self._link_up)
        await self.stream.wait_streaming()

    def _start_log(self) -> None:
        # The in-process parts log here too, so a failed run's folder shows what
        # the edge daemons and the hub saw. Loggers keep their own levels.
        handler = logging.FileHandler(self.folder / "bench.log", encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        logging.getLogger().addHandler(handler)
        self._log_handler = handler

    async def _start_broker(self) -> None:
        if self.broker is None:
            broker = MosquittoBroker(
                self.folder / "broker",
                persistence=self._persistence,
                max_queued=self._max_queued,
            )
            self.broker = broker
            await asyncio.to_thread(broker.start)

    async def _start_readers(self) -> None:
        for portal_id in self.portal_ids:
            reader = PortalReader()
            await reader.start()
            self.readers[portal_id] = reader

    def _write_site(self) -> None:
        ports = {portal: reader.port for portal, reader in self.readers.items()}
        write_site(self.site_file, self.site_id, ports, self.settings.idle_gap_s)
        self.site = load_site(self.site_file)

    async def _start_edges(self) -> None:
        for portal_id in self.portal_ids:
            self.edges[portal_id] = self._make_edge(portal_id)
            await self.edges[portal_id].start()

    def _make_edge(self, portal_id: str) -> Edge:
        assert self.broker is not None and self.site is not None
        options = edge_options(self.settings, quota=self.outbox_quota)
        outbox = self.folder / f"outbox-{portal_id}.sqlite3"
        reader_port = self.readers[portal_id].port
        if self.edge_mode == "process":
            return EdgeProcess(
                self.site_file,
                portal_id,
                mqtt_url=self.broker.url,
                outbox_path=outbox,
                reader_port=reader_port,
                options=options,
                log=self.folder / f"edge-{portal_id}.log",
            )
        return InProcessEdge(
            self.site,
            portal_id,
            mqtt_url=self.broker.url,
            outbox_path=outbox,
            reader_port=reader_port,
            options=options,
        )

    def _link_up(self, portal_id: str) -> bool:
        # The simulator learns of a link the client gave up only once the socket
        # closes. Reads sent in between are lost, so an in-process daemon must also
        # see its link as connected. A daemon process is not visible from here.
        if not self.readers[portal_id].streaming:
            return False
        edge = self.edges.get(portal_id)
        if isinstance(edge, InProcessEdge):
            return edge.reader_state() == "connected"
        return True

    # Faults and recovery

    async def start_hub(
        self, *, batch_max: int | None = None, flush_ms: int | None = None
    ) -> None:
        """Start the hub; smaller batches and longer flush waits make it slower."""
        assert self.broker is not None
        if self.hub is not None:
            raise ChaosError("the hub is running already")
        options = hub_options(self.settings, batch_max=batch_max, flush_ms=flush_ms)
        hub: Hub
        if self.hub_mode == "process":
            hub = HubProcess(
                site_file=self.site_file,
                database_path=self.hub_database,
                mqtt_url=self.broker.url,
                client_id=self.hub_client_id,
                options=options,
                start_timeout_s=self.settings.start_timeout_s,
                log=self.folder / "hub.log",
            )
        else:
            hub = InProcessHub(
                site_file=self.site_file,
                database_path=self.hub_database,
                mqtt_url=self.broker.url,
                client_id=self.hub_client_id,
                options=options,
                start_timeout_s=self.settings.start_timeout_s,
            )
        self.hub = hub
        await hub.start()

    async def stop_hub(self) -> None:
        """Stop the hub cleanly: the broker keeps its session and queues for it."""
        hub, self.hub = self.hub, None
        if hub is not None:
            await hub.stop()

    async def kill_hub(self) -> None:
        """Kill the hub process with SIGKILL."""
        hub, self.hub = self.hub, None
        if not isinstance(hub, HubProcess):
            raise ChaosError("only a hub process can be killed; use hub_mode='process'")
        await hub.kill()

    async def kill_edge(self, portal_id: str) -> None:
        """Kill one edge daemon process with SIGKILL; `restart_edge` starts it again."""
        edge = self.edges[portal_id]
        if not isinstance(edge, EdgeProcess):
            raise ChaosError(
                "only an edge process can be killed; use edge_mode='process'"
            )
        await edge.kill()

    async def restart_edge(self, portal_id: str) -> None:
        await self.edges[portal_id].start()

    async def restart_broker(self, *, down_s: float, crash: bool = False) -> None:
        """Stop the broker (SIGKILL when `crash`), keep it down, and start it again."""
        broker = self.broker
        assert broker is not None
        if crash:
            if not isinstance(broker, MosquittoBroker):
                raise ChaosError("only the bench's own broker can be killed")
            await asyncio.to_thread(broker.kill)
        else:
            await asyncio.to_thread(broker.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(broker.start)

    async def wait_committed(self, portal_id: str) -> None:
        """Wait until the outbox contains every movement of the rounds so far."""
        assert self.stream is not None
        expected = self.stream.movements_of(portal_id)
        path = self.edges[portal_id].outbox_path
        timeout_s = self.settings.start_timeout_s
        deadline = time.monotonic() + timeout_s
        while (state := await asyncio.to_thread(read_outbox, path)).last_seq < expected:
            if time.monotonic() > deadline:
                raise ChaosError(
                    f"outbox of {portal_id} numbered {state.last_seq} movements, "
                    f"not the {expected} of the rounds so far, within {timeout_s} s"
                )
            await asyncio.sleep(0.02)

    # The end

    async def settle(self) -> None:
        """Wait until the hub has every tag that was not dropped and nothing is pending.

        Returns at the settle timeout without raising: what is missing then is the
        result.
        """
        deadline = time.monotonic() + self.settings.settle_timeout_s
        while time.monotonic() < deadline:
            counts, pending = await self._count()
            if pending == 0 and counts.stored + counts.dropped >= counts.expected:
                return
            await asyncio.sleep(SETTLE_POLL_S)
        logger.warning(
            "bench %s: not settled within %g s",
            self.site_id,
            self.settings.settle_timeout_s,
        )

    async def outcome(
        self,
        scenario: str,
        variant: str,
        *,
        faults: int,
        seed: int,
        expect_dropped: bool = False,
        problems: tuple[str, ...] = (),
        notes: tuple[str, ...] = (),
    ) -> Outcome:
        """Settle, then count and check that every part still runs.

        A failed outcome keeps the bench's folder, with its logs and databases.
        """
        assert self.stream is not None
        await self.settle()
        counts, pending = await self._count()
        edges_running = all(edge.running for edge in self.edges.values())
        hub_running = self.hub is not None and await self.hub.healthy()
        extra = list(notes)
        crossings = len(self.stream.crossings)
        if counts.movements_stored != crossings - counts.dropped:
            # Not a loss by itself: rounds that came closer than the idle gap
            # share movements.
            extra.append(
                f"{counts.movements_stored} movements stored for {crossings} "
                f"crossings, {counts.dropped} of them dropped"
            )
        if counts.lost or counts.duplicated or counts.unexpected:
            extra += self._diagnostics(counts)
        result = Outcome(
            scenario=scenario,
            variant=variant,
            faults=faults,
            tally=counts,
            movements_expected=len(self.stream.crossings),
            pending=pending,
            edges_running=edges_running,
            hub_running=hub_running,
            seed=seed,
            expect_dropped=expect_dropped,
            problems=problems,
            notes=tuple(extra),
        )
        if not result.passed:
            self._keep_folder = True
            result = replace(
                result, notes=(*result.notes, f"files kept in {self.folder}")
            )
        return result

    async def _count(self) -> tuple[Tally, int]:
        assert self.stream is not None
        rows = await asyncio.to_thread(read_hub_tags, self.hub_database)
        outboxes = [
            await asyncio.to_thread(read_outbox, edge.outbox_path)
            for edge in self.edges.values()
        ]
        dropped = sum(state.dropped for state in outboxes)
        pending = sum(state.pending for state in outboxes)
        return tally(self.stream.expected_tags, rows, dropped), pending

    def _diagnostics(self, counts: Tally) -> list[str]:
        notes = []
        if counts.missing:
            notes.append("missing tags include " + ", ".join(counts.missing))
        for portal_id, edge in self.edges.items():
            if not isinstance(edge, InProcessEdge):
                continue
            reader = edge.reader_counters()
            portal = edge.portal_counters()
            sent = self.readers[portal_id].reads_sent
            connections = reader.get("reconnects", 0) + 1
            notes.append(
                f"{portal_id}: the reader sent {sent} reads. The client took "
                f"{reader.get('reads', 0)} and rejected "
                f"{reader.get('rejected_reads', 0)} in {connections} connections. "
                f"The portal logic took {portal.get('reads', 0)}, rejected "
                f"{portal.get('late', 0)} as late and closed "
                f"{portal.get('movements', 0)} movements."
            )
        return notes

    async def close(self, *, keep_folder: bool = False) -> None:
        """Stop every part the bench started, in reverse order."""
        for edge in self.edges.values():
            try:
                await edge.stop()
            except Exception:
                logger.exception(
                    "bench %s: stopping an edge daemon failed", self.site_id
                )
        await self.stop_hub()
        for reader in self.readers.values():
            await reader.stop()
        if self._own_broker and self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if not keep_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def __aenter__(self) -> Bench:
        try:
            await self.start()
        except BaseException:
            await self.close(keep_folder=True)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close(keep_folder=self._keep_folder or exc_info[0] is not None)
