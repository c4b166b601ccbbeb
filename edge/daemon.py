"""The edge daemon of one portal: reader client → portal logic → outbox → MQTT.

`EdgeDaemon.start()` reads as the order the parts depend on each other: the outbox
first (nothing may be read before it can be stored), then the uplink, the reader
and the clock that closes movements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bwms.config import EnvSettings

from bwms.contract import Kind, encode, topic
from bwms.site import Portal, Site
from drivers.llrp.client import ReaderClient, ReaderHealth
from drivers.llrp.profile import load_profile
from drivers.llrp.reads import TagRead
from edge.movement import crossing_payload, movement_payload, new_event_id
from edge.outbox import Outbox
from edge.portal import ClosedMovement, PortalTracker
from edge.settings import MqttSettings, OutboxSettings
from edge.uplink import Uplink

logger = logging.getLogger(__name__)


class ReaderSettings(EnvSettings):
    """Connection policy towards the portal's LLRP reader."""

    model_config = SettingsConfigDict(env_prefix="BWMS_READER_", extra="forbid")

    host: str | None = Field(
        default=None, description="Reader host; the site file's reader host when unset."
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Reader LLRP port; the site file's reader port when unset.",
    )
    keepalive_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        le=3600.0,
        description="Period of the LLRP KEEPALIVE the reader is asked to send. Keep "
        "it below the portals' idle gap: while no tag is read, movements close only "
        "as keepalives show that the reader's clock has moved on.",
    )
    missed_keepalives: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Keepalive periods without any message before the reader is lost.",
    )
    backoff_initial_s: float = Field(
        default=1.0, gt=0.0, le=600.0, description="Wait before the first reconnect; it doubles up to the maximum."
    )
    backoff_max_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Maximum wait between reconnects."
    )
    max_clock_skew_ms: float = Field(
        default=2000.0,
        gt=0.0,
        description="Reader clock offset from the host above which a warning is logged.",
    )
    tick_s: float = Field(
        default=0.25,
        gt=0.0,
        le=10.0,
        description="How often the portal logic's clock advances to close idle movements.",
    )


