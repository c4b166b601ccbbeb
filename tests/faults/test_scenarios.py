"""Every fault scenario in the short form: each tag stored once, every part running.

The seed is fixed so that a failure here can be replayed with
`bwms chaos NAME --seed SEED`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bwms.chaos import Outcome, run_scenarios, settings_for
from bwms.chaos.scenarios import (
    BROKER_RESTARTS,
    EDGE_KILLS,
    HUB_KILLS,
    MOSQUITTO_QUEUE_DEFAULT,
    QUOTA_HEADROOM,
    READER_FAULTS,
    ROUNDS_PAST_QUOTA,
)

pytestmark = pytest.mark.slow

SEED = 20261204
SETTINGS = settings_for("ci", seed=SEED)


async def run(name: str, folder: Path) -> list[Outcome]:
    return await run_scenarios([name], SETTINGS, folder)


def assert_clean(outcome: Outcome) -> None:
    """Assert that every expected tag is stored once and every part still runs."""
    counts = outcome.tally
    assert counts.lost == 0, outcome.notes
    assert counts.duplicated == 0, outcome.notes
    assert counts.unexpected == 0, outcome.notes
    assert counts.stored == counts.expected - counts.dropped
    assert outcome.pending == 0
    assert outcome.edges_running
    assert outcome.hub_running
    assert outcome.problems == ()


async def test_broker_restarts(tmp_path: Path) -> None:
    outcomes = await run("broker-restart", tmp_path)

    assert [o.variant for o in outcomes] == ["persistence on", "persistence off"]
    for outcome in outcomes:
        assert outcome.faults == BROKER_RESTARTS
        assert_clean(outcome)


async def test_hub_away_past_queue(tmp_path: Path) -> None:
    [outcome] = await run("hub-away", tmp_path)

    assert outcome.movements_expected > MOSQUITTO_QUEUE_DEFAULT
    assert_clean(outcome)


async def test_edge_sigkill(tmp_path: Path) -> None:
    [outcome] = await run("edge-kill", tmp_path)

    assert outcome.faults == EDGE_KILLS
    assert_clean(outcome)


async def test_hub_sigkill(tmp_path: Path) -> None:
    [outcome] = await run("hub-kill", tmp_path)

    assert outcome.faults == HUB_KILLS
    assert_clean(outcome)


async def test_reader_link_faults(tmp_path: Path) -> None:
    [outcome] = await run("reader-faults", tmp_path)

    assert outcome.faults == 2 * len(READER_FAULTS)
    assert_clean(outcome)


async def test_outbox_quota(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="edge.outbox")

    within, past = await run("outbox-quota", tmp_path)

    assert_clean(within)
    assert within.tally.dropped == 0
    assert_clean(past)
    # Past the quota the outbox drops new movements, and counts every one.
    over_quota = 2 * ROUNDS_PAST_QUOTA - QUOTA_HEADROOM
    assert past.tally.dropped == over_quota * SETTINGS.portals
    errors = [
        record
        for record in caplog.records
        if record.name == "edge.outbox" and record.levelno == logging.ERROR
    ]
    # One error per dropped movement, and one when the quota is reached.
    assert len(errors) >= past.tally.dropped
