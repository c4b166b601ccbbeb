"""compose.yaml, the Dockerfile and .env.example: structure checks without Docker."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from edge.settings import MqttSettings, OutboxSettings
from hub.app import API_PREFIX
from hub.settings import HubSettings
from tests.compose.conftest import COMPOSE, REPO

SERVICES = {"mosquitto", "postgres", "hub", "edge-door-3"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return document


def _settings_env_names(*classes: type[BaseSettings]) -> set[str]:
    names = set()
    for cls in classes:
        prefix = cls.model_config["env_prefix"]
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_compose_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_broker_publishes_no_port(compose: dict[str, Any]) -> None:
    assert "ports" not in compose["services"]["mosquitto"]


def test_broker_on_internal_network_only(compose: dict[str, Any]) -> None:
    assert compose["services"]["mosquitto"]["networks"] == ["backend"]
    assert compose["networks"]["backend"]["internal"] is True


def test_database_on_internal_network_only(compose: dict[str, Any]) -> None:
    assert compose["services"]["postgres"]["networks"] == ["backend"]


def test_broker_persistence_on_volume(compose: dict[str, Any]) -> None:
    assert (
        "mosquitto-data:/mosquitto/data" in compose["services"]["mosquitto"]["volumes"]
    )


def test_database_version(compose: dict[str, Any]) -> None:
    assert compose["services"]["postgres"]["image"] == "postgres:16"


def test_broker_image(compose: dict[str, Any]) -> None:
    assert compose["services"]["mosquitto"]["image"] == "eclipse-mosquitto:2"


def test_hub_healthcheck_route(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["hub"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:8000{API_PREFIX}/health" in command


def test_hub_waits_for_healthy_database(compose: dict[str, Any]) -> None:
    depends = compose["services"]["hub"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"


def test_hub_port_on_loopback_by_default(compose: dict[str, Any]) -> None:
    assert compose["services"]["hub"]["ports"] == [
        "${HUB_HTTP_PUBLISH:-127.0.0.1:8000}:8000"
    ]


def test_hub_environment_names_known(compose: dict[str, Any]) -> None:
    names = set(compose["services"]["hub"]["environment"])
    assert names <= _settings_env_names(HubSettings)


def test_edge_environment_names_known(compose: dict[str, Any]) -> None:
    names = set(compose["services"]["edge-door-3"]["environment"])
    assert names <= _settings_env_names(MqttSettings, OutboxSettings)


def test_edge_outbox_on_volume(compose: dict[str, Any]) -> None:
    edge = compose["services"]["edge-door-3"]
    outbox_dir = edge["environment"]["BWMS_OUTBOX_PATH"].rsplit("/", 1)[0]
    assert f"edge-door-3-outbox:{outbox_dir}" in edge["volumes"]


def test_edge_serves_door_3(compose: dict[str, Any]) -> None:
    command = compose["services"]["edge-door-3"]["command"]
    assert command[-2:] == ["--portal", "door-3"]


@pytest.mark.parametrize("service", sorted(SERVICES - {"mosquitto"}))
def test_env_files_under_secrets(compose: dict[str, Any], service: str) -> None:
    for path in compose["services"][service]["env_file"]:
        assert path.startswith("secrets/")


def test_secrets_ignored_by_git() -> None:
    assert "/secrets/" in (COMPOSE / ".gitignore").read_text().splitlines()


def test_env_example_lists_interpolated_variables() -> None:
    used = set(re.findall(r"\$\{(\w+)", (COMPOSE / "compose.yaml").read_text()))
    example = (COMPOSE / ".env.example").read_text()
    listed = set(re.findall(r"(?m)^(\w+)=", example))
    assert used == listed


def test_env_example_has_no_secrets() -> None:
    listed = re.findall(r"(?m)^(\w+)=", (COMPOSE / ".env.example").read_text())
    assert not [name for name in listed if re.search("PASSWORD|SECRET|TOKEN", name)]


# Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    text = (COMPOSE / "Dockerfile").read_text()
    # Join continuation lines so each instruction is one line.
    return [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def test_dockerfile_base_image(dockerfile: list[str]) -> None:
    assert "FROM python:3.11-slim" in dockerfile


def test_dockerfile_runs_as_non_root(dockerfile: list[str]) -> None:
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users[-1:] == ["bwms"]


def test_dockerfile_installs_package(dockerfile: list[str]) -> None:
    assert any(line.startswith("RUN pip install . ") for line in dockerfile)


def test_dockerfile_bakes_in_no_secrets(dockerfile: list[str]) -> None:
    settings = [line for line in dockerfile if line.split()[0] in ("ENV", "ARG")]
    assert not [line for line in settings if re.search("PASSWORD|SECRET|TOKEN", line)]


def test_dockerfile_copies_existing_paths(dockerfile: list[str]) -> None:
    for line in dockerfile:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"{source} is missing"


def test_dockerignore_keeps_copied_paths(dockerfile: list[str]) -> None:
    ignore = (COMPOSE / "Dockerfile.dockerignore").read_text().splitlines()
    for line in dockerfile:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert f"!{source.rstrip('/')}" in ignore, f"{source} is not let in"
