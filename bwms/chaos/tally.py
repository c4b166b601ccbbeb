"""Counting at the end of a scenario: what crossed, what the hub stored, what is lost.

The counts come from the files themselves, the hub's SQLite database and each
edge daemon's outbox, read with plain sqlite3 connections of their own, so the
harness counts rows rather than trusting either side's counters. Both files are
in WAL mode, in which a reader does not block the writer.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bwms.chaos.errors import ChaosError

# How long a read waits for a writer's lock before it gives up.
_BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StoredTag:
    """One tag of one movement row in the hub's database."""

    movement_id: int
    event_id: str
    epc: str


@dataclass(frozen=True)
class OutboxState:
    """Totals of one edge outbox file."""

    pending: int  # movements not yet confirmed by the hub
    last_seq: int  # movements numbered so far, dropped ones included
    dropped: int  # movements dropped at the quota, counted by the outbox
    dropped_listed: int  # of those, the ones in its table of discarded movements


@dataclass(frozen=True)
class Tally:
    """Counts of a scenario's tags at the end.

    `lost` counts expected tags that the hub does not have, less the tags of the
    movements the outbox dropped and counted at its quota (every movement of the
    stream carries one tag). `duplicated` counts tags stored in more than one
    movement plus event ids stored in more than one row.
    """

    expected: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int
    dropped: int
    movements_stored: int
    missing: tuple[str, ...]  # the first few expected tags the hub does not have


def tally(
    expected_tags: Iterable[str], rows: Iterable[StoredTag], dropped: int
) -> Tally:
    """Compare the expected tags with the hub's rows."""
    expected = set(expected_tags)
    rows = list(rows)
    movements_of_tag: dict[str, set[int]] = defaultdict(set)
    rows_of_event: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        movements_of_tag[row.epc].add(row.movement_id)
        rows_of_event[row.event_id].add(row.movement_id)

    stored = expected & movements_of_tag.keys()
    missing = sorted(expected - stored)
    repeated_tags = sum(1 for ids in movements_of_tag.values() if len(ids) > 1)
    repeated_events = sum(1 for ids in rows_of_event.values() if len(ids) > 1)
    return Tally(
        expected=len(expected),
        stored=len(stored),
        lost=max(len(missing) - dropped, 0),
        duplicated=repeated_tags + repeated_events,
        unexpected=len(movements_of_tag.keys() - expected),
        dropped=dropped,
        movements_stored=len({row.movement_id for row in rows}),
        missing=tuple(missing[:5]),
    )


def _connect(path: Path) -> sqlite3.Connection:
    # Read-write, because a reader of a WAL database may have to create its
    # shared-memory file; nothing is written.
    return sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S)


def read_hub_tags(database: Path) -> list[StoredTag]:
    """Return every (movement, event id, EPC) row of the hub's SQLite database."""
    if not database.exists():
        return []
    try:
        with _connect(database) as db:
            rows = db.execute(
                "SELECT m.id, m.event_id, t.epc FROM movements AS m"
                " JOIN movement_tags AS t ON t.movement_id = m.id"
            ).fetchall()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            # The hub has not run its migrations yet.
            return []
        raise ChaosError(f"cannot read hub database {database}: {exc}") from exc
    return [StoredTag(int(row[0]), str(row[1]), str(row[2])) for row in rows]


def read_outbox(path: Path) -> OutboxState:
    """Return the totals of an edge outbox file; all zero before it exists."""
    if not path.exists():
        return OutboxState(0, 0, 0, 0)
    try:
        with _connect(path) as db:
            pending = db.execute("SELECT COUNT(*) FROM pending").fetchone()
            state = db.execute("SELECT last_seq, dropped FROM state").fetchone()
            listed = db.execute(
                "SELECT COUNT(*) FROM discarded WHERE kind = 'dropped'"
            ).fetchone()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            return OutboxState(0, 0, 0, 0)
        raise ChaosError(f"cannot read outbox {path}: {exc}") from exc
    if state is None:
        return OutboxState(int(pending[0]), 0, 0, int(listed[0]))
    return OutboxState(int(pending[0]), int(state[0]), int(state[1]), int(listed[0]))
