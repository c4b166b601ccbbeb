"""`bwms edge …`: the edge daemon and its offline replay."""

from pathlib import Path

import typer

edge_app = typer.Typer(help="Edge daemon of one portal.", no_args_is_help=True)


@edge_app.command("replay")
def replay_command(
    config: Path = typer.Option(..., "--config", help="Site file (TOML)."),
    portal: str = typer.Option(..., "--portal", help="Portal id in the site file."),
    reads: Path = typer.Option(
        ...,
        "--reads",
        help="Reads CSV with the columns time_s,antenna,epc,rssi_dbm[,phase_deg].",
    ),
    epoch: str | None = typer.Option(
        None,
        "--epoch",
        help="Start time for relative time_s values (below 1e9 s), as RFC 3339 "
        "with an offset or as Unix epoch seconds. Default: the time the command "
        "starts. Times of 1e9 s and above are epoch seconds already.",
    ),
    crossings: bool = typer.Option(
        False, "--crossings", help="Also print crossing notices, each on its own line."
    ),
) -> None:
    """Print the movement events a reads file produces, one JSON line each.

    Each line is the payload exactly as the daemon would publish it, with seq
    from 1. Exits with status 2 and a message on an invalid site file, portal,
    epoch or reads file row.
    """
    import time

    from bwms.contract import encode
    from bwms.site import SiteError, load_site
    from drivers.llrp.reads import ReadsFileError, read_reads_file
    from edge.replay import ReplayError, parse_epoch, replay

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(2)

    try:
        epoch_us = time.time_ns() // 1000 if epoch is None else parse_epoch(epoch)
    except ReplayError as exc:
        raise fail(f"--epoch: {exc}") from exc

    # replay() reads and checks every row before it yields, so collecting the
    # payloads first keeps output errors apart from reads-file errors.
    try:
        site = load_site(config)
        payloads = list(
            replay(
                site,
                portal,
                read_reads_file(reads),
                epoch_us=epoch_us,
                include_crossings=crossings,
            )
        )
    except (SiteError, ReadsFileError) as exc:
        raise fail(str(exc)) from exc
    except ReplayError as exc:
        raise fail(f"{reads}: {exc}") from exc
    except OSError as exc:
        raise fail(f"cannot read reads file {reads}: {exc.strerror}") from exc

    for payload in payloads:
        typer.echo(encode(payload).decode())
