"""The local broker accepts its own users only, on either backend."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bwms.broker import start_local_broker

BACKENDS = ["mosquitto", "amqtt"]


def _connect(port: int, username: str | None, password: str | None) -> int:
    """Connect with paho and return the CONNACK reason code value (0 = accepted)."""
    done = threading.Event()
    result: dict[str, int] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        result["rc"] = reason_code.value
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return result["rc"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_accepts_user(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, "hub", "s3cret-pw")
    finally:
        await broker.stop()
    assert rc == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_rejects_wrong_password(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, "hub", "wrong")
    finally:
        await broker.stop()
    assert rc != 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_rejects_anonymous(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "s3cret-pw"}, prefer=backend)
    try:
        rc = await asyncio.to_thread(_connect, broker.port, None, None)
    finally:
        await broker.stop()
    assert rc != 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_local_broker_listens_on_loopback_only(tmp_path: Path, backend: str) -> None:
    broker = await start_local_broker(tmp_path, {"hub": "pw"}, prefer=backend)
    try:
        assert broker.host == "127.0.0.1"
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    finally:
        await broker.stop()
