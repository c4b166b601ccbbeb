"""`bwms hub …` and `bwms manifest …`: the hub service and its manifests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from bwms.config import describe_errors

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
    tls_cert: Path | None = typer.Option(
        None,
        help="PEM certificate of the API; with --tls-key the API serves HTTPS "
        "(env BWMS_HUB_API_TLS_CERT_FILE).",
    ),
    tls_key: Path | None = typer.Option(
        None, help="PEM private key of the API (env BWMS_HUB_API_TLS_KEY_FILE)."
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
        ("api_tls_cert_file", tls_cert),
        ("api_tls_key_file", tls_key),
    ):
        if value is not None:
            overrides[name] = value
    try:
        settings = HubSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid hub settings:\n{describe_errors(exc)}", err=True)
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
    data_dir: Path | None = typer.Option(
        None,
        help=(
            "Folder of the default SQLite database and of the audit key file "
            "(env BWMS_HUB_DATA_DIR)."
        ),
    ),
) -> None:
    """Import every manifest of a CSV file, or none of them if any row is invalid.

    Exit status 0: all imported. 2: the file has issues, each printed with its CSV
    line number. 1: the site file, the CSV file or the database cannot be used.
    """
    from hub.auth.accounts import operator
    from hub.auth.keys import KeyFileError, load_key
    from hub.manifests.importer import run_import
    from hub.settings import HubSettings

    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    if config is not None:
        overrides["site_file"] = config
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = HubSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid hub settings:\n{describe_errors(exc)}", err=True)
        raise typer.Exit(1) from exc

    hs_code_digits = settings.hs_code_digits
    try:
        audit_key = load_key(settings.audit_key, settings.resolved_audit_key_file())
    except KeyFileError as exc:
        typer.echo(f"cannot load the audit key: {exc}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(
        run_import(
            file,
            database_url=settings.resolved_database_url(),
            site_file=settings.site_file,
            hs_code_digits=hs_code_digits,
            encoding=encoding,
            audit=(audit_key, operator()),
        )
    )


user_app = typer.Typer(help="Users who sign in to the hub API.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The hub's tamper-evident audit trail.", no_args_is_help=True
)

_DATABASE_URL_HELP = (
    "SQLAlchemy URL; default SQLite in --data-dir (env BWMS_HUB_DATABASE_URL)."
)
_DATA_DIR_HELP = (
    "Folder of the default SQLite database and key files (env BWMS_HUB_DATA_DIR)."
)


def _account_settings(database_url: str | None, data_dir: Path | None) -> Any:
    from hub.settings import HubSettings

    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return HubSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid hub settings:\n{describe_errors(exc)}", err=True)
        raise typer.Exit(2) from exc


def _read_password(from_stdin: bool) -> str:
    """Read a new password from stdin or a hidden prompt; never from the arguments."""
    import sys

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            typer.echo("no password on stdin", err=True)
            raise typer.Exit(2)
        return password
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(password)


def _run_account_change(
    database_url: str | None, data_dir: Path | None, change: Any
) -> None:
    """Migrate the database, load the audit key, and run `change(database, key)`."""
    from hub.auth.keys import KeyFileError, load_key
    from hub.auth.service import AuthError
    from hub.storage.db import Database, StorageError

    settings = _account_settings(database_url, data_dir)

    async def run() -> None:
        database = Database(settings.resolved_database_url())
        try:
            await database.migrate()
            key = load_key(settings.audit_key, settings.resolved_audit_key_file())
            await change(database, key)
        finally:
            await database.close()

    try:
        asyncio.run(run())
    except AuthError as exc:
        typer.echo(f"rejected: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (StorageError, KeyFileError) as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(2) from exc


_PASSWORD_STDIN_HELP = "Read the password from the first line of stdin, not a prompt."


@user_app.command("add")
def user_add(
    username: str = typer.Argument(..., help="User name to sign in with."),
    role: str = typer.Option(
        ..., help="admin, keeper, customs, finance, guard or viewer."
    ),
    password_stdin: bool = typer.Option(False, help=_PASSWORD_STDIN_HELP),
    database_url: str | None = typer.Option(None, help=_DATABASE_URL_HELP),
    data_dir: Path | None = typer.Option(None, help=_DATA_DIR_HELP),
) -> None:
    """Create a user; the first admin is created this way at set-up.

    Exit status 0: created. 1: rejected (name taken, unknown role, short password).
    2: the database or the audit key cannot be used.
    """
    from hub.auth.accounts import add_user, operator

    password = _read_password(password_stdin)

    async def change(database: Any, key: bytes) -> None:
        await add_user(database, key, operator(), username, password, role)

    _run_account_change(database_url, data_dir, change)
    typer.echo(f"user {username} created with role {role}")


@user_app.command("passwd")
def user_passwd(
    username: str = typer.Argument(..., help="User whose password is set."),
    password_stdin: bool = typer.Option(False, help=_PASSWORD_STDIN_HELP),
    database_url: str | None = typer.Option(None, help=_DATABASE_URL_HELP),
    data_dir: Path | None = typer.Option(None, help=_DATA_DIR_HELP),
) -> None:
    """Set a user's password; this also unlocks the account and signs it out."""
    from hub.auth.accounts import change_password, operator

    password = _read_password(password_stdin)

    async def change(database: Any, key: bytes) -> None:
        await change_password(database, key, operator(), username, password)

    _run_account_change(database_url, data_dir, change)
    typer.echo(f"password of {username} set")


