"""`bwms chaos`: the table, and the exit status that CI relies on."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bwms.chaos import Outcome, Run, Tally
from bwms.chaos.scenarios import SCENARIOS
from bwms.cli import app

pytestmark = pytest.mark.slow


def test_chaos_runs_scenario() -> None:
    result = CliRunner().invoke(
        app,
        ["chaos", "outbox-quota", "--waves", "6", "--portals", "1", "--seed", "5"],
    )

    assert result.exit_code == 0, result.output
    assert "outbox-quota" in result.output
    assert "FAIL" not in result.output


def test_chaos_unknown_scenario() -> None:
    result = CliRunner().invoke(app, ["chaos", "meteor-strike"])

    assert result.exit_code == 2
    assert "unknown scenario 'meteor-strike'" in result.output


def test_chaos_fails_on_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    async def lossy(run: Run) -> list[Outcome]:
        counts = Tally(
            expected=4,
            stored=3,
            lost=1,
            duplicated=0,
            unexpected=0,
            dropped=0,
            movements_stored=3,
            missing=("3035A537C8000A8000000004",),
        )
        outcome = Outcome(
            scenario="lossy",
            variant="one tag lost",
            faults=1,
            tally=counts,
            movements_expected=4,
            pending=0,
            edges_running=True,
            hub_running=True,
            seed=run.seed,
        )
        return [outcome]

    monkeypatch.setitem(SCENARIOS, "lossy", lossy)

    result = CliRunner().invoke(app, ["chaos", "lossy", "--seed", "1"])

    assert result.exit_code == 1
    assert "FAIL" in result.output
