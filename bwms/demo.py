"""`bwms demo`: a truck through dock door 3, from LLRP reads to a reconciliation.

It starts, in this order: a local broker (unless a URL is given), the hub on SQLite,
the manifest the truck should match, an LLRP reader simulator replaying the scenario,
and the edge daemon of door 3. Once every movement is stored, it closes the manifest
and prints the reconciliation, then serves the hub's API until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from bwms import scenario
from bwms.broker import (
    BrokerError,
    LocalBroker,
    edge_username,
    hub_username,
    new_password,
    site_accounts,
    start_local_broker,
)
from bwms.site import configs_dir, load_site

logger = logging.getLogger(__name__)

SITE_FILE = "sites/demo.toml"
MANIFEST_ID = "IN-DEMO-0001"
ADMIN_USERNAME = "demo-admin"
SETTLE_TIMEOUT_S = 60.0
# The simulator replays the scenario this many times faster than real time.
REPLAY_SPEED = 2.0


class DemoError(RuntimeError):
    """The demo could not run to its end."""


@dataclass
class DemoResult:
    """Result of a demo run, handed over while its services still run."""

    reconciliation: dict[str, Any]
    movements: list[dict[str, Any]]
    staged_tags: int
    hub: Any
    folder: Path


def run_demo(
    *,
    once: bool,
    mqtt_url: str | None,
    data_dir: str | None,
    port: int,
    broker: str = "auto",
) -> int:
    """Run the demo; returns the process exit status."""
    console = Console(width=None if sys.stdout.isatty() else 110)
    # The demo's own lines tell the story; library chatter stays out of it.
    for name in (
        "sllurp", "httpx", "uvicorn.access", "uvicorn.error", "alembic", "amqtt",
        "transitions",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    folder = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="bwms-demo-"))
    try:
        return asyncio.run(_demo(console, once, mqtt_url, folder, port, broker))
    except KeyboardInterrupt:
        return 0
    except (DemoError, BrokerError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    except TimeoutError as exc:
        console.print(f"[red]demo failed, a step timed out:[/red] {exc}")
        return 1


async def _demo(
    console: Console, once: bool, mqtt_url: str | None, folder: Path, port: int, broker: str
) -> int:
    async with running_demo(
        console, mqtt_url=mqtt_url, folder=folder, port=port, broker=broker
    ) as result:
        _print_movements(console, result.movements)
        _print_reconciliation(console, result.reconciliation)
        console.print(
            f"Staged tags seen by the door without crossing it: {result.staged_tags} "
            "(no movement, not counted)"
        )
        if not once:
            console.print(
                f"\nServing the hub API on {result.hub.url}/docs; press Ctrl-C to stop."
            )
            await result.hub.wait_closed()
    return 0


@asynccontextmanager
async def running_demo(
    console: Console,
    *,
    folder: Path,
    mqtt_url: str | None = None,
    database_url: str | None = None,
    port: int = 8000,
    broker: str = "auto",
) -> AsyncIterator[DemoResult]:
    """Run the scenario end to end and yield its result while the services run.

    Without `mqtt_url` a local broker with password login is started; with one, the
    clients connect to it without credentials. `database_url` defaults to SQLite in
    `folder`.
    """
    from drivers.llrp.simulator import ReaderSimulator
    from edge.daemon import EdgeDaemon, ReaderSettings
    from edge.settings import MqttSettings, OutboxSettings
    from hub.app import HubError, HubRuntime
    from hub.settings import HubSettings

    site_path = configs_dir() / SITE_FILE
    site = load_site(site_path)
    portal = site.portal(scenario.PORTAL_ID)
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"Demo data in {folder}")

    hub_user = hub_username(site.site.id)
    edge_user = edge_username(site.site.id, portal.id)
    users = {hub_user: new_password(), edge_user: new_password()}
    accounts = [a for a in site_accounts(site) if a.username in users]
    local: LocalBroker | None = None
    if mqtt_url is None:
        local = await start_local_broker(
            folder / "broker", users, prefer=broker, acl=accounts
        )
        mqtt_url = local.url
        console.print(
            f"Broker: {local.backend} on {local.url}, password login only, "
            "each account limited to its own topics"
        )
    login = local is not None
    database_url = database_url or f"sqlite+aiosqlite:///{folder / 'hub.sqlite3'}"

    hub = HubRuntime(
        HubSettings(
            site_file=site_path,
            database_url=database_url,
            data_dir=folder,
            mqtt_url=mqtt_url,
            mqtt_username=hub_user if login else None,
            mqtt_password=SecretStr(users[hub_user]) if login else None,
            mqtt_client_id=f"bwms-hub-{site.site.id}-demo-{uuid.uuid4().hex[:8]}",
            api_port=port,
            # Two-factor sign-in is off so that the printed password is enough.
            auth_totp_roles=[],
        )
    )
    simulator = ReaderSimulator(scenario.reads(), speed=REPLAY_SPEED, impinj=True)
    daemon: EdgeDaemon | None = None
    try:
        try:
            await hub.start()
        except HubError as exc:
            raise DemoError(
                f"{exc}: the port is in use; stop what uses it or pass --port "
                "with another port (0 picks a free one)"
            ) from exc
        await hub.wait_ready()
        console.print(f"Hub: API on {hub.url}/docs")
        password = await _create_admin(hub)
        console.print(
            f"Sign in as {ADMIN_USERNAME} with password {password} "
            "(role admin; two-factor sign-in is OFF in this demo)"
        )
        async with httpx.AsyncClient(base_url=hub.url + "/api/v1", timeout=10) as api:
            api.headers.update(await _sign_in(api, password))
            await _create_manifest(api)
            await simulator.start()
            daemon = EdgeDaemon(
                site,
                portal.id,
                mqtt=MqttSettings(
                    url=mqtt_url,
                    username=edge_user if login else None,
                    password=SecretStr(users[edge_user]) if login else None,
                    ack_timeout_s=2.0,
                ),
                outbox=OutboxSettings(path=folder / f"outbox-{portal.id}.sqlite3"),
                reader=ReaderSettings(host=simulator.host, port=simulator.port),
            )
            await daemon.start()
            console.print(
                f"Edge: {portal.id} reads the simulated reader on "
                f"{simulator.host}:{simulator.port}; the truck is unloading."
            )
            await simulator.wait_replayed()
            await _settle(daemon, hub)
            movements = await _movements(api)
            reconciliation = await _close_and_reconcile(api)
        yield DemoResult(
            reconciliation=reconciliation,
            movements=movements,
            staged_tags=daemon.tracker.counters.get("staged_tags", 0),
            hub=hub,
            folder=folder,
        )
    finally:
        if daemon is not None:
            await daemon.stop()
        await simulator.stop()
        await hub.stop()
        if local is not None:
            await local.stop()


async def _create_admin(hub: Any) -> str:
    """Create the demo's admin, as `bwms user add --role admin` would; return its password."""
    from hub.auth.accounts import add_user, operator
    from hub.auth.service import UserExists

    password = secrets.token_urlsafe(12)
    state = hub.app.state
    try:
        await add_user(
            state.db,
            state.auth.audit_key,
            operator("bwms-demo"),
            ADMIN_USERNAME,
            password,
            "admin",
        )
    except UserExists as exc:
        raise DemoError(
            f"user {ADMIN_USERNAME} exists already in this data folder; "
            "run the demo with a new --data-dir"
        ) from exc
    return password


