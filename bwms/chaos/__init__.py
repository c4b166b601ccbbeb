"""Fault injection: prove that no movement is lost or stored twice when parts fail.

Each scenario streams a known set of tag crossings through the whole chain, the
LLRP reader simulator, the edge daemon, a Mosquitto of its own and the hub on
SQLite, breaks one part along the way, and then counts. It checks that every tag
that crossed is stored in exactly one movement (or, past the outbox quota, counted
as dropped), and that the edge daemons and the hub still run.

`bwms chaos` runs the scenarios from the command line; tests/faults runs them in
the short form. docs/faults.md lists the scenarios and what each one proves.
"""

from bwms.chaos.bench import Bench, Outcome
from bwms.chaos.broker import MosquittoBroker
from bwms.chaos.errors import ChaosError
from bwms.chaos.runner import outcome_table, run_chaos, run_scenarios, scenario_names
from bwms.chaos.scenarios import SCENARIOS, Run
from bwms.chaos.settings import SIZES, ChaosSettings, settings_for
from bwms.chaos.tally import Tally, tally

__all__ = [
    "SCENARIOS",
    "SIZES",
    "Bench",
    "ChaosError",
    "ChaosSettings",
    "MosquittoBroker",
    "Outcome",
    "Run",
    "Tally",
    "outcome_table",
    "run_chaos",
    "run_scenarios",
    "scenario_names",
    "settings_for",
    "tally",
]
