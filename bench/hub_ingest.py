"""Benchmark 2: the hub draining a preloaded MQTT backlog into SQLite and PostgreSQL.

Every consumer drains the same backlog of movement events of 100 tags each from its
own persistent session on a private Mosquitto (see bench.mqtt_backlog):

- a bare paho subscriber that only counts messages: the broker's ceiling;
- the hub's MovementConsumer into a fresh SQLite file and into a fresh PostgreSQL
  database. It runs with its deployed defaults: batches of up to 500 with a 20 ms
  flush, a schema check by jsonschema-rs, GS1 decoding of every EPC, one
  transaction and one bwms.ack/1 confirmation per batch;
- a bulk insert of the very rows the hub stores (SQLAlchemy core executemany, one
  transaction per 500 movements, through the hub's own engine and so the same SQLite
  pragmas and durability): the database's ceiling.

A drain's rate counts the events stored after the first one was seen, over the time
from then to the last, so connection set-up and the first batch are left out alike
for every consumer. The Node-RED peer (benchmark 3) drains the same backlog.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from bench import nodered
from bench.hub_support import (
    BenchSetupError,
    fresh_postgres,
    hub_settings,
    sqlite_url,
    write_site_file,
)
from bench.mqtt_backlog import (
    EVENT_TAGS,
    BacklogBroker,
    BrokerBenchError,
    Drain,
    drain_bare,
    movement_backlog,
)
from bench.report import Figure, Section, at_least, measured, process_cpu_s
from bwms.site import load_site
from hub.ingest import MovementConsumer
from hub.movements import MOVEMENT_TAGS, MOVEMENTS, NewMovement, prepare_movement
from hub.settings import HubSettings
from hub.storage.db import Database, StorageError

logger = logging.getLogger(__name__)

# Movements per transaction of the bulk insert: the hub's default ack_batch_max.
BULK_BATCH = 500
POLL_S = 0.005
TARGET_BARE_RATIO = 0.6
TARGET_NODERED_RATIO = 1.0
BARE_CLIENT_ID = "bench-bare"
HUB_CLIENT_IDS = {"SQLite": "bench-hub-sqlite", "PostgreSQL": "bench-hub-postgres"}


@dataclass
class IngestResults:
    """Rates in events per second, by consumer and database."""

    bare: float | None = None
    hub: dict[str, float] = field(default_factory=dict)
    hub_cpu_s: dict[str, float] = field(default_factory=dict)
    bulk: dict[str, float] = field(default_factory=dict)
    nodered: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    nodered_problems: list[str] = field(default_factory=list)
    nodered_notes: list[str] = field(default_factory=list)


def drain_timeout_s(events: int) -> float:
    """Time a consumer is given to drain `events`: generous, but bounded."""
    return 60.0 + events / 20.0


async def drain_hub(settings: HubSettings, expected: int, timeout_s: float) -> Drain:
    """Start a MovementConsumer on a migrated database and wait until it stored all."""
    database = Database(settings.resolved_database_url())
    try:
        await database.migrate()
        consumer = MovementConsumer(settings, load_site(settings.site_file), database)
        cpu0 = process_cpu_s()
        started_s = time.perf_counter()
        await consumer.start()
        try:
            drain = await _wait_stored(consumer, expected, started_s, timeout_s)
        finally:
            await consumer.stop()
        drain.cpu_s = process_cpu_s() - cpu0
        counters = consumer.counters
        if counters.stored != expected:
            raise BrokerBenchError(
                f"hub stored {counters.stored} of {expected} movements "
                f"(rejected {dict(counters.rejected)}, duplicates {counters.duplicates})"
            )
        return drain
    finally:
        await database.close()


async def _wait_stored(
    consumer: MovementConsumer, expected: int, started_s: float, timeout_s: float
) -> Drain:
    first: tuple[float, int] | None = None
    deadline = started_s + timeout_s
    counters = consumer.counters
    while True:
        done = counters.stored + counters.duplicates + sum(counters.rejected.values())
        now = time.perf_counter()
        if first is None and counters.stored > 0:
            first = (now, counters.stored)
        if done >= expected:
            assert first is not None or expected == 0
            first_s, first_count = first if first is not None else (now, 0)
            return Drain(counters.stored, started_s, first_s, first_count, now)
        if now > deadline:
            raise BrokerBenchError(
                f"hub stored {counters.stored} of {expected} movements within "
                f"{timeout_s:.0f} s"
            )
        await asyncio.sleep(POLL_S)


async def bulk_insert(database_url: str, movements: list[NewMovement]) -> float:
    """Insert the rows the hub would store, one transaction per batch; return events/s."""
    database = Database(database_url)
    try:
        await database.migrate()
        with measured() as usage:
            for start in range(0, len(movements), BULK_BATCH):
                batch = movements[start : start + BULK_BATCH]
                async with database.transaction() as session:
                    result = await session.execute(
                        insert(MOVEMENTS).returning(
                            MOVEMENTS.c.id, MOVEMENTS.c.event_id
                        ),
                        [m.row for m in batch],
                    )
                    ids = {event_id: row_id for row_id, event_id in result.all()}
                    await session.execute(
                        insert(MOVEMENT_TAGS),
                        [
                            {**tag, "movement_id": ids[m.event_id]}
                            for m in batch
                            for tag in m.tags
                        ],
                    )
    finally:
        await database.close()
    return len(movements) / usage.wall_s if usage.wall_s > 0 else 0.0


async def _on_postgres(
    action: Callable[[str], Awaitable[float]], label: str, problems: list[str]
) -> float | None:
    try:
        async with fresh_postgres() as url:
            return await action(url)
    except (BenchSetupError, BrokerBenchError, StorageError) as exc:
        problems.append(f"{label}: {exc}")
        return None


def run_ingest(events: int, *, with_nodered: bool) -> IngestResults:
    """Preload the backlog and drain it with every consumer; return the rates."""
    results = IngestResults()
    timeout_s = drain_timeout_s(events)
    with tempfile.TemporaryDirectory(prefix="bwms-bench-ingest-") as name:
        workdir = Path(name)
        site_file = write_site_file(workdir)
        broker = BacklogBroker()
        broker.start()
        try:
            payloads = movement_backlog(events)
            client_ids = [BARE_CLIENT_ID, *HUB_CLIENT_IDS.values()]
            if with_nodered:
                client_ids += list(nodered.CLIENT_IDS.values())
            for client_id in client_ids:
                broker.create_session(client_id)
            broker.publish(payloads, timeout_s)

            bare = drain_bare(broker.port, BARE_CLIENT_ID, events, timeout_s)
            results.bare = bare.rate
            _drain_hubs(results, broker, site_file, workdir, events, timeout_s)
            _bulk_inserts(results, payloads, workdir)
            if with_nodered:
                nodered.run_peers(results, broker, workdir, events, timeout_s)
        finally:
            broker.close()
    return results


def _drain_hubs(
    results: IngestResults,
    broker: BacklogBroker,
    site_file: Path,
    workdir: Path,
    events: int,
    timeout_s: float,
) -> None:
    def settings(url: str, database: str) -> HubSettings:
        return hub_settings(
            site_file, url, broker.url, HUB_CLIENT_IDS[database], workdir / "data"
        )

    try:
        drain = asyncio.run(
            drain_hub(
                settings(sqlite_url(workdir / "hub.sqlite3"), "SQLite"),
                events,
                timeout_s,
            )
        )
        results.hub["SQLite"] = drain.rate
        results.hub_cpu_s["SQLite"] = drain.cpu_s
    except (BrokerBenchError, StorageError) as exc:
        results.problems.append(f"hub into SQLite: {exc}")

    async def into_postgres(url: str) -> float:
        drain = await drain_hub(settings(url, "PostgreSQL"), events, timeout_s)
        results.hub_cpu_s["PostgreSQL"] = drain.cpu_s
        return drain.rate

    rate = asyncio.run(
        _on_postgres(into_postgres, "hub into PostgreSQL", results.problems)
    )
    if rate is not None:
        results.hub["PostgreSQL"] = rate


def _bulk_inserts(results: IngestResults, payloads: list[bytes], workdir: Path) -> None:
    received_at = datetime.now(UTC)
    movements = [prepare_movement(json.loads(raw), received_at) for raw in payloads]
    try:
        results.bulk["SQLite"] = asyncio.run(
            bulk_insert(sqlite_url(workdir / "bulk.sqlite3"), movements)
        )
    except StorageError as exc:
        results.problems.append(f"bulk insert into SQLite: {exc}")

    async def into_postgres(url: str) -> float:
        return await bulk_insert(url, movements)

    rate = asyncio.run(
        _on_postgres(into_postgres, "bulk insert into PostgreSQL", results.problems)
    )
    if rate is not None:
        results.bulk["PostgreSQL"] = rate


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def hub_section(results: IngestResults, events: int) -> Section:
    """Figures of benchmark 2."""
    section = Section(2, "Hub ingest: preloaded MQTT backlog into the database")
    section.notes += [
        f"backlog: {events:,} movement events x {EVENT_TAGS} tags, QoS 1, one "
        "persistent session per consumer on a private Mosquitto "
        "(max_queued_messages 0)",
        "rate: events stored after the first one seen / time from then to the last",
        f"bulk insert: the hub's rows, SQLAlchemy core executemany, {BULK_BATCH} "
        "movements per transaction, same engine and pragmas",
    ]
    section.add(Figure("bare paho subscriber (counts only)", results.bare, "events/s"))
    for database in ("SQLite", "PostgreSQL"):
        hub = results.hub.get(database)
        section.add(Figure(f"hub into {database}", hub, "events/s"))
        section.add(
            at_least(
                f"hub into {database} / bare subscriber",
                _ratio(hub, results.bare),
                "x",
                TARGET_BARE_RATIO,
                digits=2,
            )
        )
        section.add(
            Figure(
                f"hub into {database} / bulk insert",
                _ratio(hub, results.bulk.get(database)),
                "x",
                digits=2,
            )
        )
        section.add(
            Figure(
                f"bulk insert into {database}", results.bulk.get(database), "events/s"
            )
        )
        cpu_s = results.hub_cpu_s.get(database)
        section.add(
            Figure(
                f"hub process CPU per 1,000 events ({database})",
                None if cpu_s is None else cpu_s * 1000 / events,
                "s",
                digits=2,
            )
        )
    section.problems += results.problems
    return section


def nodered_section(results: IngestResults) -> Section:
    """Figures of benchmark 3."""
    section = Section(3, "Node-RED peer: the same ingest as a Node-RED flow")
    section.notes += results.nodered_notes
    for database in ("SQLite", "PostgreSQL"):
        rate = results.nodered.get(database)
        section.add(Figure(f"Node-RED into {database}", rate, "events/s"))
        section.add(
            at_least(
                f"hub / Node-RED, {database}",
                _ratio(results.hub.get(database), rate),
                "x",
                TARGET_NODERED_RATIO,
                digits=2,
            )
        )
    section.problems += results.nodered_problems
    return section