class EdgeDaemon:
    """Runs one portal: reads tags, builds movements, keeps them until confirmed."""

    def __init__(
        self,
        site: Site,
        portal_id: str,
        *,
        mqtt: MqttSettings,
        outbox: OutboxSettings,
        reader: ReaderSettings,
    ) -> None:
        self.site = site
        self.portal: Portal = site.portal(portal_id)
        self._mqtt_settings = mqtt
        self._outbox_settings = outbox
        self._reader_settings = reader
        self.tracker = PortalTracker(site.site.id, self.portal)
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.reader: ReaderClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Lock()
        self._status_tasks: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = {"movements": 0, "crossings": 0, "errors": 0}

    # Start-up, in dependency order

    async def start(self) -> None:
        """Start every part; returns once they run."""
        logger.info(
            "%s: edge daemon starting for site %s", self.portal.id, self.site.site.id
        )
        await self._open_outbox()
        self._start_uplink()
        self._start_reader()
        self._start_clock()
        logger.info("%s: edge daemon started", self.portal.id)

    async def _open_outbox(self) -> None:
        settings = self._outbox_settings
        self.outbox = await Outbox.open(
            Path(settings.path),
            quota=settings.quota,
            site_id=self.site.site.id,
            portal_id=self.portal.id,
            high_water_fraction=settings.high_water_fraction,
            synchronous=settings.synchronous,
        )

    def _start_uplink(self) -> None:
        assert self.outbox is not None
        self.uplink = Uplink(
            self._mqtt_settings,
            site_id=self.site.site.id,
            portal_id=self.portal.id,
            outbox=self.outbox,
            status=self.status,
        )
        self._spawn(self.uplink.run(), "uplink")

    def _start_reader(self) -> None:
        settings = self._reader_settings
        ref = self.portal.reader
        profile = load_profile(ref.profile)
        ports = [a.port for a in self.portal.antennas]
        for warning in profile.warnings(ports):
            logger.warning(
                "%s: reader profile %s: %s", self.portal.id, ref.profile, warning
            )
        self.reader = ReaderClient(
            ref.id,
            settings.host or ref.host,
            settings.port or ref.port,
            profile,
            on_reads=self._on_reads,
            on_health=self._on_reader_health,
            keepalive_interval_s=settings.keepalive_interval_s,
            missed_keepalives=settings.missed_keepalives,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            max_clock_skew_ms=settings.max_clock_skew_ms,
            antennas=ports,
        )
        self._spawn(self.reader.run(), "reader")

    def _start_clock(self) -> None:
        self._spawn(self._tick_forever(), "clock")

    # Running

    async def run(self) -> None:
        """Start and run until cancelled, then stop cleanly."""
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Close the movements that are complete, then stop every part."""
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.outbox is not None:
            await self.outbox.close()
            self.outbox = None
        logger.info("%s: edge daemon stopped", self.portal.id)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.portal.id}-{name}")
        task.add_done_callback(self._part_ended)
        self._tasks.append(task)

    def _part_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.counters["errors"] += 1
            logger.error(
                "%s: part %s stopped on an error: %r",
                self.portal.id,
                task.get_name(),
                error,
            )

    # Reads in, movements out

    def _on_reads(self, reads: list[TagRead]) -> None:
        """Feed a report's reads to the portal logic; runs on the event loop."""
        for read in reads:
            for crossing in self.tracker.feed(read):
                self.counters["crossings"] += 1
                self._publish_crossing(crossing)

    def _publish_crossing(self, crossing: Any) -> None:
        if self.uplink is None:
            return
        payload = crossing_payload(self.site.site.id, self.portal, crossing)
        self.uplink.publish_now(
            topic(self.site.site.id, self.portal.id, Kind.CROSSING), encode(payload)
        )

    def reader_now_us(self) -> int:
        """Return the reader's clock now, estimated from the host clock and offset."""
        offset = self.reader.clock_offset_us() if self.reader is not None else None
        return int(time.time() * 1_000_000) + (offset or 0)

    def tracker_clock_us(self) -> int:
        """Return the reader time up to which the portal logic may close movements.

        It is the reader clock now, held back while the reader is silent: never more
        than the idle gap past the reader time of its last report or keepalive.
        Reads the reader holds during an outage arrive after the reconnect, and with
        the clock held they still join their crossing instead of counting as late.
        """
        now_us = self.reader_now_us()
        age_s = self.reader.seconds_since_report() if self.reader is not None else None
        if age_s is None:
            return now_us
        idle_us = int(self.portal.tuning.idle_gap_s * 1_000_000)
        return min(now_us, now_us - int(age_s * 1_000_000) + idle_us)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reader_settings.tick_s)
            await self.close_idle(self.tracker_clock_us())

    async def close_idle(self, now_us: int) -> int:
        """Close the movements idle at `now_us` and store them; returns how many."""
        async with self._closing:
            closed = self.tracker.advance(now_us)
            for movement in closed:
                await self._store(movement)
        return len(closed)

    async def _store(self, movement: ClosedMovement) -> None:
        assert self.outbox is not None
        event_id = new_event_id()

        def make_payload(seq: int) -> dict[str, Any]:
            return movement_payload(
                self.site.site.id, self.portal, movement, seq=seq, event_id=event_id
            )

        payload = await self.outbox.add(make_payload)
        if payload is None:
            return
        self.counters["movements"] += 1
        logger.info(
            "%s: movement %s seq %d %s with %d tags",
            self.portal.id,
            event_id,
            payload["seq"],
            payload["direction"],
            len(payload["tags"]),
        )
        if self.uplink is not None:
            self.uplink.notify()

    # Health

    def _on_reader_health(self, health: ReaderHealth) -> None:
        """Publish the portal status again whenever the reader's state changes."""
        if self.uplink is None:
            return
        task = asyncio.get_running_loop().create_task(self.uplink.publish_status())
        # Keep a reference until it ends, as asyncio holds tasks only weakly.
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    def status(self) -> dict[str, Any]:
        """Return the device, outbox and counter part of the status message."""
        devices: dict[str, Any] = {}
        counters = dict(self.counters)
        counters.update({f"portal_{k}": v for k, v in self.tracker.counters.items()})
        if self.reader is not None:
            health = self.reader.health
            devices[health.reader_id] = {
                "kind": "reader",
                "state": health.state,
                "since": _rfc3339(health.since),
                "clock_offset_ms": health.clock_offset_ms,
                "clock_skew_warning": health.clock_skew_warning,
                "detail": health.detail,
            }
            for name in (
                "reports",
                "reads",
                "rejected_reads",
                "malformed_frames",
                "reconnects",
            ):
                counters[f"reader_{name}"] = int(getattr(health, name))
        result: dict[str, Any] = {"devices": devices, "counters": counters}
        if self.outbox is not None:
            result["outbox"] = self.outbox.status()
        return result


def _rfc3339(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


async def run_daemon(
    site: Site,
    portal_id: str,
    *,
    mqtt: MqttSettings | None = None,
    outbox: OutboxSettings | None = None,
    reader: ReaderSettings | None = None,
) -> None:
    """Run the daemon of one portal until cancelled."""
    daemon = EdgeDaemon(
        site,
        portal_id,
        mqtt=mqtt or MqttSettings(),
        outbox=outbox or OutboxSettings(),
        reader=reader or ReaderSettings(),
    )
    await daemon.run()
