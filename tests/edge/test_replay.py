"""Offline replay of reads files, through `replay()` and `bwms edge replay`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bwms.cli import app
from bwms.contract import Kind, format_time_us, validate
from bwms.site import load_site
from drivers.llrp.reads import ReadRow, read_reads_file
from edge.replay import ReplayError, replay

DATA = Path(__file__).parent / "data"
EPC_A = "3036142C8C008F8000053244"
EPC_B = "3036142C8C008F8000053245"
EPC_C = "3036142C8C008F8000053246"
EPOCH = "2026-01-01T08:00:00Z"
EPOCH_US = 1_767_254_400_000_000

# Door 3 of the dock-door case, with the floor at -75 dBm so that the staged tag's
# reads (-71 to -73 dBm) count.
SITE_TOML = """
[site]
id = "demo-wgq"
name = "Test site"

[[portals]]
id = "door-3"
kind = "dock_door"
reader = { id = "door-3-reader" }
antennas = [{ port = 1, side = "inside" }, { port = 2, side = "outside" }]
tuning = { rssi_floor_dbm = -75.0, idle_gap_s = 3.0, min_reads = 2, staged_dwell_s = 8.0 }
"""


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML, "utf-8")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["edge", "replay", *args])


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line]


def test_dock_door_case_through_cli(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"), "--epoch", EPOCH,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    events = lines(result.stdout)
    assert [e["direction"] for e in events] == ["in", "out"]
    assert [[t["epc"] for t in e["tags"]] for e in events] == [[EPC_B], [EPC_C]]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[0]["event_id"] != events[1]["event_id"]
    assert events[0]["started_at"].startswith("2026-01-01T08:05:00.")
    for event in events:
        validate(Kind.MOVEMENT, event)


def test_cli_lines_are_encoded_payloads(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"), "--epoch", EPOCH,
    )  # fmt: skip

    first = result.stdout.splitlines()[0]
    assert first == json.dumps(json.loads(first), separators=(",", ":"), sort_keys=True)


def test_cli_crossings_flag(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"), "--epoch", EPOCH, "--crossings",
    )  # fmt: skip

    events = lines(result.stdout)
    assert [(e["schema"], e.get("epc")) for e in events] == [
        ("bwms.crossing/1", EPC_B),
        ("bwms.movement/1", None),
        ("bwms.crossing/1", EPC_C),
        ("bwms.movement/1", None),
    ]
    validate(Kind.CROSSING, events[0])


def test_cli_bad_row_exits_2(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "bad-row.csv"),
    )  # fmt: skip

    assert result.exit_code == 2
    assert "line 3" in result.stderr
    assert result.stdout == ""


def test_bwms_bad_row_no_traceback(site_file: Path) -> None:
    bwms = shutil.which("bwms", path=str(Path(sys.executable).parent))
    assert bwms is not None
    command = [
        bwms, "edge", "replay", "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "bad-row.csv"),
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "line 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_unknown_portal_exits_2(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-9",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"),
    )  # fmt: skip

    assert result.exit_code == 2
    assert "door-9" in result.stderr


def test_cli_bad_epoch_exits_2(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"), "--epoch", "yesterday",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--epoch" in result.stderr


def test_cli_missing_reads_file_exits_2(site_file: Path, tmp_path: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(tmp_path / "none.csv"),
    )  # fmt: skip

    assert result.exit_code == 2
    assert "none.csv" in result.stderr


def test_cli_epoch_seconds(site_file: Path) -> None:
    result = invoke(
        "--config", str(site_file), "--portal", "door-3",
        "--reads", str(DATA / "door3-staged-and-crossing.csv"), "--epoch", str(EPOCH_US // 1_000_000),
    )  # fmt: skip

    events = lines(result.stdout)
    assert events[0]["started_at"].startswith("2026-01-01T08:05:00.")


def rows(*spec: tuple[float, int, str, float]) -> list[ReadRow]:
    return [
        ReadRow(line, t, antenna, epc, rssi, None)
        for line, (t, antenna, epc, rssi) in enumerate(spec, start=2)
    ]


CROSSING_IN = (
    (0.0, 2, EPC_B, -60.0),
    (0.4, 2, EPC_B, -48.0),
    (0.8, 2, EPC_B, -58.0),
    (1.2, 1, EPC_B, -58.0),
    (1.6, 1, EPC_B, -50.0),
    (2.0, 1, EPC_B, -60.0),
)


def test_replay_sorts_rows(site_file: Path) -> None:
    site = load_site(site_file)
    ordered = list(replay(site, "door-3", rows(*CROSSING_IN), epoch_us=EPOCH_US))

    shuffled = list(
        replay(site, "door-3", rows(*reversed(CROSSING_IN)), epoch_us=EPOCH_US)
    )

    assert [e["direction"] for e in ordered] == ["in"]
    assert [e["direction"] for e in shuffled] == ["in"]
    assert shuffled[0]["tags"] == ordered[0]["tags"]


def test_replay_relative_times_on_epoch(site_file: Path) -> None:
    site = load_site(site_file)

    events = list(replay(site, "door-3", rows(*CROSSING_IN), epoch_us=EPOCH_US))

    assert events[0]["started_at"] == format_time_us(EPOCH_US)
    assert events[0]["ended_at"] == format_time_us(EPOCH_US + 2_000_000)


def test_replay_absolute_times(site_file: Path) -> None:
    site = load_site(site_file)
    base_s = 1_767_000_000.0
    absolute = [(base_s + t, a, e, r) for t, a, e, r in CROSSING_IN]

    events = list(replay(site, "door-3", rows(*absolute), epoch_us=EPOCH_US))

    assert events[0]["started_at"] == format_time_us(1_767_000_000_000_000)


def test_replay_rejects_mixed_times(site_file: Path) -> None:
    site = load_site(site_file)
    mixed = rows(*CROSSING_IN[:3], (1_767_000_000.0, 1, EPC_B, -50.0))

    with pytest.raises(ReplayError, match="line 5"):
        list(replay(site, "door-3", mixed, epoch_us=EPOCH_US))


def test_replay_staged_tag_file(site_file: Path) -> None:
    site = load_site(site_file)
    file_rows = read_reads_file(DATA / "door3-staged-and-crossing.csv")

    events = list(replay(site, "door-3", file_rows, epoch_us=EPOCH_US))

    assert all(EPC_A not in [t["epc"] for t in e["tags"]] for e in events)


def test_replay_rejects_nan_rssi(site_file: Path) -> None:
    site = load_site(site_file)
    bad = rows(*CROSSING_IN[:2], (0.8, 2, EPC_B, float("nan")))

    with pytest.raises(ReplayError, match="line 4"):
        list(replay(site, "door-3", bad, epoch_us=EPOCH_US))
