"""Benchmark 4: reconciliation of manifests of growing size against 10x as many tags.

Shape: a manifest of N lines, each a distinct GTIN with a quantity of 10, against
10 * N SGTIN tags (10 of each GTIN) carried by movements of 100 tags each. The tags
are shuffled, so consecutive tags count against different lines. Every
movement matches the manifest, so every tag is counted. Only `reconcile` itself is
timed: it is pure code over the dataclasses the service loads from the database.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.report import Figure, Section, at_most
from bwms.epc import gs1_check_digit
from hub.manifests.matching import (
    Direction,
    LineData,
    ManifestData,
    MovementData,
    TagData,
    reconcile,
)

TAGS_PER_LINE = 10
MOVEMENT_TAGS = 100
SITE_ID = "bench"
PORTAL_ID = "door-3"
# GS1 Company Prefix of the GTINs; a 6-digit prefix leaves 6 digits of item
# reference, enough for a million distinct lines.
COMPANY_PREFIX = "871913"
TARGET_LINES = 10_000
TARGET_S = 0.5
STARTED_AT = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SEED = 1


def gtin_for(line_no: int) -> str:
    """Return a valid GTIN-14 unique to one line number."""
    body = f"0{COMPANY_PREFIX}{line_no:06d}"
    return body + gs1_check_digit(body)


def build_case(lines: int) -> tuple[ManifestData, list[MovementData]]:
    """Build a manifest of `lines` lines and the movements that carry its tags."""
    manifest_lines = tuple(
        LineData(line_no=n, quantity=TAGS_PER_LINE, gtin=gtin_for(n))
        for n in range(1, lines + 1)
    )
    tags = [
        TagData(
            epc=f"30{n:011X}{unit:011X}",
            scheme="sgtin-96",
            gtin=gtin_for(n),
        )
        for n in range(1, lines + 1)
        for unit in range(TAGS_PER_LINE)
    ]
    random.Random(SEED).shuffle(tags)
    movements = [
        MovementData(
            event_id=f"bench-{index:08d}",
            site=SITE_ID,
            portal=PORTAL_ID,
            direction="in",
            started_at=STARTED_AT + timedelta(seconds=6 * index),
            tags=tuple(tags[start : start + MOVEMENT_TAGS]),
        )
        for index, start in enumerate(range(0, len(tags), MOVEMENT_TAGS))
    ]
    manifest = ManifestData(
        manifest_id=f"bench-{lines}",
        direction=Direction.IN,
        site=SITE_ID,
        portals=frozenset({PORTAL_ID}),
        lines=manifest_lines,
    )
    return manifest, movements


def time_reconcile(lines: int, repeats: int) -> tuple[float, float]:
    """Return the fastest and the median time of `repeats` reconciliations, seconds."""
    manifest, movements = build_case(lines)
    times: list[float] = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = reconcile(manifest, movements, (), closed=True)
        times.append(time.perf_counter() - started)
        counted = sum(line.received for line in result.lines)
        if counted != lines * TAGS_PER_LINE or result.unexpected:
            raise RuntimeError(
                f"reconcile counted {counted} tags and {len(result.unexpected)} "
                f"unexpected, expected {lines * TAGS_PER_LINE} and 0"
            )
    return min(times), statistics.median(times)


def run(sizes: tuple[int, ...], repeats: int) -> Section:
    """Time reconciliation at each size and return the section of figures."""
    section = Section(4, "Reconciliation: manifest lines against 10x as many tags")
    section.notes += [
        f"shape: N lines of one GTIN x {TAGS_PER_LINE}; {TAGS_PER_LINE} * N SGTIN tags "
        f"in movements of {MOVEMENT_TAGS}, shuffled; all match",
        f"time: hub.manifests.matching.reconcile only, fastest of {repeats} "
        "(median in brackets)",
    ]
    per_line_us: dict[int, float] = {}
    for lines in sizes:
        fastest, median = time_reconcile(lines, repeats)
        per_line_us[lines] = fastest * 1e6 / lines
        label = f"{lines:,} lines / {lines * TAGS_PER_LINE:,} tags"
        if lines == TARGET_LINES:
            section.add(
                at_most(
                    label,
                    fastest,
                    f"s ({median:.3f} s)",
                    TARGET_S,
                    digits=3,
                    target=f"< {TARGET_S} s",
                )
            )
        else:
            section.add(Figure(label, fastest, f"s ({median:.3f} s)", digits=3))
    for lines, value in per_line_us.items():
        section.add(Figure(f"time per line at {lines:,} lines", value, "us", digits=2))
    smallest, largest = min(per_line_us), max(per_line_us)
    if largest != smallest:
        section.add(
            Figure(
                f"time per line at {largest:,} / at {smallest:,} lines",
                per_line_us[largest] / per_line_us[smallest],
                "x (1.00 is linear growth)",
                digits=2,
            )
        )
    return section
