"""The fault scenarios. Each one streams crossings, breaks one part, and counts.

Every scenario is an async function of a `Run` that returns one `Outcome` per
variant. Sizes come from the run's settings, so the short form and the long form
are the same code. Fault times are drawn from the run's seeded random generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bwms.chaos.bench import Bench, Outcome
from bwms.chaos.broker import MosquittoBroker
from bwms.chaos.errors import ChaosError
from bwms.chaos.parts import InProcessEdge
from bwms.chaos.settings import ChaosSettings
from bwms.chaos.tally import read_outbox

logger = logging.getLogger(__name__)

# Mosquitto's default max_queued_messages: QoS 1 messages it keeps for a client
# that is away (mosquitto.conf(5)); later ones are dropped.
MOSQUITTO_QUEUE_DEFAULT = 1000
# Movements made while the hub is away, as a share of that queue.
AWAY_QUEUE_SHARE = 1.1
# Least sum of the edges' inflight windows, as a share of that queue.
AWAY_WINDOWS_SHARE = 1.2
# Minimum number of portals of the hub-away scenario. A portal closes two movements
# a round, so a thousand movements take 20 s of rounds at 12 portals.
AWAY_PORTALS_MIN = 12
# The slow hub: small batches, each waiting for more messages before it commits.
SLOW_BATCH_MAX = 10
SLOW_FLUSH_MS = 20
BROKER_RESTARTS = 3
EDGE_KILLS = 5
HUB_KILLS = 5
READER_FAULTS = ("silent", "drop", "malformed", "partial")
# Movements a portal's outbox stays under its quota in the within-quota variant,
# and rounds past the quota in the other one.
QUOTA_HEADROOM = 2
ROUNDS_PAST_QUOTA = 3


@dataclass
class Run:
    """Settings, folder and seeded random generator shared by a run's scenarios."""

    settings: ChaosSettings
    folder: Path
    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def bench(
        self, name: str, settings: ChaosSettings | None = None, **options: Any
    ) -> Bench:
        return Bench(settings or self.settings, self.folder / name, **options)


