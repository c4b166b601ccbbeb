"""compose/make-passwords: accounts, env files, ACL and password file of a site."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bwms.broker import edge_username, hub_username
from edge.settings import MqttSettings
from hub.settings import HubSettings
from tests.compose.conftest import (
    COMPOSE,
    DEMO_SITE,
    Generated,
    read_env,
    run_make_passwords,
)

ENV_FILES = ["hub", "edge-door-3", "edge-door-4", "edge-gate-1", "postgres"]


def _passwords(generated: Generated) -> list[str]:
    names = ["hub", "edge-door-3", "edge-door-4", "edge-gate-1"]
    return [generated.account(name)[1] for name in names] + [
        read_env(generated.secrets / "postgres.env")["POSTGRES_PASSWORD"]
    ]


def test_shipped_acl_matches_demo_site(generated: Generated) -> None:
    shipped = (COMPOSE / "mosquitto" / "acl").read_text()
    assert shipped == generated.acl.read_text()


def test_env_files_written(generated: Generated) -> None:
    written = sorted(p.name for p in generated.secrets.glob("*.env"))
    assert written == sorted(f"{name}.env" for name in ENV_FILES)


@pytest.mark.parametrize("name", ENV_FILES)
def test_env_file_private(generated: Generated, name: str) -> None:
    mode = (generated.secrets / f"{name}.env").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_password_file_private(generated: Generated) -> None:
    mode = (generated.secrets / "mosquitto" / "passwd").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_password_file_hashed(generated: Generated) -> None:
    text = (generated.secrets / "mosquitto" / "passwd").read_text()
    for password in _passwords(generated):
        assert password not in text


def test_password_file_users(generated: Generated) -> None:
    text = (generated.secrets / "mosquitto" / "passwd").read_text()
    users = sorted(line.split(":")[0] for line in text.splitlines())
    expected = [hub_username("demo-wgq")] + [
        edge_username("demo-wgq", portal) for portal in ("door-3", "door-4", "gate-1")
    ]
    assert users == sorted(expected)


def test_passwords_distinct(generated: Generated) -> None:
    passwords = _passwords(generated)
    assert len(set(passwords)) == len(passwords)


def test_output_hides_passwords(generated: Generated) -> None:
    for password in _passwords(generated):
        assert password not in generated.stdout + generated.stderr


def test_hub_env_valid_settings(
    generated: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in read_env(generated.secrets / "hub.env").items():
        monkeypatch.setenv(key, value)
    settings = HubSettings()
    assert settings.mqtt_username == hub_username("demo-wgq")


def test_hub_database_url_uses_postgres_password(generated: Generated) -> None:
    url = read_env(generated.secrets / "hub.env")["BWMS_HUB_DATABASE_URL"]
    password = read_env(generated.secrets / "postgres.env")["POSTGRES_PASSWORD"]
    assert url == f"postgresql+asyncpg://bwms:{password}@postgres:5432/bwms"


def test_edge_env_valid_settings(
    generated: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in read_env(generated.secrets / "edge-door-3.env").items():
        monkeypatch.setenv(key, value)
    settings = MqttSettings()
    assert settings.username == edge_username("demo-wgq", "door-3")


def _run(tmp_path: Path, *extra: str) -> str:
    secrets, acl = tmp_path / "secrets", tmp_path / "acl"
    result = run_make_passwords(
        "--site", DEMO_SITE, "--secrets", secrets, "--acl", acl, *extra
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_rerun_keeps_passwords(tmp_path: Path) -> None:
    _run(tmp_path)
    first = read_env(tmp_path / "secrets" / "edge-door-3.env")
    _run(tmp_path)
    assert read_env(tmp_path / "secrets" / "edge-door-3.env") == first


def test_rotate_changes_broker_password(tmp_path: Path) -> None:
    _run(tmp_path)
    first = read_env(tmp_path / "secrets" / "edge-door-3.env")["BWMS_MQTT_PASSWORD"]
    _run(tmp_path, "--rotate")
    second = read_env(tmp_path / "secrets" / "edge-door-3.env")["BWMS_MQTT_PASSWORD"]
    assert second != first


def test_rotate_keeps_database_password(tmp_path: Path) -> None:
    _run(tmp_path)
    first = read_env(tmp_path / "secrets" / "postgres.env")
    _run(tmp_path, "--rotate")
    assert read_env(tmp_path / "secrets" / "postgres.env") == first


def test_show_passwords_prints_them(tmp_path: Path) -> None:
    stdout = _run(tmp_path, "--show-passwords")
    password = read_env(tmp_path / "secrets" / "hub.env")["BWMS_HUB_MQTT_PASSWORD"]
    assert password in stdout


def test_stale_portal_file_warned(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "edge-door-9.env").write_text("BWMS_MQTT_PASSWORD=x\n")
    result = run_make_passwords(
        "--site",
        DEMO_SITE,
        "--secrets",
        tmp_path / "secrets",
        "--acl",
        tmp_path / "acl",
    )
    assert "edge-door-9.env belongs to no portal" in result.stderr


def test_invalid_site_file_fails(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[site]\nid = 'x'\n")
    result = run_make_passwords("--site", site, "--secrets", tmp_path / "s")
    assert result.returncode == 1
    assert "is invalid" in result.stderr


def test_missing_passwd_tool_fails(tmp_path: Path) -> None:
    result = run_make_passwords(
        "--site", DEMO_SITE, "--secrets", tmp_path / "s", "--acl", tmp_path / "acl",
        "--passwd-tool", str(tmp_path / "no-such-tool"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "could not hash" in result.stderr