@user_app.command("role")
def user_role(
    username: str = typer.Argument(..., help="User whose role changes."),
    role: str = typer.Argument(
        ..., help="admin, keeper, customs, finance, guard or viewer."
    ),
    database_url: str | None = typer.Option(None, help=_DATABASE_URL_HELP),
    data_dir: Path | None = typer.Option(None, help=_DATA_DIR_HELP),
) -> None:
    """Change a user's role; the user is signed out everywhere."""
    from hub.auth.accounts import change_user, operator

    async def change(database: Any, key: bytes) -> None:
        await change_user(database, key, operator(), username, role=role)

    _run_account_change(database_url, data_dir, change)
    typer.echo(f"role of {username} set to {role}")


@user_app.command("disable")
def user_disable(
    username: str = typer.Argument(..., help="User who may no longer sign in."),
    enable: bool = typer.Option(False, "--enable", help="Enable the user again."),
    database_url: str | None = typer.Option(None, help=_DATABASE_URL_HELP),
    data_dir: Path | None = typer.Option(None, help=_DATA_DIR_HELP),
) -> None:
    """Disable a user, who is signed out everywhere; --enable reverses it."""
    from hub.auth.accounts import change_user, operator

    async def change(database: Any, key: bytes) -> None:
        await change_user(database, key, operator(), username, disabled=not enable)

    _run_account_change(database_url, data_dir, change)
    typer.echo(f"user {username} {'enabled' if enable else 'disabled'}")


@audit_app.command("verify")
def audit_verify(
    database_url: str | None = typer.Option(None, help=_DATABASE_URL_HELP),
    data_dir: Path | None = typer.Option(None, help=_DATA_DIR_HELP),
) -> None:
    """Check every link of the audit chain and its signed head.

    Exit status 0: intact. 1: broken, with the first broken record named.
    2: the database or the audit key cannot be used.
    """
    from hub.audit.chain import ChainReport, verify_chain
    from hub.auth.keys import KeyFileError, load_key
    from hub.storage.db import Database, StorageError

    settings = _account_settings(database_url, data_dir)

    async def run() -> ChainReport:
        key = load_key(
            settings.audit_key, settings.resolved_audit_key_file(), create=False
        )
        database = Database(settings.resolved_database_url())
        try:
            async with database.session() as session:
                return await verify_chain(session, key)
        finally:
            await database.close()

    try:
        report = asyncio.run(run())
    except (StorageError, KeyFileError) as exc:
        typer.echo(f"audit verify failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    if report.ok:
        typer.echo(f"OK: {report.records} audit records, chain intact")
        return
    typer.echo(
        f"BROKEN at record {report.broken_seq}: {report.reason} "
        f"({report.records} records checked before it)"
    )
    raise typer.Exit(1)