class Background:
    """Faults that run while the stream goes on, one at a time, in order.

    Leaving the `async with` block waits for the running fault even when the
    stream failed, so that no restart starts a part after the bench stopped it.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def spawn(self, fault: Coroutine[Any, Any, None]) -> None:
        await self.wait()
        self._task = asyncio.create_task(fault)

    async def wait(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task

    async def __aenter__(self) -> Background:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            await self.wait()
            return
        # The stream's own error is the one to report.
        with contextlib.suppress(Exception):
            await self.wait()


def fault_rounds(rounds: int, faults: int) -> set[int]:
    """Return the rounds after which faults happen, spread over the stream."""
    if rounds < faults + 1:
        raise ChaosError(f"{rounds} rounds are too few for {faults} faults; use more")
    return {round(rounds * (n + 1) / (faults + 1)) for n in range(faults)}


# 1. Broker restarted during the stream


async def broker_restart(run: Run) -> list[Outcome]:
    """Restart the broker three times mid-stream, with persistence and without."""
    return [
        await _broker_restarts(run, persistence=True),
        await _broker_restarts(run, persistence=False),
    ]


async def _broker_restarts(run: Run, *, persistence: bool) -> Outcome:
    variant = f"persistence {'on' if persistence else 'off'}"
    at = fault_rounds(run.settings.waves, BROKER_RESTARTS)
    restarts = 0

    async with (
        run.bench(
            f"broker-restart-{variant.split()[-1]}", persistence=persistence
        ) as bench,
        Background() as background,
    ):
        assert bench.stream is not None

        async def restart(crash: bool) -> None:
            # A random moment of the round, and a random time down.
            await asyncio.sleep(run.rng.uniform(0, run.settings.wave_period_s))
            await bench.restart_broker(down_s=run.rng.uniform(0.2, 1.0), crash=crash)

        async def after_round(round_no: int) -> None:
            nonlocal restarts
            if round_no in at:
                restarts += 1
                # The middle restart is a crash, which persistence survives only
                # up to the broker's last autosave.
                await background.spawn(restart(crash=restarts == 2))

        await bench.stream.play(run.settings.waves, after_round)
        await background.wait()
        return await bench.outcome(
            "broker-restart",
            variant,
            faults=restarts,
            seed=run.seed,
            notes=("second restart is a SIGKILL",),
        )


# 2. Hub away, then slow, past the broker's queue


async def hub_away(run: Run) -> list[Outcome]:
    """Keep the hub away while more movements are made than Mosquitto queues for it.

    Then bring it back slow, with small batches, while crossings go on.
    """
    portals = max(run.settings.portals, AWAY_PORTALS_MIN)
    per_round = 2 * portals
    rounds_away = math.ceil(MOSQUITTO_QUEUE_DEFAULT * AWAY_QUEUE_SHARE / per_round)
    # Windows that together exceed the queue, so the broker must drop movements
    # of the hub's session and the edges must make up for them.
    least_window = math.ceil(AWAY_WINDOWS_SHARE * MOSQUITTO_QUEUE_DEFAULT / portals)
    window = min(900, max(run.settings.inflight_window, least_window))
    settings = run.settings.model_copy(
        update={"portals": portals, "inflight_window": window}
    )
    rounds_slow = max(4, rounds_away // 5)

    async with run.bench("hub-away", settings) as bench:
        assert bench.stream is not None
        await bench.stop_hub()
        await bench.stream.play(rounds_away)
        made_away = len(bench.stream.crossings)
        await bench.start_hub(batch_max=SLOW_BATCH_MAX, flush_ms=SLOW_FLUSH_MS)
        await bench.stream.play(rounds_slow)

        problems = []
        if made_away <= MOSQUITTO_QUEUE_DEFAULT:
            problems.append(
                f"only {made_away} movements were made while the hub was away, "
                f"not more than the broker's queue of {MOSQUITTO_QUEUE_DEFAULT}"
            )
        notes = [
            f"{made_away} movements while the hub was away, then a hub with "
            f"batches of {SLOW_BATCH_MAX}",
        ]
        broker = bench.broker
        if isinstance(broker, MosquittoBroker) and broker.dropped_messages_logged():
            notes.append("the broker logged dropping messages of the hub's queue")
        outcome = await bench.outcome(
            "hub-away",
            f"{portals} portals, window {window}",
            faults=1,
            seed=run.seed,
            problems=tuple(problems),
            notes=tuple(notes),
        )
        return [outcome]


# 3. Edge daemon killed


async def edge_kill(run: Run) -> list[Outcome]:
    """Kill `bwms edge run` processes with SIGKILL five times and start them again.

    Each kill comes after the last round's movements are committed to the outbox,
    at a random moment within the ack timeout, so it may hit a movement before its
    publish, before its ack, or neither. A crossing still open in the portal
    logic is lost with the process by design (docs/architecture.md), so kills
    never fall inside one.
    """
    at = fault_rounds(run.settings.waves, EDGE_KILLS)
    kills = 0

    async with run.bench("edge-kill", edge_mode="process") as bench:
        assert bench.stream is not None

        async def after_round(round_no: int) -> None:
            nonlocal kills
            if round_no not in at:
                return
            portal_id = bench.portal_ids[kills % len(bench.portal_ids)]
            kills += 1
            await bench.wait_committed(portal_id)
            await asyncio.sleep(run.rng.uniform(0, run.settings.ack_timeout_s))
            await bench.kill_edge(portal_id)
            await asyncio.sleep(run.rng.uniform(0, 0.5))
            await bench.restart_edge(portal_id)

        await bench.stream.play(run.settings.waves, after_round)
        outcome = await bench.outcome(
            "edge-kill", "SIGKILL", faults=kills, seed=run.seed
        )
        return [outcome]


# 4. Hub killed


async def hub_kill(run: Run) -> list[Outcome]:
    """Kill the `bwms hub run` process with SIGKILL five times and start it again."""
    at = fault_rounds(run.settings.waves, HUB_KILLS)
    kills = 0

    async with (
        run.bench("hub-kill", hub_mode="process") as bench,
        Background() as background,
    ):
        assert bench.stream is not None

        async def kill_and_restart() -> None:
            await asyncio.sleep(run.rng.uniform(0, run.settings.wave_period_s))
            await bench.kill_hub()
            await asyncio.sleep(run.rng.uniform(0, 1.0))
            await bench.start_hub()

        async def after_round(round_no: int) -> None:
            nonlocal kills
            if round_no in at:
                kills += 1
                await background.spawn(kill_and_restart())

        await bench.stream.play(run.settings.waves, after_round)
        await background.wait()
        outcome = await bench.outcome(
            "hub-kill", "SIGKILL", faults=kills, seed=run.seed
        )
        return [outcome]


# 5. Reader link faults


async def reader_faults(run: Run) -> list[Outcome]:
    """Break reader links right after a round's reads arrived, before they close.

    Faults, each twice: a half-open link (the reader goes silent with the socket
    open), a reset, a frame with a garbage header, and a header whose body never
    comes. The round's reads stay in the portal logic across the reconnect, so its
    movements must still close.
    """
    faults = [kind for kind in READER_FAULTS for _ in range(2)]
    at = fault_rounds(run.settings.waves, len(faults))
    done: list[str] = []

    async with run.bench("reader-faults") as bench:
        assert bench.stream is not None

        async def after_round(round_no: int) -> None:
            if round_no not in at:
                return
            kind = faults[len(done)]
            portal_id = bench.portal_ids[len(done) % len(bench.portal_ids)]
            done.append(kind)
            await _break_reader(bench, portal_id, kind, run.settings.start_timeout_s)

        await bench.stream.play(run.settings.waves, after_round)
        outcome = await bench.outcome(
            "reader-faults",
            " ".join(READER_FAULTS),
            faults=len(done),
            seed=run.seed,
        )
        return [outcome]


async def _break_reader(
    bench: Bench, portal_id: str, kind: str, timeout_s: float
) -> None:
    """Inject one fault on a reader link and wait until the daemon has a new link.

    Waiting matters for the partial frame: the simulator cannot tell that its
    client now takes every later byte for the body of that frame, so reads sent
    before the client gives the link up would never be decoded.
    """
    reader = bench.readers[portal_id]
    links = reader.connections
    if kind == "silent":
        reader.go_silent()
        # The reader stays silent until the daemon has given the link up, as a
        # reader behind a dead switch port would.
        edge = bench.edges[portal_id]
        assert isinstance(edge, InProcessEdge)
        await _wait_until(
            lambda: edge.reader_state() == "lost",
            timeout_s,
            f"{portal_id}: the daemon did not notice a silent reader",
        )
        reader.resume()
        # A connection the daemon opened during the silence never got its
        # greeting; resetting it saves the client's 5 s handshake timeout.
        reader.drop_connections()
    elif kind == "drop":
        reader.drop_connections()
    elif kind == "malformed":
        reader.send_malformed()
    elif kind == "partial":
        reader.send_partial_frame()
    else:
        raise ChaosError(f"unknown reader fault {kind!r}")
    logger.info("%s: reader fault %s injected", portal_id, kind)
    await _wait_until(
        lambda: reader.connections > links,
        timeout_s,
        f"{portal_id}: the daemon did not reconnect after the fault {kind}",
    )


async def _wait_until(
    condition: Callable[[], bool], timeout_s: float, failure: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ChaosError(f"{failure} within {timeout_s} s")
        await asyncio.sleep(0.02)


# 6. Outbox quota


async def outbox_quota(run: Run) -> list[Outcome]:
    """Fill each outbox to just under its quota while the hub is away, then past it.

    Under the quota nothing may be lost. Past it, the outbox drops new movements,
    and every one of them must be counted and listed rather than vanish.
    """
    rounds_within = max(3, run.settings.waves // 2)
    quota = 2 * rounds_within + QUOTA_HEADROOM
    return [
        await _fill_outbox(run, quota, rounds_within, past=False),
        await _fill_outbox(run, quota, rounds_within + ROUNDS_PAST_QUOTA, past=True),
    ]


async def _fill_outbox(run: Run, quota: int, rounds: int, *, past: bool) -> Outcome:
    name = "past" if past else "within"
    async with run.bench(f"outbox-quota-{name}", outbox_quota=quota) as bench:
        assert bench.stream is not None
        await bench.stop_hub()
        await bench.stream.play(rounds)
        for portal_id in bench.portal_ids:
            await bench.wait_committed(portal_id)

        problems = []
        expected_drops = max(2 * rounds - quota, 0) * len(bench.portal_ids)
        states = [
            await asyncio.to_thread(read_outbox, edge.outbox_path)
            for edge in bench.edges.values()
        ]
        held = sum(state.pending for state in states)
        dropped = sum(state.dropped for state in states)
        listed = sum(state.dropped_listed for state in states)
        if dropped != expected_drops:
            problems.append(
                f"outboxes dropped {dropped} movements, not {expected_drops}"
            )
        if listed != dropped:
            problems.append(
                f"outboxes list {listed} dropped movements but count {dropped}"
            )

        await bench.start_hub()
        return await bench.outcome(
            "outbox-quota",
            f"{name} quota of {quota}",
            faults=1,
            seed=run.seed,
            expect_dropped=past,
            problems=tuple(problems),
            notes=(f"{held} movements held while the hub was away",),
        )


ScenarioFunction = Callable[[Run], Awaitable[list[Outcome]]]

SCENARIOS: dict[str, ScenarioFunction] = {
    "broker-restart": broker_restart,
    "hub-away": hub_away,
    "edge-kill": edge_kill,
    "hub-kill": hub_kill,
    "reader-faults": reader_faults,
    "outbox-quota": outbox_quota,
}
