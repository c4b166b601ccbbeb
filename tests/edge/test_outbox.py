"""The durable outbox: seq allocation, order, quota, acks and crash survival."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import Outbox, OutboxError, QuotaState

REPO = Path(__file__).resolve().parents[2]
SITE = "s1"
PORTAL = "door-3"


def movement(seq: int) -> dict[str, Any]:
    """A minimal payload: the outbox itself needs only event_id and seq."""
    return {"event_id": f"ev-{seq:06d}", "seq": seq, "direction": "in"}


async def open_box(path: Path, quota: int = 1000, **options: Any) -> Outbox:
    return await Outbox.open(
        path, quota=quota, site_id=SITE, portal_id=PORTAL, **options
    )


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Outbox]:
    outbox = await open_box(tmp_path / "outbox.sqlite3")
    yield outbox
    await outbox.close()


async def test_add_allocates_increasing_seq(box: Outbox) -> None:
    payloads = [await box.add(movement) for _ in range(3)]

    assert [p["seq"] for p in payloads if p] == [1, 2, 3]


async def test_add_returns_built_payload(box: Outbox) -> None:
    payload = await box.add(movement)

    assert payload == movement(1)


async def test_unconfirmed_in_seq_order(box: Outbox) -> None:
    for _ in range(6):
        await box.add(movement)
    await box.confirm(["ev-000002", "ev-000005"])

    items = await box.unconfirmed(10)

    assert [item.seq for item in items] == [1, 3, 4, 6]


async def test_unconfirmed_respects_limit(box: Outbox) -> None:
    for _ in range(5):
        await box.add(movement)

    items = await box.unconfirmed(2)

    assert [item.event_id for item in items] == ["ev-000001", "ev-000002"]


async def test_unconfirmed_keeps_payload_bytes(box: Outbox) -> None:
    await box.add(movement)

    (item,) = await box.unconfirmed(1)

    assert item.payload == movement(1)


async def test_reopen_keeps_pending(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = await open_box(path)
    for _ in range(4):
        await first.add(movement)
    await first.close()

    second = await open_box(path)
    items = await second.unconfirmed(10)
    await second.close()

    assert [item.seq for item in items] == [1, 2, 3, 4]


async def test_seq_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = await open_box(path)
    for _ in range(3):
        await first.add(movement)
    await first.confirm(["ev-000001", "ev-000002", "ev-000003"])
    await first.close()

    second = await open_box(path)
    payload = await second.add(movement)
    await second.close()

    # Every movement was confirmed, yet seq 1 to 3 are never handed out again.
    assert payload is not None and payload["seq"] == 4


async def test_file_of_other_portal_rejected(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    await (await open_box(path)).close()

    with pytest.raises(OutboxError, match="belongs to site s1 portal door-3"):
        await Outbox.open(path, quota=10, site_id=SITE, portal_id="gate-1")


async def test_file_uses_wal(box: Outbox) -> None:
    with sqlite3.connect(box.path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]

    assert mode == "wal"


async def test_payload_with_wrong_seq_rolled_back(box: Outbox) -> None:
    with pytest.raises(OutboxError, match="carries seq 7"):
        await box.add(lambda seq: {"event_id": "ev-x", "seq": 7})

    payload = await box.add(movement)

    # The failed add stored nothing and did not use up seq 1.
    assert payload is not None and payload["seq"] == 1


async def test_payload_without_event_id_rejected(box: Outbox) -> None:
    with pytest.raises(OutboxError, match="no event_id"):
        await box.add(lambda seq: {"seq": seq})


async def test_duplicate_event_id_rejected(box: Outbox) -> None:
    await box.add(lambda seq: {"event_id": "same", "seq": seq})

    with pytest.raises(OutboxError, match="UNIQUE"):
        await box.add(lambda seq: {"event_id": "same", "seq": seq})


async def test_make_payload_error_passes_through(box: Outbox) -> None:
    def broken(seq: int) -> dict[str, Any]:
        raise KeyError("no such tag")

    with pytest.raises(KeyError):
        await box.add(broken)

    assert await box.pending_count() == 0


async def test_confirm_returns_count_present(box: Outbox) -> None:
    for _ in range(3):
        await box.add(movement)

    removed = await box.confirm(["ev-000001", "ev-000003", "unknown", "ev-000001"])

    assert removed == 2


async def test_confirm_counts_confirmed(box: Outbox) -> None:
    for _ in range(3):
        await box.add(movement)

    await box.confirm(["ev-000001", "ev-000002"])

    assert box.counters["confirmed"] == 2


async def test_reject_keeps_reason(box: Outbox) -> None:
    for _ in range(2):
        await box.add(movement)

    removed = await box.reject([("ev-000002", "unknown portal"), ("nope", "x")])
    (discarded,) = await box.discarded()

    assert removed == 1
    assert box.counters["rejected"] == 1
    assert (discarded.kind, discarded.event_id, discarded.reason) == (
        "rejected",
        "ev-000002",
        "unknown portal",
    )
    assert await box.pending_count() == 1


async def test_mark_sent_records_attempts(box: Outbox) -> None:
    await box.add(movement)
    await box.mark_sent(["ev-000001"], at=100.0)
    await box.mark_sent(["ev-000001"], at=250.0)

    (item,) = await box.unconfirmed(1)

    assert item.attempts == 2
    assert item.last_sent_at == 250.0


async def test_unconfirmed_due_before_filters(box: Outbox) -> None:
    for _ in range(3):
        await box.add(movement)
    await box.mark_sent(["ev-000001"], at=100.0)
    await box.mark_sent(["ev-000002"], at=300.0)

    items = await box.unconfirmed(10, due_before=200.0)

    # Sent long enough ago, or never sent.
    assert [item.seq for item in items] == [1, 3]


async def test_quota_drops_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = await open_box(tmp_path / "outbox.sqlite3", quota=3)
    for _ in range(3):
        await box.add(movement)
    caplog.set_level(logging.ERROR, logger="edge.outbox")

    dropped = [await box.add(movement) for _ in range(2)]
    pending = await box.pending_count()
    discarded = await box.discarded()
    await box.close()

    assert dropped == [None, None]
    assert pending == 3
    assert box.counters["dropped"] == 2
    assert "ev-000004" in caplog.text
    assert "ev-000005" in caplog.text
    assert [d.event_id for d in discarded] == ["ev-000005", "ev-000004"]


async def test_quota_reached_is_full(tmp_path: Path) -> None:
    box = await open_box(tmp_path / "outbox.sqlite3", quota=2)
    for _ in range(2):
        await box.add(movement)

    state = box.quota_state
    await box.close()

    assert state is QuotaState.FULL
    assert box.critical


async def test_quota_logged_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = await open_box(tmp_path / "outbox.sqlite3", quota=2)
    caplog.set_level(logging.INFO, logger="edge.outbox")
    for _ in range(5):
        await box.add(movement)
    await box.confirm(["ev-000001"])
    await box.close()

    reached = [r for r in caplog.records if "reached its quota" in r.getMessage()]
    back = [r for r in caplog.records if "below its quota again" in r.getMessage()]
    assert len(reached) == 1
    assert len(back) == 1


async def test_quota_freed_accepts_again(tmp_path: Path) -> None:
    box = await open_box(tmp_path / "outbox.sqlite3", quota=2)
    for _ in range(3):
        await box.add(movement)
    await box.confirm(["ev-000001"])

    payload = await box.add(movement)
    await box.close()

    # seq 3 went to the dropped movement, so the hub can see the gap.
    assert payload is not None and payload["seq"] == 4


async def test_high_water_is_degraded(tmp_path: Path) -> None:
    box = await open_box(tmp_path / "outbox.sqlite3", quota=10, high_water_fraction=0.5)
    for _ in range(5):
        await box.add(movement)

    state = box.quota_state
    await box.close()

    assert state is QuotaState.HIGH


async def test_dropped_count_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = await open_box(path, quota=1)
    for _ in range(3):
        await first.add(movement)
    await first.close()

    second = await open_box(path, quota=1)
    status = second.status()
    await second.close()

    assert status == {"pending": 1, "quota": 1, "dropped": 2, "rejected": 0}


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge.outbox import Outbox

    async def main():
        box = await Outbox.open(
            Path(sys.argv[1]), quota=10**6, site_id="s1", portal_id="door-3"
        )
        while True:
            payload = await box.add(lambda s: {"event_id": f"ev-{s:06d}", "seq": s})
            print(payload["event_id"], flush=True)

    asyncio.run(main())
    """
)


async def test_kill9_keeps_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    # The writer prints an event id only after `add` returned, so each printed id
    # was committed; it is killed while it keeps adding.
    reported = [writer.stdout.readline().strip() for _ in range(200)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)

    box = await open_box(path, quota=10**6)
    stored = [item.event_id for item in await box.unconfirmed(10**6)]
    seqs = [item.seq for item in await box.unconfirmed(10**6)]
    after = await box.add(movement)
    await box.close()

    assert writer.returncode == -signal.SIGKILL
    assert set(reported) <= set(stored)
    assert seqs == list(range(1, len(seqs) + 1))
    assert after is not None and after["seq"] == len(seqs) + 1
