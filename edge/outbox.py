"""Durable outbox of one portal: movements wait here until the hub confirms them.

A movement is committed to SQLite before `Outbox.add` returns, and it leaves only
when the hub's ack names it (`confirm` or `reject`). An MQTT PUBACK is not enough,
because it confirms only that the broker has the message, and a broker may still
drop it (a full per-client queue, or a restart without persistence).

Durability: the file runs in WAL mode. A commit is in the WAL file, in the
operating system's page cache at least, before `add` returns, so a killed process
(SIGKILL) loses nothing with either synchronous mode. Power loss is different.
With `synchronous=FULL` (the default) every commit is also synced to the disk, so
power loss loses nothing either. NOTE: that is true only on a disk that honours
flush requests. SD cards and drives with a volatile write cache can still lose the
last commits. With `synchronous=NORMAL` the WAL is synced only at checkpoints, so
power loss may undo the latest commits, but the file stays consistent. FULL costs
one sync per commit (add, mark_sent, confirm, reject). A portal closes a movement
every few seconds at most, by estimate, so the cost is small.

Sequence numbers are per portal, persisted in the same transaction as the
movement, and never reused. A movement dropped because the quota is reached still
uses its seq, so the hub sees the gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from bwms.contract import encode

logger = logging.getLogger(__name__)

# Rows kept in the table of dropped and rejected movements. Older rows are pruned.
DISCARD_LOG_ROWS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    site TEXT NOT NULL,
    portal TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_sent_at REAL
);
CREATE TABLE IF NOT EXISTS discarded (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('dropped', 'rejected')),
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT,
    at REAL NOT NULL,
    payload BLOB
);
"""


class OutboxError(Exception):
    """The outbox file cannot be opened, read or written, or a payload is unusable."""


class QuotaState(StrEnum):
    """Fill level of the outbox relative to its quota."""

    OK = "ok"
    HIGH = "high"  # at or above the high-water mark: status degraded
    FULL = "full"  # quota reached: new movements are dropped, status critical


@dataclass(frozen=True)
class OutboxItem:
    """One unconfirmed movement as stored."""

    seq: int
    event_id: str
    data: bytes  # the encoded payload, byte-identical on every resend
    created_at: float  # Unix time of `add`
    attempts: int  # publishes so far
    last_sent_at: float | None  # Unix time of the latest publish

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.data)
        return result


@dataclass(frozen=True)
class Discarded:
    """A movement that left the outbox without being stored by the hub."""

    kind: Literal["dropped", "rejected"]
    event_id: str
    seq: int
    reason: str | None
    at: float


