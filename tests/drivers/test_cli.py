"""`bwms sim reader`: options and errors, without serving."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from drivers.cli import sim_app

# Mount the group as bwms does, so `reader` is a subcommand even if it is the only one.
app = typer.Typer()
app.add_typer(sim_app, name="sim")


def test_reader_help_lists_options() -> None:
    result = CliRunner().invoke(app, ["sim", "reader", "--help"])
    assert result.exit_code == 0
    for option in ("--reads", "--host", "--port", "--speed", "--loop", "--impinj"):
        assert option in result.output


def test_reader_missing_file_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sim", "reader", "--reads", str(tmp_path / "absent.csv")]
    )
    assert result.exit_code == 2
    assert "absent.csv" in result.output


def test_reader_bad_row_fails(tmp_path: Path) -> None:
    path = tmp_path / "reads.csv"
    path.write_text("time_s,antenna,epc,rssi_dbm\n0.0,0,3036,-50\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["sim", "reader", "--reads", str(path), "--port", "0"]
    )
    assert result.exit_code == 2
    assert "line 2" in result.output
