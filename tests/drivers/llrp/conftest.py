"""Fixtures for the LLRP tests: simulators and clients on loopback, with fast timers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.llrp.client import ReaderClient, ReaderHealth
from drivers.llrp.profile import load_profile
from drivers.llrp.reads import TagRead
from drivers.llrp.simulator import ReaderSimulator

# Watchdog window 3 x 0.2 s, so a silent reader is declared lost within about 0.6 s.
FAST_TIMERS: dict[str, Any] = {
    "keepalive_interval_s": 0.2,
    "missed_keepalives": 3,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.4,
    "connect_timeout_s": 2.0,
}


async def wait_until(
    predicate: Callable[[], bool], what: str, timeout_s: float = 5.0
) -> None:
    """Poll `predicate` until it is true; fail the test, naming `what`, on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class RunningClient:
    """A ReaderClient whose run() is a task, with everything its callbacks received."""

    client: ReaderClient
    task: asyncio.Task[None]
    reads: list[TagRead] = field(default_factory=list)
    healths: list[ReaderHealth] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.client.health.state

    async def wait_state(self, state: str, timeout_s: float = 5.0) -> None:
        await wait_until(lambda: self.state == state, f"state {state}", timeout_s)

    async def wait_published(self, state: str, timeout_s: float = 5.0) -> None:
        """Wait until on_health has reported `state`, however briefly it lasted."""
        await wait_until(
            lambda: any(health.state == state for health in self.healths),
            f"a published state {state}",
            timeout_s,
        )

    def first_published(self, state: str) -> ReaderHealth:
        """Return the first health snapshot that on_health got with `state`."""
        return next(health for health in self.healths if health.state == state)

    async def wait_reads(self, count: int, timeout_s: float = 5.0) -> None:
        await wait_until(lambda: len(self.reads) >= count, f"{count} reads", timeout_s)


@pytest.fixture
async def start_simulator() -> AsyncIterator[Callable[..., Awaitable[ReaderSimulator]]]:
    started: list[ReaderSimulator] = []

    async def make(**options: Any) -> ReaderSimulator:
        simulator = ReaderSimulator(**options)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def start_client() -> AsyncIterator[Callable[..., Awaitable[RunningClient]]]:
    running: list[RunningClient] = []

    async def make(
        port: int, profile: str = "generic", **options: Any
    ) -> RunningClient:
        settings = {**FAST_TIMERS, **options}
        reads: list[TagRead] = []
        healths: list[ReaderHealth] = []
        client = ReaderClient(
            "reader-1",
            "127.0.0.1",
            port,
            load_profile(profile),
            on_reads=reads.extend,
            on_health=healths.append,
            **settings,
        )
        task = asyncio.create_task(client.run())
        handle = RunningClient(client, task, reads, healths)
        running.append(handle)
        return handle

    yield make
    for handle in running:
        await handle.client.stop()
        await asyncio.gather(handle.task, return_exceptions=True)


@pytest.fixture(autouse=True)
def _quiet_sllurp() -> Iterator[None]:
    # sllurp logs every step of its set-up at INFO; the tests read only ours.
    sllurp_logger = logging.getLogger("sllurp")
    level = sllurp_logger.level
    sllurp_logger.setLevel(logging.WARNING)
    yield
    sllurp_logger.setLevel(level)
