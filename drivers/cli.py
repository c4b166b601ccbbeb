"""`bwms sim …`: protocol simulators of the devices at a portal."""

import typer

sim_app = typer.Typer(help="Run device simulators that speak the real protocols.", no_args_is_help=True)
