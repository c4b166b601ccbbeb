"""Figures, sections and the machine header that every benchmark prints."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import resource
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figure:
    """One measured value, with its target when the suite sets one.

    `met` is None when there is no target or the value could not be measured.
    """

    label: str
    value: float | None
    unit: str
    digits: int = 0
    target: str = ""
    met: bool | None = None

    def value_text(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:,.{self.digits}f}"

    def verdict(self) -> str:
        if not self.target:
            return ""
        if self.met is None:
            return f"target {self.target}: not measured"
        return f"target {self.target}: {'met' if self.met else 'MISSED'}"


def at_least(
    label: str,
    value: float | None,
    unit: str,
    minimum: float,
    *,
    digits: int = 0,
    target: str | None = None,
) -> Figure:
    """Build a figure whose target is `value >= minimum`."""
    met = None if value is None else value >= minimum
    text = target if target is not None else f">= {minimum:,.{digits}f} {unit}"
    return Figure(label, value, unit, digits, text, met)


def at_most(
    label: str,
    value: float | None,
    unit: str,
    maximum: float,
    *,
    digits: int = 0,
    target: str | None = None,
) -> Figure:
    """Build a figure whose target is `value < maximum`."""
    met = None if value is None else value < maximum
    text = target if target is not None else f"< {maximum:,.{digits}f} {unit}"
    return Figure(label, value, unit, digits, text, met)


@dataclass
class Section:
    """The output of one benchmark: how it was measured, its figures, its problems."""

    number: int
    title: str
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    built: bool = True

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def write(self, out: TextIO) -> None:
        out.write(f"\n== {self.number}. {self.title} ==\n")
        if not self.built:
            out.write("  not built\n")
            return
        for note in self.notes:
            out.write(f"  {note}\n")
        if self.figures:
            width = max(len(f.label) for f in self.figures)
            values = max(len(f"{f.value_text()} {f.unit}") for f in self.figures)
            for figure in self.figures:
                value = f"{figure.value_text()} {figure.unit}"
                line = f"  {figure.label:<{width}}  {value:>{values}}"
                verdict = figure.verdict()
                out.write(f"{line}  {verdict}".rstrip() + "\n")
        for problem in self.problems:
            out.write(f"  PROBLEM: {problem}\n")
        out.flush()


def write_summary(sections: list[Section], out: TextIO) -> None:
    """Print every figure that has a target, with met or missed, in one list."""
    out.write("\n== Targets ==\n")
    for section in sections:
        if not section.built:
            out.write(f"  {section.number}. {section.title}: not built\n")
            continue
        for figure in section.figures:
            if figure.target:
                out.write(
                    f"  {section.number}. {figure.label}: {figure.value_text()} "
                    f"{figure.unit}; {figure.verdict()}\n"
                )
        for problem in section.problems:
            out.write(f"  {section.number}. PROBLEM: {problem}\n")
    out.flush()


def machine_lines() -> list[str]:
    """Describe the machine, the software and the commit that the run measures."""
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"commit: {_commit()}",
        f"cpu: {_cpu_model()}, {cores} cores usable",
        f"memory: {_memory_total_mib():,} MiB",
        f"python: {platform.python_version()}, sqlite {sqlite3.sqlite_version}",
        f"load average at start: {load_average()}",
    ]
    return lines


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages, to show other work on the machine."""
    one_min, five_min, fifteen_min = os.getloadavg()
    return f"{one_min:.2f} {five_min:.2f} {fifteen_min:.2f}"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} (with uncommitted changes)" if changes else head


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def _memory_total_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Usage:
    """Wall time and CPU time of this process over one measured span."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def cores(self) -> float:
        """Average number of cores busy over the span."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def process_cpu_s() -> float:
    """User plus system CPU time of this process, all threads, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured() -> Iterator[Usage]:
    """Measure the wall and process CPU time of the block into the yielded Usage."""
    usage = Usage()
    wall0, cpu0 = time.perf_counter(), process_cpu_s()
    try:
        yield usage
    finally:
        usage.wall_s = time.perf_counter() - wall0
        usage.cpu_s = process_cpu_s() - cpu0


def peak_rss_mib() -> float:
    """Peak resident memory of this process image, from VmHWM in /proc/self/status.

    Unlike ru_maxrss, which Linux carries over an exec from the forked parent, VmHWM
    covers this process image only, and reset_peak_rss() starts it afresh.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def reset_peak_rss() -> None:
    """Restart the peak at the current resident memory (Linux 4.0 and later)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        # NOTE: without it, the peak also covers what happened before the reset.
        pass


def current_rss_mib() -> float:
    """Resident memory of this process now, from /proc/self/statm."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (fraction 0.95 for p95)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = min(max(1, math.ceil(fraction * len(ordered))), len(ordered))
    return ordered[rank - 1]
