"""The hub application: FastAPI routes, the MQTT consumer and their lifecycle.

`create_app` builds the ASGI app; its lifespan migrates the database, starts the
consumer and stops both. `serve` runs it under uvicorn until a signal stops it.
`HubRuntime` runs the same server inside the caller's event loop and can be
stopped from code, for the demo and for tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI

from bwms import __version__
from bwms.site import load_site
from hub.api.nul import RejectNulMiddleware
from hub.api import audit, auth, deadletters, health, manifests, movements, users
from hub.auth.deps import AuthContext
from hub.auth.keys import KeyFileError, load_key
from hub.ingest import MovementConsumer
from hub.settings import HubSettings
from hub.storage.db import Database

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


class HubError(Exception):
    """The hub could not start or stopped unexpectedly."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def auth_context(
    settings: HubSettings, clock: Callable[[], datetime] | None = None
) -> AuthContext:
    """Load the token and audit keys and build the app's sign-in context.

    Raises HubError when a key file cannot be read or created.
    """
    try:
        jwt_key = load_key(settings.auth_jwt_key, settings.resolved_jwt_key_file())
        audit_key = load_key(settings.audit_key, settings.resolved_audit_key_file())
    except KeyFileError as exc:
        raise HubError(str(exc)) from exc
    return AuthContext(
        settings=settings,
        jwt_key=jwt_key,
        audit_key=audit_key,
        clock=clock or _utc_now,
        trusted_proxies=tuple(
            ipaddress.ip_network(item, strict=False)
            for item in settings.auth_trusted_proxies
        ),
    )


def create_app(
    settings: HubSettings,
    *,
    start_consumer: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the hub's ASGI app for one site.

    The site file and the signing keys are loaded here, so a bad one raises
    SiteError or HubError before anything listens. The database is migrated and
    the consumer started by the app's lifespan, so they run under any ASGI server
    that runs lifespan events. `clock` replaces the current UTC time in sign-in
    and audit records, for tests.
    """
    site = load_site(settings.site_file)
    auth_state = auth_context(settings, clock)
    database = Database(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.migrate()
        consumer = (
            MovementConsumer(settings, site, database) if start_consumer else None
        )
        if consumer is not None:
            await consumer.start()
        app.state.consumer = consumer
        try:
            yield
        finally:
            if consumer is not None:
                await consumer.stop()
            app.state.consumer = None
            await database.close()

    app = FastAPI(
        title="Bonded warehouse hub",
        version=__version__,
        description="Movements from RFID portals, manifests and the bonded ledger.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.add_middleware(RejectNulMiddleware)
    app.state.settings = settings
    app.state.site = site
    app.state.db = database
    app.state.consumer = None
    app.state.auth = auth_state
    for router in (
        auth.router,
        users.router,
        movements.router,
        deadletters.router,
        health.router,
        manifests.router,
        audit.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    return app


class HubRuntime:
    """The hub's HTTP server and consumer, run as a task in the caller's event loop."""

    def __init__(self, settings: HubSettings, *, start_consumer: bool = True) -> None:
        self.settings = settings
        self.app = create_app(settings, start_consumer=start_consumer)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        if self.port is None:
            raise HubError("the hub is not running")
        host = self.settings.api_host
        bracketed = f"[{host}]" if ":" in host else host
        return f"{self.settings.api_scheme}://{bracketed}:{self.port}"

    @property
    def consumer(self) -> MovementConsumer:
        """The running MQTT consumer."""
        consumer: MovementConsumer | None = self.app.state.consumer
        if consumer is None:
            raise HubError("the hub runs without an MQTT consumer")
        return consumer

    async def start(self) -> None:
        """Bind the API port, migrate, start the consumer, and return once serving."""
        if self._task is not None:
            raise HubError("the hub is already running")
        tls = self.settings.api_tls_cert_file, self.settings.api_tls_key_file
        config = uvicorn.Config(
            self.app,
            host=self.settings.api_host,
            port=self.settings.api_port,
            lifespan="on",
            log_config=None,
            ssl_certfile=str(tls[0]) if tls[0] is not None else None,
            ssl_keyfile=str(tls[1]) if tls[1] is not None else None,
        )
        try:
            sock = config.bind_socket()
        except SystemExit as exc:
            # uvicorn logs the bind error and exits; the process must not.
            raise HubError(
                f"cannot listen on {self.settings.api_host}:{self.settings.api_port}"
            ) from exc
        self.port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(
            self._serve(self._server, sock), name="hub-http"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        logger.info(
            "hub %s: API on %s, database %s",
            self.app.state.site.site.id,
            self.url,
            self.app.state.db.display_url,
        )

    @staticmethod
    async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits when the lifespan startup fails; it has logged why.
            raise HubError("hub start-up failed; see the error logged above") from exc
        finally:
            sock.close()

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until the broker granted the consumer's subscriptions."""
        await self.consumer.wait_subscribed(timeout_s)

    async def wait_stored(
        self, target: int | Iterable[str], timeout_s: float = 10.0
    ) -> None:
        """Wait until these event_ids, or this many movements, are stored."""
        await self.consumer.wait_stored(target, timeout_s)

    async def wait_closed(self) -> None:
        """Wait until the server ends, e.g. after SIGINT or SIGTERM."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop serving, store what the consumer received, and close the database."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            self._server = None
            self.port = None


async def serve(settings: HubSettings) -> None:
    """Run the hub until SIGINT or SIGTERM."""
    runtime = HubRuntime(settings)
    await runtime.start()
    logger.info(
        "hub %s: started; API docs at %s/docs",
        runtime.app.state.site.site.id,
        runtime.url,
    )
    try:
        await runtime.wait_closed()
    finally:
        await runtime.stop()
    logger.info("hub %s: stopped", runtime.app.state.site.site.id)
