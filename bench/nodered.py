"""Benchmark 3: a Node-RED flow doing the hub's ingest, drained from the same backlog.

The flows are in bench/nodered: MQTT in (QoS 1, its own persistent session) into
the hub's own tables, in a fresh database migrated by the hub's migrations.

- SQLite (node-red-node-sqlite, sqlite3 compiled from source): per movement, one
  prepared statement inserts the movement row and a second its tag rows through
  json_each(), each in its own transaction. WAL and synchronous=FULL, as for the
  hub: journal_mode=WAL is stored in the database file, and both builds of SQLite
  default to FULL.
- PostgreSQL (the pure-JavaScript pg client, its default pool of 10): per movement,
  one statement inserts the movement row and its tags in one transaction.

Both skip a duplicate event_id with ON CONFLICT DO NOTHING, as the hub does. Unlike
the hub, the flows check no schema, decode no EPC, send no confirmation and keep
no dead letters. Node-RED runs headless (no editor, no HTTP port, no telemetry).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from bench.hub_support import (
    SITE_ID,
    BenchSetupError,
    fresh_postgres,
    plain_postgres_url,
    sqlite_url,
)
from bench.mqtt_backlog import BacklogBroker, BrokerBenchError, Drain
from bench.report import REPO
from bwms.contract import Kind, subscription
from hub.storage.db import Database, StorageError

if TYPE_CHECKING:
    from bench.hub_ingest import IngestResults

NODERED_DIR = Path(__file__).resolve().parent / "nodered"
RED_JS = NODERED_DIR / "node_modules" / "node-red" / "red.js"
INSTALL_COMMAND = "bench/nodered/install"
CLIENT_IDS = {"SQLite": "bench-nodered-sqlite", "PostgreSQL": "bench-nodered-postgres"}
FLOW_FILES = {"SQLite": "flows-sqlite.json", "PostgreSQL": "flows-postgres.json"}
POLL_S = 0.02
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 20


def missing_install() -> str | None:
    """Say what is missing to run Node-RED here, or None when it can run."""
    if shutil.which("node") is None:
        return "node is not on PATH; install Node.js 18.5 or later (Node-RED 4.1)"
    if not RED_JS.exists():
        where = NODERED_DIR.relative_to(REPO)
        return (
            f"Node-RED is not installed in {where}: run {INSTALL_COMMAND} (it "
            "compiles sqlite3, about 2 minutes)"
        )
    return None


def versions() -> str:
    """Describe the Node.js, Node-RED, sqlite3 and pg versions in use."""
    node = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    found = []
    for module in ("node-red", "node-red-node-sqlite", "sqlite3", "pg"):
        package = NODERED_DIR / "node_modules" / module / "package.json"
        try:
            found.append(f"{module} {json.loads(package.read_text())['version']}")
        except (OSError, ValueError, KeyError):
            found.append(f"{module} (missing)")
    return f"Node.js {node}, " + ", ".join(found)


def run_peers(
    results: IngestResults,
    broker: BacklogBroker,
    workdir: Path,
    events: int,
    timeout_s: float,
) -> None:
    """Drain the backlog with the SQLite flow, then the PostgreSQL one."""
    problem = missing_install()
    if problem is not None:
        results.nodered_problems.append(problem)
        return
    results.nodered_notes += [
        versions(),
        "SQLite flow: two prepared statements per movement, each its own "
        "transaction; PostgreSQL flow: one statement per movement, pool of 10",
        "both ON CONFLICT DO NOTHING on event_id; no schema check, no GS1 decoding, "
        "no confirmations",
        "rate: as for the hub, from the first stored movement to the last (database "
        f"count polled every {POLL_S * 1000:.0f} ms)",
    ]
    try:
        results.nodered["SQLite"] = asyncio.run(
            _into_sqlite(broker, workdir, events, timeout_s)
        ).rate
    except (BrokerBenchError, StorageError, sqlite3.Error) as exc:
        results.nodered_problems.append(f"Node-RED into SQLite: {exc}")
    try:
        results.nodered["PostgreSQL"] = asyncio.run(
            _into_postgres(broker, workdir, events, timeout_s)
        ).rate
    except (
        BenchSetupError,
        BrokerBenchError,
        StorageError,
        asyncpg.PostgresError,
    ) as exc:
        results.nodered_problems.append(f"Node-RED into PostgreSQL: {exc}")


async def _migrated(url: str) -> None:
    database = Database(url)
    try:
        await database.migrate()
    finally:
        await database.close()


async def _into_sqlite(
    broker: BacklogBroker, workdir: Path, events: int, timeout_s: float
) -> Drain:
    path = workdir / "nodered.sqlite3"
    await _migrated(sqlite_url(path))
    connection = sqlite3.connect(path, check_same_thread=False)
    try:

        async def count() -> int:
            row = await asyncio.to_thread(
                connection.execute("SELECT count(*) FROM movements").fetchone
            )
            return int(row[0]) if row else 0

        environment = {"BENCH_SQLITE_PATH": str(path)}
        return await _drain(
            "SQLite", environment, broker, workdir, events, timeout_s, count
        )
    finally:
        connection.close()


async def _into_postgres(
    broker: BacklogBroker, workdir: Path, events: int, timeout_s: float
) -> Drain:
    async with fresh_postgres() as url:
        await _migrated(url)
        plain_url = plain_postgres_url(url)
        connection = await asyncpg.connect(plain_url)
        try:

            async def count() -> int:
                return int(await connection.fetchval("SELECT count(*) FROM movements"))

            environment = {"BENCH_PG_URL": plain_url}
            return await _drain(
                "PostgreSQL", environment, broker, workdir, events, timeout_s, count
            )
        finally:
            await connection.close()


async def _drain(
    database: str,
    environment: dict[str, str],
    broker: BacklogBroker,
    workdir: Path,
    expected: int,
    timeout_s: float,
    count: Callable[[], Awaitable[int]],
) -> Drain:
    user_dir = workdir / f"nodered-{database.lower()}"
    user_dir.mkdir()
    flows = user_dir / "flows.json"
    shutil.copyfile(NODERED_DIR / FLOW_FILES[database], flows)
    env = {
        **os.environ,
        **environment,
        "BENCH_MQTT_PORT": str(broker.port),
        "BENCH_CLIENT_ID": CLIENT_IDS[database],
        "BENCH_TOPIC": subscription(Kind.MOVEMENT, site=SITE_ID),
    }
    log_path = user_dir / "node-red.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(RED_JS),
            "--settings",
            str(NODERED_DIR / "settings.js"),
            "--userDir",
            str(user_dir),
            "--no-telemetry",
            str(flows),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=user_dir,
        )
        try:
            return await _wait_stored(process, log_path, expected, timeout_s, count)
        finally:
            await _stop(process)


async def _wait_stored(
    process: asyncio.subprocess.Process,
    log_path: Path,
    expected: int,
    timeout_s: float,
    count: Callable[[], Awaitable[int]],
) -> Drain:
    started_s = time.perf_counter()
    first: tuple[float, int] | None = None
    while True:
        stored = await count()
        now = time.perf_counter()
        if first is None and stored > 0:
            first = (now, stored)
        if stored >= expected and first is not None:
            return Drain(stored, started_s, first[0], first[1], now)
        if process.returncode is not None:
            raise BrokerBenchError(
                f"Node-RED exited with code {process.returncode} after storing "
                f"{stored} of {expected}; its log ends:\n{_tail(log_path)}"
            )
        if now - started_s > timeout_s:
            raise BrokerBenchError(
                f"Node-RED stored {stored} of {expected} movements within "
                f"{timeout_s:.0f} s; its log ends:\n{_tail(log_path)}"
            )
        await asyncio.sleep(POLL_S)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:])
