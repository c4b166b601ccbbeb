"""The running parts of a scenario: reader simulators, edge daemons and the hub.

Edge daemons and the hub run either in the harness's own event loop, which is quick
to start and lets a scenario look inside them, or as `bwms edge run` and
`bwms hub run` processes, which a scenario can kill with SIGKILL. Both forms are
started with the same settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from bwms.chaos.broker import free_port
from bwms.chaos.errors import ChaosError
from bwms.chaos.settings import ChaosSettings
from bwms.site import Site
from drivers.llrp.simulator import ReaderSimulator

logger = logging.getLogger(__name__)

PROCESS_STOP_TIMEOUT_S = 10.0
HEALTH_POLL_S = 0.1
HEALTH_TIMEOUT_S = 2.0
# Python with the project installed runs the command line as `bwms` does.
_BWMS = [sys.executable, "-c", "from bwms.cli import app; app()"]
# Variables of this kind in the harness's own environment would leak into its child
# processes and override what the scenario sets.
_SETTINGS_PREFIXES = ("BWMS_MQTT_", "BWMS_OUTBOX_", "BWMS_READER_", "BWMS_HUB_")


class PortalReader(ReaderSimulator):
    """A reader simulator that also reports whether its current client inventories."""

    def __init__(self) -> None:
        super().__init__()
        self._inventory_connection = 0

    def on_inventory_running(self) -> None:
        # The client connection calls this once one of its ROSpecs runs. From then
        # on, injected reads go out at once instead of waiting in the buffer.
        self._inventory_connection = self.connections
        super().on_inventory_running()

    @property
    def streaming(self) -> bool:
        """Whether a client is connected, its ROSpec runs and the reader sends."""
        return (
            self.clients_connected > 0
            and not self.silent
            and self._inventory_connection == self.connections
        )


def edge_options(
    settings: ChaosSettings, *, quota: int | None = None
) -> dict[str, dict[str, Any]]:
    """Return the edge daemon's settings by group: mqtt, outbox and reader."""
    outbox: dict[str, Any] = {}
    if quota is not None:
        outbox["quota"] = quota
    return {
        "mqtt": {
            "ack_timeout_s": settings.ack_timeout_s,
            "resend_backoff_max_s": settings.resend_backoff_max_s,
            "reconnect_min_s": min(0.2, settings.reconnect_max_s),
            "reconnect_max_s": settings.reconnect_max_s,
            "inflight_window": settings.inflight_window,
        },
        "outbox": outbox,
        "reader": {
            "keepalive_interval_s": settings.reader_keepalive_s,
            "missed_keepalives": settings.reader_missed_keepalives,
            "backoff_initial_s": 0.1,
            "backoff_max_s": 0.5,
            "tick_s": 0.05,
        },
    }


