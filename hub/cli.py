"""`bwms hub …` and `bwms manifest …`: the hub service and its manifests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

hub_app = typer.Typer(help="Hub service: ingest, manifests, API.", no_args_is_help=True)
manifest_app = typer.Typer(
    help="Expected manifests of receipts and shipments.", no_args_is_help=True
)

logger = logging.getLogger(__name__)


@hub_app.command("run")
def run(
    config: Path = typer.Option(
        ...,
        "--config",
        help="Site TOML file, the same one the site's edge daemons load.",
    ),
    database_url: str | None = typer.Option(
        None,
        help="SQLAlchemy URL; default SQLite in --data-dir (env BWMS_HUB_DATABASE_URL).",
    ),
    data_dir: Path | None = typer.Option(
        None, help="Folder of the default SQLite database (env BWMS_HUB_DATA_DIR)."
    ),
    mqtt_url: str | None = typer.Option(
        None,
        help="Broker URL, mqtt://host:port or mqtts://host:port (env BWMS_HUB_MQTT_URL).",
    ),
    host: str | None = typer.Option(
        None,
        help="Address the HTTP API binds to; default 127.0.0.1 (env BWMS_HUB_API_HOST).",
    ),
    port: int | None = typer.Option(
        None, help="TCP port of the HTTP API; default 8000 (env BWMS_HUB_API_PORT)."
    ),
) -> None:
    """Run the hub: store movements from MQTT and serve the HTTP API until Ctrl-C."""
    from bwms.site import SiteError
    from hub.app import HubError, serve
    from hub.ingest import IngestError
    from hub.settings import HubSettings
    from hub.storage.db import StorageError

    overrides: dict[str, Any] = {"site_file": config}
    for name, value in (
        ("database_url", database_url),
        ("data_dir", data_dir),
        ("mqtt_url", mqtt_url),
        ("api_host", host),
        ("api_port", port),
    ):
        if value is not None:
            overrides[name] = value
    try:
        settings = HubSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid hub settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc

    try:
        asyncio.run(serve(settings))
    except (SiteError, StorageError, IngestError, HubError) as exc:
        typer.echo(f"hub failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        logger.info("hub: interrupted")


@manifest_app.command("import")
def manifest_import(
    file: Path = typer.Argument(
        ..., help="CSV file: a header row, then one row per manifest line."
    ),
    database_url: str | None = typer.Option(
        None,
        help="SQLAlchemy URL; default SQLite in the data folder (env BWMS_HUB_DATABASE_URL).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Site TOML file whose portals the manifests name (env BWMS_HUB_SITE_FILE).",
    ),
    encoding: str = typer.Option(
        "utf-8-sig",
        help="Text encoding of the file, e.g. gb18030; the default also skips a UTF-8 BOM.",
    ),
) -> None:
    """Import every manifest of a CSV file, or none of them if any row is invalid.

    Exit status 0: all imported. 2: the file has issues, each printed with its CSV
    line number. 1: the site file, the CSV file or the database cannot be used.
    """
    from hub.manifests.importer import run_import
    from hub.manifests.schemas import DEFAULT_HS_CODE_DIGITS
    from hub.settings import HubSettings

    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    if config is not None:
        overrides["site_file"] = config
    try:
        settings = HubSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid hub settings:\n{exc}", err=True)
        raise typer.Exit(1) from exc

    # NOTE: falls back to the default until HubSettings carries `hs_code_digits`.
    hs_code_digits = int(getattr(settings, "hs_code_digits", DEFAULT_HS_CODE_DIGITS))
    raise typer.Exit(
        run_import(
            file,
            database_url=settings.resolved_database_url(),
            site_file=settings.site_file,
            hs_code_digits=hs_code_digits,
            encoding=encoding,
        )
    )
