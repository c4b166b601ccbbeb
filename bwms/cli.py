"""The `bwms` command line. Each subcommand group lives with the package that owns
its work; this module only puts them together."""

from __future__ import annotations

import json
import logging

import typer

from drivers.cli import sim_app
from edge.cli import edge_app
from hub.cli import audit_app, hub_app, manifest_app, user_app

app = typer.Typer(
    help="Bonded-warehouse edge gateway and hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
epc_app = typer.Typer(help="Decode EPCs by the GS1 Tag Data Standard.", no_args_is_help=True)

app.add_typer(epc_app, name="epc")
app.add_typer(sim_app, name="sim")
app.add_typer(edge_app, name="edge")
app.add_typer(hub_app, name="hub")
app.add_typer(manifest_app, name="manifest")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")


@app.callback()
def main(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Bonded-warehouse edge gateway and hub."""
    level = log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # The product logs a reader's loss and recovery once each; sllurp's own
        # lines repeat them on every retry. Migrations and the broker library log
        # their set-up steps at INFO.
        logging.getLogger("sllurp").setLevel(logging.CRITICAL)
        for name in ("alembic", "amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)


@epc_app.command(
    "decode",
    help=(
        "Print one JSON object per EPC: scheme, URIs, filter, company prefix, GTIN "
        "or SSCC.\n\n"
        'Hex that is not a decodable GS1 EPC prints with scheme "unknown" and a '
        'reason. An argument that is not hex also gets an "error" field, and the '
        "command then exits with status 1 after printing every argument. Otherwise "
        "it exits with status 0."
    ),
)
def epc_decode(
    hexes: list[str] = typer.Argument(..., help="EPCs as hex, one or more."),
) -> None:
    from bwms.epc import decode_epc

    any_invalid = False
    for text in hexes:
        result = decode_epc(text)
        any_invalid = any_invalid or "error" in result
        typer.echo(json.dumps(result, ensure_ascii=False))

    if any_invalid:
        raise typer.Exit(1)


@app.command("demo")
def demo(
    once: bool = typer.Option(False, "--once", help="Exit after printing the reconciliation."),
    mqtt_url: str | None = typer.Option(
        None, help="Use this broker instead of starting an embedded one (mqtt://host:port)."
    ),
    data_dir: str | None = typer.Option(None, help="Folder for the demo's databases."),
    port: int = typer.Option(
        8000, help="TCP port the hub API listens on, on 127.0.0.1; 0 picks a free one."
    ),
    broker: str = typer.Option(
        "auto",
        help="Local broker: auto (Mosquitto when installed, else amqtt), mosquitto or amqtt.",
    ),
) -> None:
    """Run a truck through a dock door end to end and print the reconciliation."""
    from bwms.demo import run_demo

    if broker not in ("auto", "mosquitto", "amqtt"):
        raise typer.BadParameter("must be auto, mosquitto or amqtt", param_hint="--broker")
    raise typer.Exit(
        run_demo(once=once, mqtt_url=mqtt_url, data_dir=data_dir, port=port, broker=broker)
    )


@app.command("chaos")
def chaos(
    scenario: str = typer.Argument(
        "all",
        help="Scenario: broker-restart, hub-away, edge-kill, hub-kill, reader-faults, "
        "outbox-quota, or all.",
    ),
    size: str = typer.Option(
        "ci", help="ci: the short form the tests run; long: more portals and rounds."
    ),
    waves: int | None = typer.Option(
        None, min=1, help="Rounds of crossings, instead of the size's."
    ),
    portals: int | None = typer.Option(
        None, min=1, max=16, help="Dock doors of the test site, instead of the size's."
    ),
    seed: int | None = typer.Option(
        None, help="Seed of the fault timing, to repeat a run; random when unset."
    ),
) -> None:
    """Stream tag crossings through reader, edge, broker and hub while breaking parts.

    Prints one row per scenario variant: tags expected, stored, lost, duplicated.
    Exits with status 1 on any loss or duplicate, or a part that stopped running,
    and 2 when a scenario cannot run (no mosquitto binary, say).
    """
    import sys

    from pydantic import ValidationError
    from rich.console import Console

    from bwms.chaos import ChaosError, run_chaos, scenario_names, settings_for

    if size not in ("ci", "long"):
        raise typer.BadParameter("must be ci or long", param_hint="--size")
    overrides = {"waves": waves, "portals": portals, "seed": seed}
    try:
        names = scenario_names(scenario)
        settings = settings_for(
            size,  # type: ignore[arg-type]
            **{name: value for name, value in overrides.items() if value is not None},
        )
    except (ChaosError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    # A table wider than a pipe's default 80 columns stays readable in CI logs.
    console = Console(width=None if sys.stdout.isatty() else 130)
    raise typer.Exit(run_chaos(names, settings, console))
