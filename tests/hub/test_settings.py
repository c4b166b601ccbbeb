"""Hub settings: defaults, environment, and rejection of unknown or invalid values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings


def test_default_database_in_data_dir() -> None:
    settings = HubSettings(data_dir=Path("/srv/bwms"))

    assert (
        settings.resolved_database_url() == "sqlite+aiosqlite:////srv/bwms/hub.sqlite3"
    )


def test_default_client_id_names_site() -> None:
    assert HubSettings().client_id_for("demo-wgq") == "bwms-hub-demo-wgq"


def test_environment_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWMS_HUB_ACK_BATCH_MAX", "50")
    monkeypatch.setenv("BWMS_HUB_MQTT_PASSWORD", "s3cret")

    settings = HubSettings()

    assert settings.ack_batch_max == 50
    assert "s3cret" not in repr(settings)


def test_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        HubSettings(ack_batch=5)  # type: ignore[call-arg]


def test_batch_size_bounded() -> None:
    with pytest.raises(ValidationError, match="ack_batch_max"):
        HubSettings(ack_batch_max=0)


def test_broker_url_checked() -> None:
    with pytest.raises(
        ValidationError, match="invalid broker URL 'tcp://127.0.0.1:1883'"
    ):
        HubSettings(mqtt_url="tcp://127.0.0.1:1883")
