"""Smoke tests of the benchmark suite: each benchmark runs with tiny workloads and
prints its figures. They check that a figure is printed as a number, never how fast
anything is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import __main__ as suite
from bench import nodered
from bench.hub_ingest import IngestResults, nodered_section
from bench.mqtt_backlog import Drain
from bench.report import percentile

NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


def run_tiny(capsys: pytest.CaptureFixture[str], only: str) -> str:
    exit_code = suite.main(["--size", "tiny", "--only", only])
    output = capsys.readouterr().out
    assert exit_code == 0, output
    return output


def figure(output: str, label: str, unit: str) -> float:
    """Return the value printed for `label`, failing if it is absent or not a number."""
    pattern = rf"^  {re.escape(label)}\s+({NUMBER}) {re.escape(unit)}"
    match = re.search(pattern, output, re.MULTILINE)
    assert match is not None, f"no figure {label!r} in {unit!r} in:\n{output}"
    return float(match.group(1).replace(",", ""))


def test_edge_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tiny(capsys, "edge")
    assert figure(output, "pipeline over LLRP/TCP, per core", "reads/s") > 0
    assert figure(output, "pipeline without LLRP, per core", "reads/s") > 0
    assert figure(output, "portal logic only, per core", "reads/s") > 0
    assert figure(output, "CPU at 1,500 reads/s over LLRP/TCP", "% of a core") > 0
    assert figure(output, "peak RSS over LLRP/TCP", "MiB") > 0
    assert "checked: 2 movements of 200 tags over LLRP/TCP" in output
    assert "PROBLEM" not in output


@pytest.mark.postgres
def test_hub_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tiny(capsys, "hub")
    assert figure(output, "bare paho subscriber (counts only)", "events/s") > 0
    for database in ("SQLite", "PostgreSQL"):
        assert figure(output, f"hub into {database}", "events/s") > 0
        # A ratio is printed with two decimals, so a slow tiny run may print 0.00.
        assert figure(output, f"hub into {database} / bare subscriber", "x") >= 0
        assert figure(output, f"bulk insert into {database}", "events/s") > 0
    assert "== 3. Node-RED peer" not in output
    assert "PROBLEM" not in output


@pytest.mark.postgres
@pytest.mark.slow
def test_nodered_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    missing = nodered.missing_install()
    if missing is not None:
        pytest.skip(missing)
    output = run_tiny(capsys, "nodered")
    for database in ("SQLite", "PostgreSQL"):
        assert figure(output, f"Node-RED into {database}", "events/s") > 0
        assert figure(output, f"hub / Node-RED, {database}", "x") >= 0
    assert "PROBLEM" not in output


def test_nodered_missing_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(nodered, "RED_JS", tmp_path / "red.js")
    results = IngestResults()
    nodered.run_peers(results, None, tmp_path, 1, 1.0)  # type: ignore[arg-type]
    section = nodered_section(results)
    assert section.problems
    assert nodered.INSTALL_COMMAND in section.problems[0]
    assert section.figures[0].value is None


def test_reconcile_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tiny(capsys, "reconcile")
    assert figure(output, "300 lines / 3,000 tags", "s") >= 0
    assert figure(output, "time per line at 300 lines", "us") > 0
    assert "PROBLEM" not in output


def test_lookup_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tiny(capsys, "lookup")
    assert figure(output, "p50", "ms") > 0
    assert figure(output, "p95", "ms") > 0
    assert "query plan of the API's EPC filter: " in output
    assert "PROBLEM" not in output


def test_unbuilt_benchmarks_listed(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_tiny(capsys, "reconcile")
    assert "== 6. Gate alert latency ==\n  not built" in output
    assert "== 7. Live map burst ==\n  not built" in output


def test_unknown_benchmark_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        suite.main(["--only", "edge,nope"])
    assert raised.value.code == 2
    assert "unknown benchmark nope" in capsys.readouterr().err


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.50) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([7.0], 0.95) == 7.0


def test_drain_rate_leaves_out_first_batch() -> None:
    drain = Drain(
        count=1000, started_s=0.0, first_s=1.0, first_count=500, finished_s=2.0
    )
    assert drain.rate == 500.0


def test_drain_rate_all_at_once() -> None:
    drain = Drain(count=30, started_s=0.0, first_s=0.5, first_count=30, finished_s=0.5)
    assert drain.rate == 60.0


def test_size_defaults_to_full() -> None:
    assert suite.parse_args([]).size == "full"
    assert suite.parse_args(["--quick"]).size == "quick"
