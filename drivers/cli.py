"""`bwms sim …`: protocol simulators of the devices at a portal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

sim_app = typer.Typer(
    help="Run device simulators that speak the real protocols.", no_args_is_help=True
)


@sim_app.command("reader")
def sim_reader(
    reads: Path | None = typer.Option(
        None,
        "--reads",
        help="Reads CSV to replay (time_s,antenna,epc,rssi_dbm[,phase_deg]).",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(
        5084, min=0, max=65535, help="TCP port to listen on (LLRP: 5084)."
    ),
    speed: float = typer.Option(
        1.0, min=0.001, help="Replay speed factor; 2 replays twice as fast."
    ),
    loop: bool = typer.Option(False, "--loop", help="Replay the file again and again."),
    impinj: bool = typer.Option(
        False, "--impinj", help="Accept the Impinj LLRP extensions."
    ),
) -> None:
    """Run an LLRP reader simulator until Ctrl-C; clients connect with LLRP over TCP."""
    from drivers.llrp.reads import ReadsFileError
    from drivers.llrp.simulator import serve_reads_file

    try:
        asyncio.run(
            serve_reads_file(
                reads, host=host, port=port, speed=speed, loop_rows=loop, impinj=impinj
            )
        )
    except KeyboardInterrupt:
        logger.info("reader simulator: stopped")
    except (ReadsFileError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1) from exc