def child_env(variables: dict[str, Any]) -> dict[str, str]:
    """Return the environment of a child process: ours without settings, plus these."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SETTINGS_PREFIXES)
    }
    env.update({name: str(value) for name, value in variables.items()})
    return env


class Edge(Protocol):
    """One portal's edge daemon, in the harness's loop or as a process."""

    portal_id: str
    outbox_path: Path

    @property
    def running(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessEdge:
    """An `EdgeDaemon` in the harness's event loop."""

    def __init__(
        self,
        site: Site,
        portal_id: str,
        *,
        mqtt_url: str,
        outbox_path: Path,
        reader_port: int,
        options: dict[str, dict[str, Any]],
    ) -> None:
        self.site = site
        self.portal_id = portal_id
        self.outbox_path = outbox_path
        self._mqtt_url = mqtt_url
        self._reader_port = reader_port
        self._options = options
        self.daemon: Any = None

    @property
    def running(self) -> bool:
        """Whether the daemon runs and none of its parts stopped on an error."""
        return self.daemon is not None and self.daemon.counters["errors"] == 0

    async def start(self) -> None:
        from edge.daemon import EdgeDaemon, ReaderSettings
        from edge.settings import MqttSettings, OutboxSettings

        options = self._options
        self.daemon = EdgeDaemon(
            self.site,
            self.portal_id,
            mqtt=MqttSettings(url=self._mqtt_url, **options["mqtt"]),
            outbox=OutboxSettings(path=self.outbox_path, **options["outbox"]),
            reader=ReaderSettings(
                host="127.0.0.1", port=self._reader_port, **options["reader"]
            ),
        )
        await self.daemon.start()

    async def stop(self) -> None:
        daemon, self.daemon = self.daemon, None
        if daemon is not None:
            await daemon.stop()

    def reader_state(self) -> str | None:
        """Return the daemon's view of its reader link, None when not running."""
        if self.daemon is None or self.daemon.reader is None:
            return None
        state: str = self.daemon.reader.health.state
        return state

    def portal_counters(self) -> dict[str, int]:
        """Return the portal logic's counters (reads rejected as late, and so on)."""
        if self.daemon is None:
            return {}
        return dict(self.daemon.tracker.counters)

    def reader_counters(self) -> dict[str, int]:
        """Return the reader client's counters: reads, reconnects, malformed frames."""
        if self.daemon is None or self.daemon.reader is None:
            return {}
        health = self.daemon.reader.health
        return {
            "reads": health.reads,
            "rejected_reads": health.rejected_reads,
            "malformed_frames": health.malformed_frames,
            "reconnects": health.reconnects,
        }


class _Process:
    """A child process of the harness, logging to a file of its own."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        logger.info("%s: started as process %d", self.name, self.process.pid)

    async def terminate(self) -> int | None:
        """Stop with SIGTERM, then SIGKILL if it has not ended in time."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, PROCESS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s: process %d ignored SIGTERM for %g s; killing it",
                self.name,
                process.pid,
                PROCESS_STOP_TIMEOUT_S,
            )
            process.kill()
            await asyncio.to_thread(process.wait, PROCESS_STOP_TIMEOUT_S)
        return process.returncode

    async def kill(self) -> None:
        """Stop with SIGKILL: no clean-up runs in the process."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        await asyncio.to_thread(process.wait, PROCESS_STOP_TIMEOUT_S)
        logger.info("%s: process %d killed with SIGKILL", self.name, process.pid)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return f"{self.name}: no log"
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"{self.name} log ({self.log}):\n" + "\n".join(text)


class EdgeProcess:
    """`bwms edge run` of one portal as a child process."""

    def __init__(
        self,
        site_file: Path,
        portal_id: str,
        *,
        mqtt_url: str,
        outbox_path: Path,
        reader_port: int,
        options: dict[str, dict[str, Any]],
        log: Path,
    ) -> None:
        self.portal_id = portal_id
        self.outbox_path = outbox_path
        variables = {
            f"BWMS_{group.upper()}_{name.upper()}": value
            for group, values in options.items()
            for name, value in values.items()
        }
        args = [
            *_BWMS,
            "edge",
            "run",
            "--config",
            str(site_file),
            "--portal",
            portal_id,
            "--mqtt-url",
            mqtt_url,
            "--outbox",
            str(outbox_path),
            "--reader-host",
            "127.0.0.1",
            "--reader-port",
            str(reader_port),
        ]
        self._process = _Process(f"edge {portal_id}", args, child_env(variables), log)

    @property
    def running(self) -> bool:
        return self._process.running

    async def start(self) -> None:
        self._process.spawn()

    async def stop(self) -> None:
        code = await self._process.terminate()
        if code not in (None, 0):
            logger.warning("edge %s: exited with status %s", self.portal_id, code)

    async def kill(self) -> None:
        await self._process.kill()

    def log_tail(self) -> str:
        return self._process.log_tail()


class Hub(Protocol):
    """The hub, in the harness's loop or as a process."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def healthy(self) -> bool: ...


