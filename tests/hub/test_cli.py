"""`bwms hub run` as a real process: it starts, serves, logs where, and stops on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hub.support import purge_session
from tests.support.brokers import free_port


@pytest.fixture
def hub_client_id(shared_broker: str, site_id: str) -> Iterator[str]:
    client_id = f"bwms-hub-{site_id}"
    yield client_id
    purge_session(shared_broker, client_id)


def test_hub_run_serves_until_sigint(
    site_file: Path, tmp_path: Path, shared_broker: str, hub_client_id: str
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from bwms.cli import app; app()",
        "hub",
        "run",
        "--config",
        str(site_file),
        "--data-dir",
        str(tmp_path / "data"),
        "--mqtt-url",
        shared_broker,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                if health.json()["mqtt"]["subscribed"]:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert health is not None
    assert health.status_code == 200
    assert process.returncode == 0
    assert f"API on http://127.0.0.1:{port}" in log
    assert f"database sqlite+aiosqlite:///{tmp_path}/data/hub.sqlite3" in log
    assert f"connected to broker {shared_broker}" in log
    assert f"hub {hub_client_id}: stopped consuming" in log
