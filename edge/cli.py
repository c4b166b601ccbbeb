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


@edge_app.command("run")
def run_command(
    config: Path = typer.Option(..., "--config", help="Site file (TOML)."),
    portal: str = typer.Option(..., "--portal", help="Portal id in the site file."),
    mqtt_url: str | None = typer.Option(
        None,
        "--mqtt-url",
        help="Broker URL, mqtt://host:port or mqtts://host:port; "
        "default BWMS_MQTT_URL or mqtt://127.0.0.1:1883.",
    ),
    outbox: Path | None = typer.Option(
        None,
        "--outbox",
        help="Outbox SQLite file; default BWMS_OUTBOX_PATH or outbox.sqlite3.",
    ),
    reader_host: str | None = typer.Option(
        None, "--reader-host", help="Reader host, instead of the site file's."
    ),
    reader_port: int | None = typer.Option(
        None, "--reader-port", help="Reader LLRP port, instead of the site file's."
    ),
) -> None:
    """Run the edge daemon of one portal until SIGINT or SIGTERM.

    Broker credentials and TLS come from BWMS_MQTT_* variables, outbox settings from
    BWMS_OUTBOX_*, and the reader connection policy from BWMS_READER_*.
    """
    import asyncio
    import signal

    from pydantic import ValidationError

    from bwms.config import describe_errors
    from bwms.site import SiteError, load_site
    from edge.daemon import ReaderSettings, run_daemon
    from edge.settings import MqttSettings, OutboxSettings

    try:
        site = load_site(config)
        site.portal(portal)
        # Options given on the command line win over the environment.
        mqtt = MqttSettings.model_validate({"url": mqtt_url} if mqtt_url else {})
        box = OutboxSettings.model_validate({"path": outbox} if outbox else {})
        overrides = {"host": reader_host, "port": reader_port}
        reader = ReaderSettings.model_validate(
            {k: v for k, v in overrides.items() if v is not None}
        )
    except SiteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        typer.echo(f"error: {describe_errors(exc)}", err=True)
        raise typer.Exit(2) from exc

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await run_daemon(site, portal, mqtt=mqtt, outbox=box, reader=reader)
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
