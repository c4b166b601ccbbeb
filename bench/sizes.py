"""How much work each benchmark does in a full, quick or tiny run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Workload sizes of one run of the suite."""

    name: str
    # Pallets of 100 tags that cross the portal; each is 1,000 tag reports.
    edge_pallets: int
    # Length of the run paced at 1,500 tag reports per second.
    edge_paced_s: float
    # Movement events of 100 tags in the preloaded MQTT backlog.
    hub_events: int
    # Manifest sizes for reconciliation, in lines; each line gets 10 tags.
    reconcile_lines: tuple[int, ...]
    reconcile_repeats: int
    # Movements stored before the lookups, lookups timed, and the time they may take:
    # the timed lookups stop at whichever limit comes first.
    lookup_movements: int
    lookup_requests: int
    lookup_budget_s: float


FULL = Sizes(
    name="full",
    edge_pallets=200,
    edge_paced_s=10.0,
    hub_events=5_000,
    reconcile_lines=(1_000, 10_000, 100_000),
    reconcile_repeats=3,
    lookup_movements=1_000_000,
    lookup_requests=500,
    lookup_budget_s=90.0,
)

QUICK = Sizes(
    name="quick",
    edge_pallets=30,
    edge_paced_s=4.0,
    hub_events=1_500,
    reconcile_lines=(1_000, 10_000),
    reconcile_repeats=2,
    lookup_movements=50_000,
    lookup_requests=200,
    lookup_budget_s=30.0,
)

# For the smoke tests: every code path runs, and no figure means anything.
TINY = Sizes(
    name="tiny",
    edge_pallets=2,
    edge_paced_s=0.5,
    hub_events=30,
    reconcile_lines=(100, 300),
    reconcile_repeats=1,
    lookup_movements=2_000,
    lookup_requests=10,
    lookup_budget_s=10.0,
)

PRESETS = {sizes.name: sizes for sizes in (FULL, QUICK, TINY)}
