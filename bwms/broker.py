"""A local MQTT broker for the demo and for machines without one.

A spawned Mosquitto is used when the `mosquitto` binary is on PATH, and the
pure-Python amqtt broker otherwise. Either one listens on 127.0.0.1 only and accepts
only the users it is given: anonymous clients are refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The local broker could not be started."""


@dataclass
class LocalBroker:
    """A running local broker: its URL, the users it accepts and how to stop it."""

    host: str
    port: int
    users: dict[str, str]
    backend: str
    _process: subprocess.Popen[bytes] | None = None
    _amqtt: Any = None
    _folder: Path | None = None
    _extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._amqtt is not None:
            await self._amqtt.shutdown()
        logger.info("broker %s on %s:%s stopped", self.backend, self.host, self.port)


def new_password() -> str:
    """Return a random password for a generated broker account."""
    return secrets.token_urlsafe(18)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(host: str, port: int, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise BrokerError(f"broker did not listen on {host}:{port} within {timeout_s} s")
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def start_local_broker(
    folder: Path, users: dict[str, str], *, port: int | None = None, prefer: str = "auto"
) -> LocalBroker:
    """Start a broker on 127.0.0.1 that accepts exactly `users` (name → password).

    `prefer` is "auto" (Mosquitto when on PATH, else amqtt), "mosquitto" or "amqtt".
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    passwd_tool = shutil.which("mosquitto_passwd")
    if prefer == "mosquitto" or (prefer == "auto" and mosquitto and passwd_tool):
        if not (mosquitto and passwd_tool):
            raise BrokerError("mosquitto and mosquitto_passwd must both be on PATH")
        return await _start_mosquitto(mosquitto, passwd_tool, folder, users, port)
    return await _start_amqtt(folder, users, port)


async def _start_mosquitto(
    binary: str, passwd_tool: str, folder: Path, users: dict[str, str], port: int
) -> LocalBroker:
    password_file = folder / "passwd"
    password_file.write_text("")
    os.chmod(password_file, 0o600)
    for name, password in users.items():
        # -b takes the password from the command line; the file is private to this run.
        subprocess.run(
            [passwd_tool, "-b", str(password_file), name, password],
            check=True,
            capture_output=True,
        )
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {password_file}",
                "persistence true",
                f"persistence_location {folder}/",
                f"log_dest file {folder}/mosquitto.log",
                # The hub's queue must hold a whole outage's worth of movements.
                "max_queued_messages 0",
                *_run_as_invoking_user(),
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await _wait_listening("127.0.0.1", port, 10.0)
    except BrokerError:
        process.kill()
        log = (folder / "mosquitto.log").read_text(errors="replace")[-2000:]
        raise BrokerError(f"mosquitto did not start on 127.0.0.1:{port}; its log:\n{log}")
    logger.info("broker mosquitto listening on 127.0.0.1:%s", port)
    return LocalBroker("127.0.0.1", port, dict(users), "mosquitto", _process=process, _folder=folder)


def _run_as_invoking_user() -> list[str]:
    # Started as root, Mosquitto drops to the `mosquitto` user and then cannot write
    # to a folder the caller owns; keep it as the invoking user instead.
    return ["user root"] if os.geteuid() == 0 else []


async def _start_amqtt(folder: Path, users: dict[str, str], port: int) -> LocalBroker:
    from amqtt.broker import Broker
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    hasher = PasswordHash((Argon2Hasher(),))
    password_file = folder / "amqtt-passwd"
    password_file.write_text(
        "".join(f"{name}:{hasher.hash(pw)}\n" for name, pw in users.items())
    )
    os.chmod(password_file, 0o600)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)},
        },
    }
    broker = Broker(config)
    try:
        await broker.start()
    except Exception as exc:
        raise BrokerError(f"amqtt broker did not start on 127.0.0.1:{port}: {exc}") from exc
    logger.info("broker amqtt listening on 127.0.0.1:%s", port)
    return LocalBroker("127.0.0.1", port, dict(users), "amqtt", _amqtt=broker, _folder=folder)
