"""Settings from the environment: misspelt variables are rejected by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from bwms.config import EnvSettings, describe_errors


class PortSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="BWMS_TESTCFG_", extra="forbid")

    port: int = 1883
    timeout_s: float = 1.0


def test_known_variable_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWMS_TESTCFG_PORT", "8883")

    assert PortSettings().port == 8883


def test_misspelt_variable_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWMS_TESTCFG_TIMEOUT", "5")

    with pytest.raises(ValidationError) as caught:
        PortSettings()
    assert describe_errors(caught.value) == (
        "PortSettings: unknown environment variable(s) BWMS_TESTCFG_TIMEOUT; known "
        "BWMS_TESTCFG_* variables: BWMS_TESTCFG_PORT, BWMS_TESTCFG_TIMEOUT_S"
    )


def test_lowercase_variable_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("bwms_testcfg_prot", "1")

    with pytest.raises(ValidationError):
        PortSettings()


def test_field_error_described() -> None:
    with pytest.raises(ValidationError) as caught:
        PortSettings(port="many")  # type: ignore[arg-type]
    assert describe_errors(caught.value).startswith("PortSettings: port: Input should be")