def hub_options(
    settings: ChaosSettings, *, batch_max: int | None, flush_ms: int | None
) -> dict[str, Any]:
    """Return the hub settings a scenario changes from their defaults."""
    options: dict[str, Any] = {
        # The hub's reconnect limit is in whole seconds, at least 1.
        "mqtt_reconnect_max_s": max(1, round(settings.reconnect_max_s)),
    }
    if batch_max is not None:
        options["ack_batch_max"] = batch_max
    if flush_ms is not None:
        options["ack_flush_ms"] = flush_ms
    return options


async def _health(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """Return the hub's health document, or None when the hub does not respond."""
    try:
        response = await client.get(f"{url}/api/v1/health")
    except httpx.HTTPError:
        return None
    # The hub responds with 503 and the same document while degraded.
    if response.status_code not in (200, 503):
        return None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return None
    return body


async def _responds(url: str) -> bool:
    async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
        return await _health(client, url) is not None


async def _wait_subscribed(url: str, timeout_s: float, part: str) -> None:
    # One client for the whole wait: building one costs the event loop an SSL
    # context, which delays the edge daemons and reader simulators sharing it.
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            body = await _health(client, url)
            if body is not None and body.get("mqtt", {}).get("subscribed"):
                return
            await asyncio.sleep(HEALTH_POLL_S)
    raise ChaosError(f"{part} did not subscribe to the broker within {timeout_s} s")


class InProcessHub:
    """A `HubRuntime` in the harness's event loop; a new one for every start."""

    def __init__(
        self,
        *,
        site_file: Path,
        database_path: Path,
        mqtt_url: str,
        client_id: str,
        options: dict[str, Any],
        start_timeout_s: float,
    ) -> None:
        self._site_file = site_file
        self._database_path = database_path
        self._mqtt_url = mqtt_url
        self._client_id = client_id
        self._options = options
        self._start_timeout_s = start_timeout_s
        self.runtime: Any = None

    async def start(self) -> None:
        from hub.app import HubRuntime
        from hub.settings import HubSettings

        settings = HubSettings(
            site_file=self._site_file,
            database_url=f"sqlite+aiosqlite:///{self._database_path}",
            data_dir=self._database_path.parent,
            mqtt_url=self._mqtt_url,
            mqtt_client_id=self._client_id,
            api_port=0,
            **self._options,
        )
        self.runtime = HubRuntime(settings)
        await self.runtime.start()
        await _wait_subscribed(self.runtime.url, self._start_timeout_s, "hub")

    async def stop(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await runtime.stop()

    async def healthy(self) -> bool:
        if self.runtime is None or self.runtime.port is None:
            return False
        return await _responds(self.runtime.url)


class HubProcess:
    """`bwms hub run` as a child process."""

    def __init__(
        self,
        *,
        site_file: Path,
        database_path: Path,
        mqtt_url: str,
        client_id: str,
        options: dict[str, Any],
        start_timeout_s: float,
        log: Path,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._start_timeout_s = start_timeout_s
        variables = {
            f"BWMS_HUB_{name.upper()}": value for name, value in options.items()
        }
        variables["BWMS_HUB_MQTT_CLIENT_ID"] = client_id
        args = [
            *_BWMS,
            "hub",
            "run",
            "--config",
            str(site_file),
            "--database-url",
            f"sqlite+aiosqlite:///{database_path}",
            "--mqtt-url",
            mqtt_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self._process = _Process("hub", args, child_env(variables), log)

    async def start(self) -> None:
        self._process.spawn()
        try:
            await _wait_subscribed(self.url, self._start_timeout_s, "hub process")
        except ChaosError as exc:
            raise ChaosError(f"{exc}\n{self._process.log_tail()}") from exc

    async def stop(self) -> None:
        code = await self._process.terminate()
        if code not in (None, 0):
            logger.warning("hub: exited with status %s", code)

    async def kill(self) -> None:
        await self._process.kill()

    async def healthy(self) -> bool:
        if not self._process.running:
            return False
        return await _responds(self.url)
