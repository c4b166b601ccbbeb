"""Settings of the hub service, read from `BWMS_HUB_*` environment variables.

Command-line options override the environment. Every field has a default, so a hub
started with only a site file stores to `./data/hub.sqlite3` and listens to the broker
and the API on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bwms.config import EnvSettings

MQTT_SCHEMES = ("mqtt", "mqtts")
ROLES = ("admin", "keeper", "customs", "finance", "guard", "viewer")


class HubSettings(EnvSettings):
    """Configuration of one hub: site file, database, broker, batching and API."""

    model_config = SettingsConfigDict(env_prefix="BWMS_HUB_", extra="forbid")

    site_file: Path = Field(
        default=Path("site.toml"),
        description="Site TOML file; the hub and the site's edge daemons load the same one.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db. When unset, "
            "the hub uses SQLite at {data_dir}/hub.sqlite3."
        ),
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of the default SQLite database; created when missing.",
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://host:port or mqtts://host:port for TLS.",
    )
    mqtt_username: str | None = Field(default=None, description="Broker user name.")
    mqtt_password: SecretStr | None = Field(
        default=None, description="Broker password."
    )
    mqtt_tls_ca: Path | None = Field(
        default=None,
        description=(
            "PEM file of the CA that signed the broker's certificate; setting it turns "
            "TLS on. With mqtts:// and no CA file, the system CA store is used."
        ),
    )
    mqtt_client_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "MQTT client id. It must stay the same across restarts, because the broker "
            "keeps the hub's session and queued movements under it. "
            "Default: bwms-hub-{site id}."
        ),
    )
    mqtt_keepalive_s: int = Field(
        default=30, ge=5, le=3600, description="MQTT keep-alive interval, seconds."
    )
    mqtt_reconnect_max_s: int = Field(
        default=30,
        ge=1,
        le=600,
        description="Upper bound of the doubling wait between reconnect attempts, seconds.",
    )
    ack_batch_max: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Maximum messages stored in one database transaction and confirmed together.",
    )
    ack_flush_ms: int = Field(
        default=20,
        ge=0,
        le=5_000,
        description=(
            "Maximum time a batch waits for more messages after its first one before it "
            "is stored and confirmed, milliseconds."
        ),
    )
    dead_letter_max_bytes: int = Field(
        default=65_536,
        ge=1_024,
        le=16_777_216,
        description="Rejected payloads are stored up to this many bytes and flagged as truncated.",
    )
    reject_log_interval_s: float = Field(
        default=10.0,
        ge=0.0,
        le=3600.0,
        description="Minimum time between two warnings for the same rejection reason, seconds.",
    )
    hs_code_digits: int = Field(
        default=10,
        ge=6,
        le=10,
        description=(
            "Digits an HS code in a manifest must have: 10 for China's tariff, 6 for "
            "the international heading."
        ),
    )
    api_host: str = Field(
        default="127.0.0.1", description="Address the HTTP API binds to."
    )
    api_port: int = Field(
        default=8000,
        ge=0,
        le=65_535,
        description="TCP port of the HTTP API; 0 picks a free one.",
    )
    api_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the API; with the key, the API serves HTTPS.",
    )
    api_tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the API's certificate."
    )

    auth_jwt_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "Key that signs access tokens (HS256), at least 32 characters. When unset, "
            "the key is read from auth_jwt_key_file."
        ),
    )
    auth_jwt_key_file: Path | None = Field(
        default=None,
        description=(
            "File holding the access-token signing key; created with a random key and "
            "mode 0600 when missing. Default: {data_dir}/jwt-signing.key."
        ),
    )
    auth_access_token_ttl_s: int = Field(
        default=900,
        ge=30,
        le=86_400,
        description="Lifetime of an access token, seconds.",
    )
    auth_refresh_token_ttl_s: int = Field(
        default=14 * 86_400,
        ge=300,
        le=90 * 86_400,
        description="Lifetime of a refresh token, seconds; each use replaces it.",
    )
    auth_max_failed_logins: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Failed sign-ins in a row that lock an account.",
    )
    auth_lockout_s: int = Field(
        default=900,
        ge=1,
        le=86_400,
        description="How long a locked account stays locked, seconds.",
    )
    auth_totp_roles: list[str] = Field(
        default_factory=lambda: ["admin", "customs"],
        description=(
            "Roles that must sign in with a TOTP code as well as the password. "
            "An empty list turns two-factor sign-in off."
        ),
    )
    auth_cookie_secure: bool = Field(
        default=True,
        description=(
            "Mark the browser session cookies Secure, so browsers send them over "
            "HTTPS only (and to http://localhost)."
        ),
    )
    auth_trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
            "header gives the client address; from any other peer it is ignored."
        ),
    )
    audit_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "HMAC-SHA256 key that signs the head of the audit chain, at least 32 "
            "characters. When unset, the key is read from audit_key_file."
        ),
    )
    audit_key_file: Path | None = Field(
        default=None,
        description=(
            "File holding the audit chain key; created with a random key and mode "
            "0600 when missing. Keep it off the database server. "
            "Default: {data_dir}/audit-hmac.key."
        ),
    )

    @field_validator("auth_totp_roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown roles {unknown}: expected some of {list(ROLES)}")
        return value

    @field_validator("auth_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"invalid trusted proxy {item!r}: expected an address or CIDR"
                ) from exc
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
            raise ValueError(f"invalid broker URL {value!r}: expected mqtt://host:port")
        try:
            parts.port
        except ValueError as exc:
            raise ValueError(f"invalid port in broker URL {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "HubSettings":
        if (self.api_tls_cert_file is None) != (self.api_tls_key_file is None):
            raise ValueError("api_tls_cert_file and api_tls_key_file must be set together")
        return self

    @property
    def api_scheme(self) -> str:
        """Return "https" when a certificate is configured, else "http"."""
        return "https" if self.api_tls_cert_file is not None else "http"

    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite in `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'hub.sqlite3'}"

    def client_id_for(self, site_id: str) -> str:
        """Return the fixed MQTT client id of this hub for one site."""
        return self.mqtt_client_id or f"bwms-hub-{site_id}"

    def resolved_jwt_key_file(self) -> Path:
        """Return the file of the access-token signing key."""
        return self.auth_jwt_key_file or self.data_dir / "jwt-signing.key"

    def resolved_audit_key_file(self) -> Path:
        """Return the file of the audit chain key."""
        return self.audit_key_file or self.data_dir / "audit-hmac.key"
