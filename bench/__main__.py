"""Run the benchmark suite: `python -m bench [--quick] [--only NAME[,NAME...]]`.

Prints the machine, then each benchmark's method and figures with its targets, then
every target in one list. Targets missed do not change the exit code: it is 1 only
when a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from bench import edge_pipeline, hub_ingest, lookup, reconcile
from bench.report import Section, load_average, machine_lines, write_summary
from bench.sizes import FULL, PRESETS, QUICK, Sizes

BENCHMARKS = ("edge", "hub", "nodered", "reconcile", "lookup")
_TITLES = {
    "edge": (1, "Edge pipeline"),
    "hub": (2, "Hub ingest"),
    "nodered": (3, "Node-RED peer"),
    "reconcile": (4, "Reconciliation"),
    "lookup": (5, "Lookup"),
}


def _edge(sizes: Sizes, _selected: set[str]) -> list[Section]:
    return [edge_pipeline.run(sizes.edge_pallets, sizes.edge_paced_s)]


def _ingest(sizes: Sizes, selected: set[str]) -> list[Section]:
    # Node-RED's figures are ratios to the hub's, so both drain the same backlog.
    with_nodered = "nodered" in selected
    results = hub_ingest.run_ingest(sizes.hub_events, with_nodered=with_nodered)
    sections = [hub_ingest.hub_section(results, sizes.hub_events)]
    if with_nodered:
        sections.append(hub_ingest.nodered_section(results))
    return sections


def _reconcile(sizes: Sizes, _selected: set[str]) -> list[Section]:
    return [reconcile.run(sizes.reconcile_lines, sizes.reconcile_repeats)]


def _lookup(sizes: Sizes, _selected: set[str]) -> list[Section]:
    return [
        lookup.run(sizes.lookup_movements, sizes.lookup_requests, sizes.lookup_budget_s)
    ]


# Benchmarks in the order they run; "hub" also produces the Node-RED section.
_RUNNERS: list[tuple[set[str], Callable[[Sizes, set[str]], list[Section]]]] = [
    ({"edge"}, _edge),
    ({"hub", "nodered"}, _ingest),
    ({"reconcile"}, _reconcile),
    ({"lookup"}, _lookup),
]


def _names(text: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(BENCHMARKS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(sorted(unknown))}; choose from "
            f"{', '.join(BENCHMARKS)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the edge pipeline, hub ingest, reconciliation and lookups.",
    )
    parser.add_argument(
        "--quick",
        action="store_const",
        const=QUICK.name,
        dest="size",
        help="short run with smaller workloads (under about 2 minutes on 2 cores)",
    )
    parser.add_argument(
        "--size",
        choices=sorted(PRESETS),
        help="workload sizes: full (default), quick, or tiny for smoke tests",
    )
    parser.add_argument(
        "--only",
        type=_names,
        default=set(BENCHMARKS),
        metavar="NAME[,NAME...]",
        help=f"run only these benchmarks: {', '.join(BENCHMARKS)}",
    )
    # Both --quick and --size set `size`, so the default is set once for both.
    parser.set_defaults(size=FULL.name)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = PRESETS[args.size]
    selected: set[str] = args.only
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    out = sys.stdout
    out.write(f"bwms benchmark suite, {sizes.name} run\n")
    for line in machine_lines():
        out.write(f"  {line}\n")
    out.flush()

    sections: list[Section] = []
    failed = False
    for names, runner in _RUNNERS:
        if not names & selected:
            continue
        load = load_average()
        started = time.monotonic()
        try:
            produced = runner(sizes, selected)
        except Exception as exc:  # noqa: BLE001
            # One benchmark's failure is reported, and the others still run.
            traceback.print_exc()
            failed = True
            produced = []
            for name in sorted(names & selected):
                number, title = _TITLES[name]
                section = Section(number, title)
                section.problems.append(f"failed: {exc}")
                produced.append(section)
        elapsed_s = time.monotonic() - started
        for section in produced:
            section.notes.append(
                f"run time: {elapsed_s:.0f} s; load average before: {load}"
            )
            section.write(out)
        sections += produced

    for number, title in ((6, "Gate alert latency"), (7, "Live map burst")):
        section = Section(number, title, built=False)
        section.write(out)
        sections.append(section)
    write_summary(sections, out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
