"""Settings of the edge daemon's MQTT uplink and its durable outbox.

Both read environment variables (`BWMS_MQTT_…`, `BWMS_OUTBOX_…`) and reject unknown
keys, so a misspelt option fails at start instead of being ignored. The only
built-in host is the loopback broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bwms.config import EnvSettings

# IANA-registered ports of MQTT over TCP and over TLS.
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttSettings(EnvSettings):
    """Connection to the site's MQTT broker and the resend policy of movements."""

    model_config = SettingsConfigDict(env_prefix="BWMS_MQTT_", extra="forbid")

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://host[:port] or mqtts://host[:port] for TLS.",
    )
    username: str | None = Field(default=None, description="Broker user name.")
    password: SecretStr | None = Field(default=None, description="Broker password.")
    tls_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign the broker's certificate, or "
        "the system's trust store when unset.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS."
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    tls_verify: bool = Field(
        default=True,
        description="Verify the broker's certificate and host name. Turn off only "
        "for a test broker with a self-signed certificate.",
    )
    keepalive_s: int = Field(
        default=30,
        ge=5,
        le=3600,
        description="MQTT keep-alive interval. The broker drops a silent client "
        "after 1.5 times this (MQTT 3.1.1 §3.1.2.10), which publishes its last will.",
    )
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="MQTT client id, bwms-edge-{site}-{portal} when unset.",
    )
    reconnect_min_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="First wait before reconnecting. It doubles on each failure.",
    )
    reconnect_max_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="Maximum wait between reconnect attempts.",
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="Time after a publish without the hub's ack before the movement "
        "is sent again; also the first step of the resend backoff.",
    )
    resend_backoff_factor: float = Field(
        default=2.0,
        ge=1.0,
        le=10.0,
        description="Factor by which the wait before each further resend of the "
        "same movement grows.",
    )
    resend_backoff_max_s: float = Field(
        default=300.0,
        gt=0.0,
        le=86_400.0,
        description="Maximum wait between two resends of the same movement.",
    )
    inflight_window: int = Field(
        default=200,
        ge=1,
        le=900,
        description="Movements published but not yet confirmed by the hub, at most. "
        "Keep it well under the broker's per-client queue limit (Mosquitto "
        "max_queued_messages, 1000 by default).",
    )
    status_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86_400.0,
        description="Interval of the periodic retained status message.",
    )
    shutdown_timeout_s: float = Field(
        default=2.0,
        gt=0.0,
        le=60.0,
        description="Time allowed at shutdown to publish the offline status.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(
                f"broker URL {value!r} must start with mqtt:// or mqtts://"
            )
        if not parts.hostname:
            raise ValueError(f"broker URL {value!r} has no host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"broker URL {value!r} has an invalid port") from exc
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(
                f"broker URL {value!r} may contain only scheme, host and port. "
                "set the user name and password in their own settings"
            )
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> MqttSettings:
        tls_files = (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        if not self.tls and any(f is not None for f in tls_files):
            raise ValueError("TLS files are set but the broker URL is not mqtts://")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @property
    def tls(self) -> bool:
        """Whether the URL scheme is mqtts (MQTT over TLS)."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]


class OutboxSettings(EnvSettings):
    """Location and size limit of the outbox of unconfirmed movements."""

    model_config = SettingsConfigDict(env_prefix="BWMS_OUTBOX_", extra="forbid")

    path: Path = Field(
        default=Path("outbox.sqlite3"),
        description="SQLite file of the outbox, one per portal.",
    )
    quota: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Maximum number of unconfirmed movements kept. Further ones are "
        "dropped and counted.",
    )
    high_water_fraction: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="Share of the quota at which the outbox reports itself nearly "
        "full (status degraded).",
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite synchronous mode. FULL syncs the disk on every commit "
        "and survives power loss; NORMAL survives a killed process only.",
    )
