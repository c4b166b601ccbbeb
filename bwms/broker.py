"""A local MQTT broker for the demo and for machines without one, and broker accounts.

A spawned Mosquitto is used when the `mosquitto` binary is on PATH, and the
pure-Python amqtt broker otherwise. Either one listens on 127.0.0.1 only and accepts
only the users it is given: anonymous clients are rejected.

Given an access list (`acl`), either backend also limits each account to its own
topics. `site_accounts` derives that list from a site file. Each edge daemon account
may publish only its own portal's movement, crossing and status, and subscribe only
to its own portal's ack. The hub account may subscribe to the movement and status
of every portal of its site and publish acks. `render_mosquitto_acl` turns the same
list into the Mosquitto ACL file of a production deployment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin

from bwms.contract import Kind, subscription, topic
from bwms.site import Site

logger = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The local broker could not be started, or its accounts are invalid."""


@dataclass(frozen=True)
class AccountRules:
    """Topics one broker account may publish to and topic filters it may subscribe to.

    Everything not listed is denied. Filters may contain `+` and `#`.
    """

    username: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


def hub_username(site_id: str) -> str:
    """Return the broker user name of the hub of one site."""
    return f"hub.{site_id}"


def edge_username(site_id: str, portal_id: str) -> str:
    """Return the broker user name of the edge daemon of one portal."""
    return f"edge.{site_id}.{portal_id}"


def site_accounts(site: Site) -> list[AccountRules]:
    """Build the hub account and one edge account per portal of a site.

    The rules are listed per user because a Mosquitto `pattern` line substitutes
    %u only as a whole topic level (mosquitto.conf(5), acl_file), so it cannot
    turn `edge.{site}.{portal}` into the two levels `{site}/{portal}`.
    """
    site_id = site.site.id
    hub = AccountRules(
        username=hub_username(site_id),
        publish=(subscription(Kind.ACK, site=site_id),),
        subscribe=(
            subscription(Kind.MOVEMENT, site=site_id),
            subscription(Kind.STATUS, site=site_id),
        ),
    )
    edges = [
        AccountRules(
            username=edge_username(site_id, portal.id),
            publish=tuple(
                topic(site_id, portal.id, kind)
                for kind in (Kind.MOVEMENT, Kind.CROSSING, Kind.STATUS)
            ),
            subscribe=(topic(site_id, portal.id, Kind.ACK),),
        )
        for portal in site.portals
    ]
    return [hub, *edges]


def _check_username(name: str) -> None:
    # Mosquitto's password file splits each line at the first colon, and both its
    # password and ACL files are line based.
    if not name or ":" in name or any(c.isspace() or ord(c) < 32 for c in name):
        raise BrokerError(
            f"invalid broker user name {name!r}: it must be non-empty without "
            "colons, spaces or control characters"
        )


def _check_acl(acl: Sequence[AccountRules], users: dict[str, str]) -> None:
    names = [rules.username for rules in acl]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BrokerError(f"access list names these users more than once: {repeated}")
    unknown = sorted(set(names) - set(users))
    if unknown:
        raise BrokerError(
            f"access list names users the broker does not have: {unknown}"
        )
    for rules in acl:
        for value in (*rules.publish, *rules.subscribe):
            if not value or "\n" in value or "\r" in value:
                raise BrokerError(f"invalid topic {value!r} for user {rules.username}")


