"""A Mosquitto process of the run's own, which the scenarios stop, kill and restart.

It listens on 127.0.0.1 on a port picked once, so clients find it again after each
restart. Nothing else connects to it, so no login is required.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol

from bwms.chaos.errors import ChaosError

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
LISTEN_TIMEOUT_S = 10.0


class Broker(Protocol):
    """The broker interface the harness uses: its URL, start and stop."""

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int, timeout_s: float) -> None:
    """Block until a TCP connect to host:port succeeds, or raise ChaosError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ChaosError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from exc
            time.sleep(0.02)


class MosquittoBroker:
    """Mosquitto on 127.0.0.1, with or without persistence.

    `max_queued` is Mosquitto's `max_queued_messages`, the per-client queue of a
    client that is away; None keeps Mosquitto's default of 1000 (mosquitto.conf(5)).
    With persistence the broker writes its sessions and queues to its folder on a
    clean stop and every second (`autosave_interval 1`), so a killed broker
    loses at most the last second.
    """

    def __init__(
        self, folder: Path, *, persistence: bool, max_queued: int | None = None
    ) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ChaosError(
                "mosquitto is not installed; the fault scenarios need their own "
                "Mosquitto (apt-get install mosquitto)"
            )
        self.binary = binary

        self.persistence = persistence
        self.host = "127.0.0.1"
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {folder}/",
            "autosave_interval 1",
            f"log_dest file {folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # Started as root, Mosquitto drops to its own user, which cannot write
            # the persistence file into this folder.
            lines.append("user root")
        if max_queued is not None:
            lines.append(f"max_queued_messages {max_queued}")

        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(self.host, self.port, LISTEN_TIMEOUT_S)
        except ChaosError as exc:
            self.kill()
            raise ChaosError(
                f"mosquitto did not start: {exc}; {self.log_tail()}"
            ) from exc
        logger.info("broker %s: started (persistence %s)", self.url, self.persistence)

    def stop(self) -> None:
        """Stop with SIGTERM, on which Mosquitto saves its persistence file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop with SIGKILL, as a crash or a power cut would."""
        self._end(signal.SIGKILL)

    def _end(self, signum: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
        logger.info("broker %s: stopped with %s", self.url, signum.name)

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "mosquitto.log"
        if not path.exists():
            return "no mosquitto log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def dropped_messages_logged(self) -> bool:
        """Return whether the log shows that a client's queue overflowed."""
        path = self.folder / "mosquitto.log"
        if not path.exists():
            return False
        # Mosquitto 2.0 logs this notice once per episode of a full client queue.
        return "messages are being dropped" in path.read_text(errors="replace")