async def _sign_in(api: httpx.AsyncClient, password: str) -> dict[str, str]:
    response = await api.post(
        "/auth/token",
        data={"username": ADMIN_USERNAME, "password": password, "grant_type": "password"},
    )
    if response.status_code != 200:
        raise DemoError(f"signing in failed: {response.status_code} {response.text}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _create_manifest(api: httpx.AsyncClient) -> None:
    response = await api.post("/manifests", json=scenario.manifest(MANIFEST_ID))
    if response.status_code == 409:
        raise DemoError(
            f"manifest {MANIFEST_ID} exists already in this data folder; "
            "run the demo with a new --data-dir"
        )
    if response.status_code != 201:
        raise DemoError(f"creating the manifest failed: {response.status_code} {response.text}")


async def _settle(daemon: Any, hub: Any) -> None:
    """Wait until the last movement has closed, been stored and been confirmed."""
    idle_gap_s = daemon.portal.tuning.idle_gap_s
    replay_done = time.monotonic()
    deadline = replay_done + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if time.monotonic() - replay_done < idle_gap_s + 1.0:
            continue
        if daemon.outbox is None or await daemon.outbox.pending_count() > 0:
            continue
        movements_made = daemon.counters["movements"]
        try:
            await hub.wait_stored(movements_made, timeout_s=0.5)
        except TimeoutError:
            continue
        return
    raise DemoError(f"movements were not all stored within {SETTLE_TIMEOUT_S} s")


async def _movements(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/movements", params={"portal": scenario.PORTAL_ID})
    if response.status_code != 200:
        raise DemoError(f"listing movements failed: {response.status_code} {response.text}")
    body = response.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


def _print_movements(console: Console, items: list[dict[str, Any]]) -> None:
    console.print(f"\nMovements stored by the hub at {scenario.PORTAL_ID}: {len(items)}")
    for item in sorted(items, key=lambda m: m["seq"]):
        console.print(
            f"  seq {item['seq']} {item['direction']:<7} {len(item['tags']):>3} tags, "
            f"{item['started_at'][11:23]} to {item['ended_at'][11:23]} UTC, "
            f"event {item['event_id']}"
        )


async def _close_and_reconcile(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.post(f"/manifests/{MANIFEST_ID}/close")
    if response.status_code >= 400:
        raise DemoError(f"closing the manifest failed: {response.status_code} {response.text}")
    response = await api.get(f"/manifests/{MANIFEST_ID}/reconciliation")
    if response.status_code != 200:
        raise DemoError(f"reconciliation failed: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


def _print_reconciliation(console: Console, result: dict[str, Any]) -> None:
    console.print(
        f"\nManifest {MANIFEST_ID}, declaration {scenario.DECLARATION_NO}: "
        f"[bold]{result['status']}[/bold]"
    )
    table = Table("line", "identity")
    table.columns[1].no_wrap = True
    for title in ("description", "expected", "received", "status"):
        table.add_column(title, max_width=32 if title == "description" else None)
    for line in result["lines"]:
        table.add_row(
            str(line["line_no"]),
            _identity(line),
            line.get("description") or "",
            str(line["expected"]),
            str(line["received"]),
            line["status"],
        )
    console.print(table)
    for line in result["lines"]:
        short = line["expected"] - line["received"] - line.get("confirmed_manually", 0)
        if short > 0:
            epcs = ", ".join(line.get("missing_epcs") or [])
            console.print(
                f"Missing: line {line['line_no']}, {short} {line.get('unit') or 'unit'} "
                f"of {_identity(line)}{f' ({epcs})' if epcs else ''}"
            )
    unexpected = result.get("unexpected") or []
    console.print(f"Unexpected tags: {len(unexpected)}")
    for tag in unexpected:
        console.print(f"  {tag['epc']}  {tag.get('uri') or 'not a GS1 EPC'}")
    undirected = result.get("direction_unknown") or []
    if undirected:
        console.print(
            f"Read at the door with direction unknown, not counted: {len(undirected)}"
        )
    events = result.get("event_ids") or result.get("movements") or []
    console.print(f"Contributing movements: {', '.join(map(str, events))}")


def _identity(line: dict[str, Any]) -> str:
    if line.get("sscc"):
        return f"SSCC {line['sscc']}"
    if line.get("gtin"):
        return f"GTIN {line['gtin']}"
    return "listed EPCs"
