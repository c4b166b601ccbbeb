"""Run scenarios by name and print their table; the body of `bwms chaos`."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bwms.chaos.bench import Outcome
from bwms.chaos.errors import ChaosError
from bwms.chaos.scenarios import SCENARIOS, Run
from bwms.chaos.settings import ChaosSettings

logger = logging.getLogger(__name__)

# Loggers that write a line per movement or per request at INFO; a run makes
# thousands of those, which would bury the faults' own warnings.
_CHATTY_LOGGERS = (
    "edge.daemon",
    "hub.ingest",
    "hub.app",
    "drivers.llrp.simulator",
    "drivers.llrp.client",
    "sllurp",
    "httpx",
    "uvicorn.access",
    "uvicorn.error",
    "alembic",
)


def scenario_names(requested: str) -> list[str]:
    """Return the scenario names a request selects: one, or every one for "all"."""
    if requested == "all":
        return list(SCENARIOS)
    if requested not in SCENARIOS:
        known = ", ".join(SCENARIOS)
        raise ChaosError(f"unknown scenario {requested!r}; known: {known}, or all")
    return [requested]


async def run_scenarios(
    names: Iterable[str], settings: ChaosSettings, folder: Path
) -> list[Outcome]:
    """Run scenarios one after the other and return every variant's outcome."""
    outcomes: list[Outcome] = []
    for name in names:
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        logger.info("chaos: scenario %s starts (seed %d)", name, seed)
        run = Run(settings, folder / name, seed)
        outcomes += await SCENARIOS[name](run)
    return outcomes


def run_chaos(names: list[str], settings: ChaosSettings, console: Console) -> int:
    """Run scenarios, print the table, and return the exit status.

    0 when every tag was stored exactly once (or counted as dropped where the
    scenario fills the outbox past its quota) and every part still ran; 1
    otherwise; 2 when a scenario could not run.
    """
    folder = Path(tempfile.mkdtemp(prefix="bwms-chaos-"))
    try:
        with _quiet(_CHATTY_LOGGERS):
            outcomes = asyncio.run(run_scenarios(names, settings, folder))
    except ChaosError as exc:
        console.print(f"[red]chaos run failed:[/red] {exc}")
        console.print(f"Files kept in {folder}")
        return 2
    console.print(outcome_table(outcomes))
    for outcome in outcomes:
        for line in (*outcome.problems, *outcome.notes):
            console.print(f"{outcome.scenario} ({outcome.variant}): {line}")
    passed = all(outcome.passed for outcome in outcomes)
    # A failed variant keeps its bench folder and names it in its notes; the run's
    # folder goes when no variant kept anything.
    if passed or not any(path.is_file() for path in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if passed else 1


@contextmanager
def _quiet(names: Iterable[str]) -> Iterator[None]:
    """Raise these loggers to WARNING for the block, then restore their levels."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(max(item.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for item, level in zip(loggers, levels, strict=True):
            item.setLevel(level)


def outcome_table(outcomes: Iterable[Outcome]) -> Table:
    """Build the table of outcomes: one row per scenario variant."""
    table = Table(title="Tags through the portals under faults, one tag per movement")
    table.add_column("scenario", no_wrap=True)
    table.add_column("variant", no_wrap=True)
    for title in ("faults", "expected", "stored", "lost", "duplicated", "dropped"):
        table.add_column(title, justify="right")
    for title in ("pending", "running", "seed", "result"):
        table.add_column(title, justify="right")
    for outcome in outcomes:
        counts = outcome.tally
        running = "yes" if outcome.edges_running and outcome.hub_running else "NO"
        table.add_row(
            outcome.scenario,
            outcome.variant,
            str(outcome.faults),
            str(counts.expected),
            str(counts.stored),
            str(counts.lost),
            str(counts.duplicated),
            str(counts.dropped),
            str(outcome.pending),
            running,
            str(outcome.seed),
            "[green]pass[/green]" if outcome.passed else "[red]FAIL[/red]",
        )
    return table
