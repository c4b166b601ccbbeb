"""The hub's acceptance under broker trouble: every movement is stored exactly once.

Both tests run the real edge daemons and the real hub against a Mosquitto of the
test's own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from bwms.chaos import Bench, Outcome, settings_for
from bwms.chaos.scenarios import MOSQUITTO_QUEUE_DEFAULT
from tests.support.brokers import PrivateMosquitto

pytestmark = pytest.mark.slow


def assert_stored_once(outcome: Outcome) -> None:
    counts = outcome.tally
    assert counts.stored == counts.expected, outcome.notes
    assert counts.movements_stored == outcome.movements_expected, outcome.notes
    assert counts.duplicated == 0
    assert counts.unexpected == 0
    assert outcome.pending == 0
    assert outcome.edges_running
    assert outcome.hub_running


async def test_hub_down_past_broker_queue(
    private_broker: Callable[..., PrivateMosquitto], tmp_path: Path
) -> None:
    # Mosquitto's default queue of 1000 messages for the hub while it is away.
    broker = private_broker()
    settings = settings_for("ci", portals=12, seed=11)
    rounds = math.ceil(1.1 * MOSQUITTO_QUEUE_DEFAULT / (2 * settings.portals))

    async with Bench(settings, tmp_path / "bench", broker=broker) as bench:
        assert bench.stream is not None
        await bench.stop_hub()
        await bench.stream.play(rounds)
        await bench.start_hub()
        outcome = await bench.outcome("hub-down", "queue", faults=1, seed=11)

    assert outcome.movements_expected > MOSQUITTO_QUEUE_DEFAULT
    assert_stored_once(outcome)
    # The edges published more than the queue holds, so the broker dropped some,
    # and the edges' resends made up for them.
    assert "messages are being dropped" in broker.log()


async def test_broker_restart_without_persistence(
    private_broker: Callable[..., PrivateMosquitto], tmp_path: Path
) -> None:
    broker = private_broker(persistence=False)
    settings = settings_for("ci", seed=12)
    half = settings.waves // 2

    async with Bench(settings, tmp_path / "bench", broker=broker) as bench:
        assert bench.stream is not None
        await bench.stream.play(half)
        # Without persistence the broker restarts with no sessions and no queued
        # messages, the hub's included.
        await asyncio.to_thread(broker.restart)
        await bench.stream.play(settings.waves - half)
        outcome = await bench.outcome(
            "broker-restart", "no persistence", faults=1, seed=12
        )

    assert_stored_once(outcome)