class Outbox:
    """Movements of one portal that the hub has not confirmed yet, in seq order."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        path: Path,
        quota: int,
        high_water_fraction: float,
        portal_id: str,
        pending: int,
        totals: dict[str, int],
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self.path = path
        self.quota = quota
        self._high_water = max(1, int(quota * high_water_fraction))
        self._portal_id = portal_id
        self._pending = pending
        self._totals = totals
        self._clock = clock
        self._lock = asyncio.Lock()
        self._state = QuotaState.OK
        self._update_quota_state()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        quota: int,
        site_id: str,
        portal_id: str,
        high_water_fraction: float = 0.8,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """Open or create the outbox file of one portal.

        Raises OutboxError when the file cannot be used or belongs to another
        site or portal, because seq numbers are per portal.
        """
        if quota < 1:
            raise OutboxError(f"outbox quota must be at least 1, not {quota}")
        if not 0.0 < high_water_fraction <= 1.0:
            raise OutboxError(
                f"high_water_fraction must be in (0, 1], not {high_water_fraction}"
            )
        if synchronous not in ("FULL", "NORMAL"):
            raise OutboxError(
                f"synchronous must be FULL or NORMAL, not {synchronous!r}"
            )

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every transaction below is opened and committed
            # explicitly, so nothing stays uncommitted by accident.
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"failed to open outbox {path}: {exc}") from exc

        try:
            state = await _prepare(db, path, synchronous, site_id, portal_id)
        except BaseException:
            await db.close()
            raise

        pending, totals = state
        outbox = cls(
            db,
            path=path,
            quota=quota,
            high_water_fraction=high_water_fraction,
            portal_id=portal_id,
            pending=pending,
            totals=totals,
            clock=clock,
        )
        logger.info(
            "%s: outbox %s opened with %d unconfirmed movements, last seq %d",
            portal_id,
            path,
            pending,
            totals["last_seq"],
        )
        return outbox

    @property
    def counters(self) -> dict[str, int]:
        """Totals since the file was created: dropped, rejected, confirmed."""
        return {
            "dropped": self._totals["dropped"],
            "rejected": self._totals["rejected"],
            "confirmed": self._totals["confirmed"],
        }

    @property
    def quota_state(self) -> QuotaState:
        return self._state

    @property
    def critical(self) -> bool:
        """Whether the quota is reached, so new movements are being dropped."""
        return self._state is QuotaState.FULL

    @property
    def last_seq(self) -> int:
        """The latest seq handed out, 0 before the first movement."""
        return self._totals["last_seq"]

    def status(self) -> dict[str, int]:
        """Return the `outbox` part of a bwms.status/1 payload."""
        return {
            "pending": self._pending,
            "quota": self.quota,
            "dropped": self._totals["dropped"],
            "rejected": self._totals["rejected"],
        }

    async def add(
        self, make_payload: Callable[[int], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Allocate the next seq, build the payload with it and commit both.

        Returns the payload once it is committed, or None when the quota is
        reached: the movement is then dropped, logged with its event_id and
        counted. Raises OutboxError when the file cannot be written or the payload
        lacks the allocated seq or an event_id; nothing is stored then.
        """
        async with self._lock:
            full = self._pending >= self.quota
            async with self._transaction("add a movement"):
                seq = await self._next_seq()
                payload = make_payload(seq)
                event_id = _check_payload(payload, seq)
                now = self._clock()
                if full:
                    await self._record_drop(event_id, seq, now)
                else:
                    await self._db.execute(
                        "INSERT INTO pending (seq, event_id, payload, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (seq, event_id, encode(payload), now),
                    )

            self._totals["last_seq"] = seq
            if full:
                self._totals["dropped"] += 1
                logger.error(
                    "%s: outbox quota of %d reached, dropped movement %s (seq %d)",
                    self._portal_id,
                    self.quota,
                    event_id,
                    seq,
                )
                return None

            self._pending += 1
            self._update_quota_state()
            return payload

    async def unconfirmed(
        self, limit: int, *, due_before: float | None = None
    ) -> list[OutboxItem]:
        """Return up to `limit` unconfirmed movements in seq order.

        With `due_before`, only movements never sent or last sent at or before
        that Unix time.
        """
        query = (
            "SELECT seq, event_id, payload, created_at, attempts, last_sent_at"
            " FROM pending"
        )
        params: tuple[Any, ...] = (limit,)
        if due_before is not None:
            query += " WHERE last_sent_at IS NULL OR last_sent_at <= ?"
            params = (due_before, limit)
        query += " ORDER BY seq LIMIT ?"

        async with self._lock:
            try:
                async with self._db.execute(query, params) as cursor:
                    rows = await cursor.fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"failed to read outbox {self.path}: {exc}") from exc
        return [
            OutboxItem(
                seq=row[0],
                event_id=row[1],
                data=bytes(row[2]),
                created_at=row[3],
                attempts=row[4],
                last_sent_at=row[5],
            )
            for row in rows
        ]

    async def mark_sent(self, event_ids: list[str], at: float) -> None:
        """Count one more publish of each movement and record its Unix time."""
        if not event_ids:
            return
        async with self._lock:
            async with self._transaction("record sends"):
                await self._db.executemany(
                    "UPDATE pending SET attempts = attempts + 1, last_sent_at = ?"
                    " WHERE event_id = ?",
                    [(at, event_id) for event_id in event_ids],
                )

    async def confirm(self, event_ids: Iterable[str]) -> int:
        """Remove movements the hub has stored; return how many were still here."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return 0
        async with self._lock:
            async with self._transaction("confirm movements"):
                cursor = await self._db.executemany(
                    "DELETE FROM pending WHERE event_id = ?", [(i,) for i in ids]
                )
                removed = max(cursor.rowcount, 0)
                await self._db.execute(
                    "UPDATE state SET confirmed = confirmed + ?", (removed,)
                )
            self._totals["confirmed"] += removed
            self._pending -= removed
            self._update_quota_state()
            return removed

    async def reject(self, acks: list[tuple[str, str]]) -> int:
        """Remove movements the hub has rejected, keeping each reason.

        `acks` contains (event_id, reason) pairs. The reason and payload go to a
        table of the latest DISCARD_LOG_ROWS discarded movements. Returns how many
        of the movements were still here.
        """
        if not acks:
            return 0
        removed = 0
        async with self._lock:
            async with self._transaction("reject movements"):
                now = self._clock()
                for event_id, reason in dict(acks).items():
                    removed += await self._move_to_rejected(event_id, reason, now)
                await self._db.execute(
                    "UPDATE state SET rejected = rejected + ?", (removed,)
                )
                await self._prune_discarded()
            self._totals["rejected"] += removed
            self._pending -= removed
            self._update_quota_state()
            return removed

    async def discarded(self, limit: int = 100) -> list[Discarded]:
        """Return the latest dropped and rejected movements, newest first."""
        async with self._lock:
            try:
                async with self._db.execute(
                    "SELECT kind, event_id, seq, reason, at FROM discarded"
                    " ORDER BY id DESC LIMIT ?",
                    (limit,),
                ) as cursor:
                    rows = await cursor.fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"failed to read outbox {self.path}: {exc}") from exc
        return [Discarded(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    async def pending_count(self) -> int:
        return self._pending

    async def close(self) -> None:
        async with self._lock:
            try:
                await self._db.close()
            except sqlite3.Error as exc:
                raise OutboxError(f"failed to close outbox {self.path}: {exc}") from exc

    def _transaction(self, action: str) -> _Transaction:
        return _Transaction(self._db, self.path, action)

    async def _next_seq(self) -> int:
        async with self._db.execute(
            "UPDATE state SET last_seq = last_seq + 1 RETURNING last_seq"
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None  # the state row is created at open
        return int(row[0])

    async def _record_drop(self, event_id: str, seq: int, now: float) -> None:
        await self._db.execute("UPDATE state SET dropped = dropped + 1")
        await self._db.execute(
            "INSERT INTO discarded (kind, event_id, seq, reason, at)"
            " VALUES ('dropped', ?, ?, ?, ?)",
            (event_id, seq, f"outbox quota of {self.quota} reached", now),
        )
        await self._prune_discarded()

    async def _move_to_rejected(self, event_id: str, reason: str, now: float) -> int:
        async with self._db.execute(
            "DELETE FROM pending WHERE event_id = ? RETURNING seq, payload", (event_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return 0
        await self._db.execute(
            "INSERT INTO discarded (kind, event_id, seq, reason, at, payload)"
            " VALUES ('rejected', ?, ?, ?, ?, ?)",
            (event_id, row[0], reason, now, row[1]),
        )
        return 1

    async def _prune_discarded(self) -> None:
        await self._db.execute(
            "DELETE FROM discarded WHERE id <= (SELECT MAX(id) FROM discarded) - ?",
            (DISCARD_LOG_ROWS,),
        )

    def _update_quota_state(self) -> None:
        if self._pending >= self.quota:
            new = QuotaState.FULL
        elif self._pending >= self._high_water:
            new = QuotaState.HIGH
        else:
            new = QuotaState.OK
        old, self._state = self._state, new
        if new is old:
            return

        # Each change is logged once, so a long outage gives one line per episode
        # rather than one per movement (drops are logged one by one in `add`).
        if new is QuotaState.FULL:
            logger.error(
                "%s: outbox reached its quota of %d unconfirmed movements. New "
                "movements are dropped until the hub confirms older ones",
                self._portal_id,
                self.quota,
            )
        elif old is QuotaState.FULL:
            logger.warning(
                "%s: outbox is below its quota again (%d of %d), so movements are "
                "accepted again",
                self._portal_id,
                self._pending,
                self.quota,
            )
        elif new is QuotaState.HIGH:
            logger.warning(
                "%s: outbox contains %d unconfirmed movements, at or above its "
                "high-water mark of %d (quota %d)",
                self._portal_id,
                self._pending,
                self._high_water,
                self.quota,
            )
        else:
            logger.info(
                "%s: outbox is below its high-water mark again (%d of %d)",
                self._portal_id,
                self._pending,
                self._high_water,
            )


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error.

    sqlite3 errors become OutboxError; other errors (from a payload callback,
    say) pass through unchanged after the rollback.
    """

    def __init__(self, db: aiosqlite.Connection, path: Path, action: str) -> None:
        self._db = db
        self._path = path
        self._action = action

    async def __aenter__(self) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(
                f"failed to {self._action} in {self._path}: {exc}"
            ) from exc

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        if exc_type is None:
            try:
                await self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                await self._rollback()
                raise OutboxError(
                    f"failed to {self._action} in {self._path}: {commit_exc}"
                ) from commit_exc

        await self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(
                f"failed to {self._action} in {self._path}: {exc}"
            ) from exc

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            # No transaction is open any more (SQLite rolls back by itself on
            # some errors, such as a full disk).
            pass


