"""Benchmark 5: finding a movement by EPC through the HTTP API, with many stored.

Shape: N movements of one SGTIN-96 tag each (N = 1,000,000 in a full run), all at
one dock door, one every second, in a SQLite file migrated by the hub's
migrations. The rows are bulk-loaded with the sqlite3 module, in the text forms the
hub's models store, with synchronous=OFF for the load only. The hub then runs as
deployed (HubRuntime: uvicorn on loopback, WAL, no consumer), and each lookup is
one `GET /api/v1/movements?epc=...` by httpx for a random stored EPC, checked to
return exactly that movement. Client and server share one process and event loop,
so a latency includes the client's own work.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench.hub_support import (
    PORTAL_ID,
    SITE_ID,
    hub_settings,
    sqlite_url,
    write_site_file,
)
from bench.report import Figure, Section, at_most, measured, percentile
from bwms.epc import decode_epc, encode_sgtin96
from hub.app import HubRuntime
from hub.storage.db import Database

GTIN = "08719139005740"
COMPANY_PREFIX_DIGITS = 7
STARTED_AT = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
LOAD_CHUNK = 50_000
WARMUP_REQUESTS = 10
MIN_SAMPLES = 20
TARGET_P95_MS = 50.0
REQUEST_TIMEOUT_S = 30.0
SEED = 5

_MOVEMENT_COLUMNS = (
    "id, event_id, site, portal, portal_kind, direction, started_at, ended_at, seq, "
    "tag_count, weight_kg, clip_id, clip_status, payload, received_at"
)
_TAG_COLUMNS = (
    "id, movement_id, epc, scheme, uri, gtin, sscc, reads, first_seen, last_seen, "
    "antennas, peak_rssi_dbm"
)


class LookupBenchError(Exception):
    """A lookup returned something other than the one movement of its EPC."""


def _sql_time(moment: datetime) -> str:
    # The text form SQLAlchemy's SQLite DATETIME stores, in UTC as UTCDateTime does.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _iso_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Shape:
    """The EPC, URI and times of movement number `index` (from 0)."""

    def __init__(self) -> None:
        first = encode_sgtin96(GTIN, 0, COMPANY_PREFIX_DIGITS)
        # The serial is the low 38 bits of an SGTIN-96, so the EPCs differ there only.
        self.base = int(first, 16)
        self.uri_prefix = str(decode_epc(first)["uri"]).rsplit(".", 1)[0]

    def epc(self, index: int) -> str:
        return f"{self.base | (index + 1):024X}"

    def uri(self, index: int) -> str:
        return f"{self.uri_prefix}.{index + 1}"


def _rows(
    shape: Shape, start: int, stop: int
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    received = _sql_time(STARTED_AT + timedelta(days=30))
    for index in range(start, stop):
        moment = STARTED_AT + timedelta(seconds=index)
        ended = moment + timedelta(seconds=2)
        started_text, ended_text = _sql_time(moment), _sql_time(ended)
        event_id = f"00000000-0000-4000-8000-{index:012x}"
        epc, uri = shape.epc(index), shape.uri(index)
        tag = {
            "epc": epc,
            "uri": uri,
            "reads": 10,
            "first_seen": _iso_time(moment),
            "last_seen": _iso_time(ended),
            "antennas": [1, 2],
            "peak_rssi_dbm": -48.0,
        }
        payload = {
            "schema": "bwms.movement/1",
            "event_id": event_id,
            "site": SITE_ID,
            "portal": PORTAL_ID,
            "portal_kind": "dock_door",
            "direction": "in",
            "started_at": tag["first_seen"],
            "ended_at": tag["last_seen"],
            "seq": index + 1,
            "tags": [tag],
            "weight": None,
            "clip": None,
        }
        movement = (
            index + 1,
            event_id,
            SITE_ID,
            PORTAL_ID,
            "dock_door",
            "in",
            started_text,
            ended_text,
            index + 1,
            1,
            None,
            None,
            None,
            json.dumps(payload),
            received,
        )
        tag_row = (
            index + 1,
            index + 1,
            epc,
            "sgtin-96",
            uri,
            GTIN,
            None,
            10,
            started_text,
            ended_text,
            "[1, 2]",
            -48.0,
        )
        yield movement, tag_row


def bulk_load(path: Path, count: int) -> None:
    """Insert `count` movements of one tag into a migrated SQLite file."""
    shape = Shape()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Only for the load: the benchmark measures lookups, not this load's safety.
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        for start in range(0, count, LOAD_CHUNK):
            rows = list(_rows(shape, start, min(count, start + LOAD_CHUNK)))
            connection.executemany(
                f"INSERT INTO movements ({_MOVEMENT_COLUMNS}) VALUES "
                f"({', '.join('?' * 15)})",
                [movement for movement, _ in rows],
            )
            connection.executemany(
                f"INSERT INTO movement_tags ({_TAG_COLUMNS}) VALUES "
                f"({', '.join('?' * 12)})",
                [tag for _, tag in rows],
            )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def time_lookups(
    runtime: HubRuntime, count: int, requests: int, budget_s: float
) -> list[float]:
    """Look up random stored EPCs and return each latency in ms.

    Stops after `requests` lookups, or once `budget_s` has passed and at least
    MIN_SAMPLES were timed, so that slow lookups cannot make the run unbounded.
    """
    shape = Shape()
    chooser = random.Random(SEED)
    latencies: list[float] = []
    headers = await api_key_headers(runtime)
    async with httpx.AsyncClient(
        base_url=runtime.url, headers=headers, timeout=REQUEST_TIMEOUT_S
    ) as client:
        for _ in range(WARMUP_REQUESTS):
            await _lookup(client, shape, chooser.randrange(count))
        deadline = time.perf_counter() + budget_s
        while len(latencies) < requests:
            if len(latencies) >= MIN_SAMPLES and time.perf_counter() > deadline:
                break
            latencies.append(await _lookup(client, shape, chooser.randrange(count)))
    return latencies


async def api_key_headers(runtime: HubRuntime) -> dict[str, str]:
    """Create a viewer API key on the hub and return the header that sends it.

    An integration reads the API with an API key, so the lookups pay for the same
    authentication on every request.
    """
    try:
        from hub.audit.chain import Actor, AuditTrail
        from hub.auth import service
    except ImportError:
        # NOTE: only a hub without authentication gets here; it needs no header.
        return {}
    app = runtime.app
    trail = AuditTrail(
        key=app.state.auth.audit_key,
        actor=Actor(name="benchmark-setup", role=None, client_ip=None),
        now=datetime.now(UTC),
    )
    async with app.state.db.transaction() as session:
        _, key = await service.create_api_key(session, trail, "benchmark", "viewer")
    return {"Authorization": f"Bearer {key}"}


async def _lookup(client: httpx.AsyncClient, shape: Shape, index: int) -> float:
    epc = shape.epc(index)
    started = time.perf_counter()
    response = await client.get("/api/v1/movements", params={"epc": epc})
    elapsed_ms = (time.perf_counter() - started) * 1000
    _check(response, epc, index)
    return elapsed_ms


def _check(response: httpx.Response, epc: str, index: int) -> None:
    if response.status_code != 200:
        raise LookupBenchError(
            f"GET movements?epc={epc} returned {response.status_code}: {response.text}"
        )
    items = response.json()["items"]
    expected_seq = index + 1
    if len(items) != 1 or items[0]["seq"] != expected_seq:
        found = [item["seq"] for item in items]
        raise LookupBenchError(
            f"GET movements?epc={epc} returned seqs {found}, expected [{expected_seq}]"
        )
    if [tag["epc"] for tag in items[0]["tags"]] != [epc]:
        raise LookupBenchError(f"GET movements?epc={epc} returned other tags")


def _query_plan(path: Path, statement: str, parameters: Sequence[Any]) -> str:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            f"EXPLAIN QUERY PLAN {statement}", tuple(parameters)
        ).fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[-1]) for row in rows)


async def _serve_and_time(
    site_file: Path,
    database_path: Path,
    workdir: Path,
    count: int,
    requests: int,
    budget_s: float,
) -> tuple[list[float], list[tuple[str, Sequence[Any]]]]:
    """Time the lookups and return them with the statements that filtered by EPC."""
    # The broker URL is never used: the hub runs without its MQTT consumer.
    settings = hub_settings(
        site_file,
        sqlite_url(database_path),
        "mqtt://127.0.0.1:1883",
        "bench-lookup",
        workdir / "data",
    )
    runtime = HubRuntime(settings, start_consumer=False)
    statements: list[tuple[str, Sequence[Any]]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any
    ) -> None:
        if "movement_tags.epc" in statement and not statements:
            statements.append((statement, parameters))

    engine = runtime.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    await runtime.start()
    try:
        return await time_lookups(runtime, count, requests, budget_s), statements
    finally:
        await runtime.stop()


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await database.migrate()
    finally:
        await database.close()


def run(count: int, requests: int, budget_s: float) -> Section:
    """Load `count` movements, time up to `requests` lookups, and return the figures."""
    section = Section(5, "Lookup: movement by EPC through the HTTP API")
    section.notes.append(
        f"shape: {count:,} movements x 1 SGTIN-96 tag in SQLite (WAL), one portal; "
        f"lookups of random stored EPCs after {WARMUP_REQUESTS} warm-up, up to "
        f"{requests} or {budget_s:.0f} s"
    )
    with tempfile.TemporaryDirectory(prefix="bwms-bench-lookup-") as name:
        workdir = Path(name)
        site_file = write_site_file(workdir)
        database_path = workdir / "hub.sqlite3"
        asyncio.run(_migrate(sqlite_url(database_path)))
        with measured() as load:
            bulk_load(database_path, count)
        size_mib = database_path.stat().st_size / (1024 * 1024)
        section.notes.append(
            f"bulk load: {load.wall_s:.1f} s ({count / load.wall_s:,.0f} movements/s), "
            f"database file {size_mib:,.0f} MiB"
        )
        latencies, statements = asyncio.run(
            _serve_and_time(
                site_file, database_path, workdir, count, requests, budget_s
            )
        )
        section.notes.append(f"lookups timed: {len(latencies)}")
        for statement, parameters in statements:
            plan = _query_plan(database_path, statement, parameters)
            section.notes.append(f"query plan of the API's EPC filter: {plan}")
    section.add(Figure("p50", percentile(latencies, 0.50), "ms", digits=2))
    section.add(
        at_most("p95", percentile(latencies, 0.95), "ms", TARGET_P95_MS, digits=2)
    )
    section.add(Figure("max", max(latencies), "ms", digits=2))
    return section