def render_mosquitto_acl(accounts: Iterable[AccountRules], *, header: str = "") -> str:
    """Render accounts as a Mosquitto `acl_file`: one `user` block per account.

    `header` lines are written first as comments. Mosquitto denies whatever no
    line of the file grants (mosquitto.conf(5), acl_file).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for rules in accounts:
        _check_username(rules.username)
        if lines:
            lines.append("")
        lines.append(f"user {rules.username}")
        # `write` allows PUBLISH only and `read` allows SUBSCRIBE and delivery only.
        lines += [f"topic write {name}" for name in rules.publish]
        lines += [f"topic read {name}" for name in rules.subscribe]
    return "\n".join(lines) + "\n"


@dataclass
class LocalBroker:
    """A running local broker: its URL, the users it accepts and how to stop it.

    `acl` is None when every user may publish and subscribe to every topic.
    """

    host: str
    port: int
    users: dict[str, str]
    backend: str
    acl: tuple[AccountRules, ...] | None = None
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
                raise BrokerError(
                    f"broker did not listen on {host}:{port} within {timeout_s} s"
                )
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def start_local_broker(
    folder: Path,
    users: dict[str, str],
    *,
    port: int | None = None,
    prefer: str = "auto",
    acl: Sequence[AccountRules] | None = None,
) -> LocalBroker:
    """Start a broker on 127.0.0.1 that accepts exactly `users` (name → password).

    `prefer` is "auto" (Mosquitto when on PATH, else amqtt), "mosquitto" or "amqtt".
    With `acl`, each user may publish and subscribe only as its rules allow, and a
    user without rules may do neither. Without it, every user may do both on any
    topic. Raises BrokerError for an invalid user name or access list, or when the
    broker does not start.
    """
    for name in users:
        _check_username(name)
    if acl is not None:
        _check_acl(acl, users)
    folder.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    passwd_tool = shutil.which("mosquitto_passwd")
    rules = None if acl is None else tuple(acl)
    if prefer == "mosquitto" or (prefer == "auto" and mosquitto and passwd_tool):
        if not (mosquitto and passwd_tool):
            raise BrokerError("mosquitto and mosquitto_passwd must both be on PATH")
        return await _start_mosquitto(
            mosquitto, passwd_tool, folder, users, port, rules
        )
    return await _start_amqtt(folder, users, port, rules)


def write_mosquitto_password_file(
    path: Path,
    users: dict[str, str],
    passwd_tool: Sequence[str] = ("mosquitto_passwd",),
) -> None:
    """Write a Mosquitto password file of `users` (name → password), mode 0600.

    The passwords go in plain text to a private file next to `path` first, which
    `passwd_tool -U FILE` then hashes in place, so they never appear on a command
    line. Raises BrokerError when the tool fails.
    """
    for name in users:
        _check_username(name)
    plain = path.with_name(f".{path.name}.tmp")
    plain.unlink(missing_ok=True)
    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{name}:{password}\n" for name, password in users.items())
    command = [*passwd_tool, "-U", str(plain)]
    try:
        subprocess.run(command, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        plain.unlink(missing_ok=True)
        stderr = getattr(exc, "stderr", None) or b""
        detail = stderr.decode(errors="replace").strip()
        raise BrokerError(
            f"{command[0]} could not hash {path}: {exc} {detail}"
        ) from exc
    os.chmod(plain, 0o600)
    os.replace(plain, path)


async def _start_mosquitto(
    binary: str,
    passwd_tool: str,
    folder: Path,
    users: dict[str, str],
    port: int,
    acl: tuple[AccountRules, ...] | None,
) -> LocalBroker:
    password_file = folder / "passwd"
    write_mosquitto_password_file(password_file, users, (passwd_tool,))
    acl_lines: list[str] = []
    if acl is not None:
        acl_file = folder / "acl"
        acl_file.write_text(render_mosquitto_acl(acl))
        acl_lines = [f"acl_file {acl_file}"]
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {password_file}",
                *acl_lines,
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
    # A session of its own keeps a terminal's Ctrl-C away from the broker, so it
    # stays up until the clients above it have stopped.
    process = subprocess.Popen(
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await _wait_listening("127.0.0.1", port, 10.0)
    except BrokerError:
        process.kill()
        log = (folder / "mosquitto.log").read_text(errors="replace")[-2000:]
        raise BrokerError(
            f"mosquitto did not start on 127.0.0.1:{port}; its log:\n{log}"
        )
    logger.info("broker mosquitto listening on 127.0.0.1:%s", port)
    return LocalBroker(
        "127.0.0.1",
        port,
        dict(users),
        "mosquitto",
        acl=acl,
        _process=process,
        _folder=folder,
    )


def _run_as_invoking_user() -> list[str]:
    # Started as root, Mosquitto switches to the `mosquitto` user, which cannot write
    # to a folder the caller owns. So it stays the invoking user instead.
    return ["user root"] if os.geteuid() == 0 else []


class WillTopicCheckPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt plugin that rejects a CONNECT whose will topic the user may not publish.

    amqtt 0.12 sends a will message without asking the topic plugins, so without
    this check a client could publish through its will what its access list denies.
    """

    @dataclass
    class Config:
        """User name → topic filters the user may publish to, as in `publish_acl`."""

        publish_acl: dict[str, list[str]] = field(default_factory=dict)

    async def authenticate(self, *, session: Any) -> bool | None:
        if not session.will_flag:
            return True
        allowed = self.config.publish_acl.get(session.username or "", [])
        permitted = any(
            TopicAccessControlListPlugin.topic_ac(session.will_topic or "", name)
            for name in allowed
        )
        if not permitted:
            logger.warning(
                "%s: connect rejected, user %s may not publish its will topic %s",
                session.client_id,
                session.username,
                session.will_topic,
            )
        return permitted