async def _prepare(
    db: aiosqlite.Connection,
    path: Path,
    synchronous: str,
    site_id: str,
    portal_id: str,
) -> tuple[int, dict[str, int]]:
    """Set the pragmas, create the tables and check the file belongs to this portal."""
    try:
        async with db.execute("PRAGMA journal_mode=WAL") as cursor:
            row = await cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            raise OutboxError(f"outbox {path} cannot use WAL mode (got {row})")
        await db.execute(f"PRAGMA synchronous={synchronous}")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(_SCHEMA)
        await db.execute(
            "INSERT OR IGNORE INTO state (id, site, portal, last_seq)"
            " VALUES (1, ?, ?, 0)",
            (site_id, portal_id),
        )
        async with db.execute(
            "SELECT site, portal, last_seq, dropped, rejected, confirmed FROM state"
        ) as cursor:
            state = await cursor.fetchone()
        async with db.execute("SELECT COUNT(*) FROM pending") as cursor:
            count = await cursor.fetchone()
    except sqlite3.Error as exc:
        raise OutboxError(f"failed to open outbox {path}: {exc}") from exc

    assert state is not None and count is not None
    if (state[0], state[1]) != (site_id, portal_id):
        raise OutboxError(
            f"outbox {path} belongs to site {state[0]} portal {state[1]}, not "
            f"site {site_id} portal {portal_id}; give each portal its own file"
        )
    totals = {
        "last_seq": int(state[2]),
        "dropped": int(state[3]),
        "rejected": int(state[4]),
        "confirmed": int(state[5]),
    }
    return int(count[0]), totals


def _check_payload(payload: Any, seq: int) -> str:
    """Return the payload's event_id, or raise OutboxError if it cannot be stored."""
    if not isinstance(payload, dict):
        raise OutboxError(
            f"payload for seq {seq} is a {type(payload).__name__}, not a dict"
        )
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise OutboxError(f"payload for seq {seq} has no event_id")
    if payload.get("seq") != seq:
        raise OutboxError(
            f"payload {event_id} carries seq {payload.get('seq')!r}, not the "
            f"allocated {seq}"
        )
    return event_id
