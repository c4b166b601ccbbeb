"""Fixtures of the deployment tests: make-passwords output and the compose broker.

The tests run without Docker, so `compose_broker` plays the compose `mosquitto`
service with a Mosquitto process of its own. That process loads the shipped
mosquitto.conf, with only its listener and paths moved into a private folder, the
shipped ACL and the password file that make-passwords generated.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.brokers import free_port, wait_listening

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"
DEMO_SITE = REPO / "firmware-configs" / "sites" / "demo.toml"


def run_make_passwords(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run compose/make-passwords with this interpreter and capture its output."""
    return subprocess.run(
        [sys.executable, str(COMPOSE / "make-passwords"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@dataclass
class Generated:
    """Files make-passwords wrote for the demo site, and its output."""

    secrets: Path
    acl: Path
    stdout: str
    stderr: str

    def account(self, env_name: str) -> tuple[str, str]:
        """Return (user name, password) from an env file such as "edge-door-3"."""
        values = read_env(self.secrets / f"{env_name}.env")
        if env_name == "hub":
            return values["BWMS_HUB_MQTT_USERNAME"], values["BWMS_HUB_MQTT_PASSWORD"]
        return values["BWMS_MQTT_USERNAME"], values["BWMS_MQTT_PASSWORD"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    folder = tmp_path_factory.mktemp("deploy")
    secrets, acl = folder / "secrets", folder / "acl"
    result = run_make_passwords("--site", DEMO_SITE, "--secrets", secrets, "--acl", acl)
    assert result.returncode == 0, result.stderr
    return Generated(secrets, acl, result.stdout, result.stderr)


def _mosquitto_service() -> dict[str, object]:
    document = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    service: dict[str, object] = document["services"]["mosquitto"]
    return service


def _move(text: str, root: Path) -> str:
    # Container paths /mosquitto/... and /run/bwms-broker/... move under `root`.
    return re.sub(
        r"(?<![\w.-])/(mosquitto|run/bwms-broker)(?=/|\b)", f"{root}/\\1", text
    )


@dataclass
class ComposeBroker:
    """The compose broker's Mosquitto process on 127.0.0.1 and a free port."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return (self.root / "mosquitto.log").read_text(errors="replace")


@pytest.fixture
def compose_broker(generated: Generated) -> Iterator[ComposeBroker]:
    # A folder of mkdtemp's rather than tmp_path, because the broker started as root
    # drops to the mosquitto user, which must be able to enter the folder.
    root = Path(tempfile.mkdtemp(prefix="bwms-compose-"))
    os.chmod(root, 0o711)
    port = free_port()
    service = _mosquitto_service()
    sources = {
        "./mosquitto/mosquitto.conf": COMPOSE / "mosquitto" / "mosquitto.conf",
        "./mosquitto/acl": COMPOSE / "mosquitto" / "acl",
        "./secrets/mosquitto/passwd": generated.secrets / "mosquitto" / "passwd",
    }
    for volume in service["volumes"]:  # type: ignore[attr-defined]
        source, target = volume.split(":")[:2]
        destination = Path(_move(target, root))
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source in sources:
            shutil.copy(sources[source], destination)
        else:
            destination.mkdir(parents=True, exist_ok=True)  # a named volume

    conf = root / "mosquitto" / "config" / "mosquitto.conf"
    text = conf.read_text()
    adapted, count = re.subn(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    assert count == 1, "mosquitto.conf has no `listener 1883` line to adapt"
    conf.write_text(_move(adapted, root))

    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"}
    log = (root / "mosquitto.log").open("wb")
    if os.geteuid() == 0 and _has_user("mosquitto"):
        # As root, run the service's own start script, which hands the files to
        # the mosquitto user before the broker drops to it.
        script = _move(service["command"][0], root)  # type: ignore[index]
        argv = [*service["entrypoint"], script]  # type: ignore[misc]
    else:
        argv = ["mosquitto", "-c", str(conf)]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    broker = ComposeBroker(port, root, process)
    try:
        wait_listening("127.0.0.1", port, timeout_s=10)
    except TimeoutError:
        process.kill()
        pytest.fail(f"compose broker did not start; its log:\n{broker.log()}")
    yield broker
    process.terminate()
    process.wait(timeout=10)
    log.close()
    shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