def _amqtt_acl_plugins(acl: tuple[AccountRules, ...]) -> dict[str, Any]:
    publish = {rules.username: list(rules.publish) for rules in acl}
    subscribe = {rules.username: list(rules.subscribe) for rules in acl}
    # amqtt 0.12 lets every publish through when its publish list is empty, so an
    # access list in which nobody may publish gets an entry for the empty user
    # name, which no account can have.
    publish = publish or {"": []}
    return {
        # NOTE: amqtt 0.12's plugin Config has fields for `publish_acl` and for the
        # deprecated `acl` (subscriptions) only. Its `subscribe-acl` and
        # `receive-acl` options are read only from the legacy `topic-check` config
        # section, so delivery is not filtered here and an exact subscription list is
        # what keeps an edge from reading other portals' acks.
        "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
            "publish_acl": publish,
            "acl": subscribe,
        },
        f"{__name__}.WillTopicCheckPlugin": {"publish_acl": publish},
    }


async def _start_amqtt(
    folder: Path, users: dict[str, str], port: int, acl: tuple[AccountRules, ...] | None
) -> LocalBroker:
    from amqtt.broker import Broker
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    # A local broker is meant for accounts with random 144-bit passwords from
    # `new_password`, which no guessing finds whatever the hash costs, so a cheap
    # Argon2 setting (1 pass, 8 MiB) keeps start-up and every CONNECT fast. The
    # verifier reads the setting from each hash.
    hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),))
    password_file = folder / "amqtt-passwd"
    password_file.write_text(
        "".join(f"{name}:{hasher.hash(pw)}\n" for name, pw in users.items())
    )
    os.chmod(password_file, 0o600)
    plugins: dict[str, Any] = {
        "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        "amqtt.plugins.authentication.FileAuthPlugin": {
            "password_file": str(password_file)
        },
    }
    if acl is not None:
        plugins.update(_amqtt_acl_plugins(acl))
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": plugins,
    }
    try:
        with warnings.catch_warnings():
            # The subscription list has to use the deprecated `acl` key, see above.
            warnings.filterwarnings(
                "ignore",
                message="The 'acl' option is deprecated",
                category=DeprecationWarning,
            )
            broker = Broker(config)
        await broker.start()
    except Exception as exc:
        raise BrokerError(
            f"amqtt broker did not start on 127.0.0.1:{port}: {exc}"
        ) from exc
    logger.info("broker amqtt listening on 127.0.0.1:%s", port)
    return LocalBroker(
        "127.0.0.1", port, dict(users), "amqtt", acl=acl, _amqtt=broker, _folder=folder
    )
