"""The demo end to end: LLRP simulator → sllurp → edge daemon → MQTT → hub.

These are the product's end-to-end tests: the same run as `bwms demo`, against the
machine's Mosquitto on 127.0.0.1:1883 and the hub on SQLite or PostgreSQL, and once
through the command line on its embedded broker.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bwms.demo import running_demo
from bwms.scenario import EXPECTED

pytestmark = pytest.mark.slow


def _line(result: dict[str, Any], line_no: int) -> dict[str, Any]:
    return next(line for line in result["lines"] if line["line_no"] == line_no)


def _check_reconciliation(result: dict[str, Any]) -> None:
    assert result["status"] == "discrepant"
    assert _line(result, 1)["status"] == "complete"
    assert _line(result, 2)["expected"] == 3
    assert _line(result, 2)["received"] == 2
    assert _line(result, 2)["status"] == "short"
    assert _line(result, 3)["received"] == 1
    assert _line(result, 3)["status"] == "complete"
    assert [tag["epc"] for tag in result["unexpected"]] == [EXPECTED.unexpected_epc]


async def _run(tmp_path: Path, mqtt_url: str, database_url: str | None) -> None:
    console = Console(file=io.StringIO())
    async with running_demo(
        console, folder=tmp_path, mqtt_url=mqtt_url, database_url=database_url, port=0
    ) as demo:
        _check_reconciliation(demo.reconciliation)
        tagged = {tag["epc"] for m in demo.movements for tag in m["tags"]}
        assert EXPECTED.staged_epc not in tagged
        assert EXPECTED.pallet_epc in tagged
        assert {m["direction"] for m in demo.movements} == {"in"}
        assert demo.staged_tags == 1
        assert set(demo.reconciliation["event_ids"]) == {m["event_id"] for m in demo.movements}


async def test_end_to_end_on_sqlite(tmp_path: Path, shared_broker: str) -> None:
    await _run(tmp_path, shared_broker, None)


@pytest.mark.postgres
async def test_end_to_end_on_postgres(tmp_path: Path, shared_broker: str, pg_url: str) -> None:
    await _run(tmp_path, shared_broker, pg_url)


def test_demo_command_once(tmp_path: Path) -> None:
    bwms = Path(sys.executable).with_name("bwms")
    completed = subprocess.run(
        [str(bwms), "demo", "--once", "--port", "0", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "140"},
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "password login only" in output
    assert "Sign in as demo-admin with password " in output
    assert "two-factor sign-in is OFF" in output
    assert ": discrepant" in output
    assert "Missing: line 2, 1 CT of GTIN" in output
    assert "urn:epc:id:sgtin:6901234.000042.3001" in output
    assert "Staged tags seen by the door without crossing it: 1" in output
