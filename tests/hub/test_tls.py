"""The hub's API over HTTPS when it is given a certificate and key."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from hub.app import HubRuntime
from hub.settings import HubSettings


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Make a certificate for 127.0.0.1 with the openssl command."""
    cert, key = folder / "hub.crt", folder / "hub.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_api_served_over_https(
    make_settings: Callable[..., HubSettings], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    runtime = HubRuntime(
        make_settings(api_tls_cert_file=cert, api_tls_key_file=key), start_consumer=False
    )
    await runtime.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=trust) as client:
            response = await client.get(f"{runtime.url}/api/v1/health")
    finally:
        await runtime.stop()

    assert runtime.settings.api_scheme == "https"
    assert response.status_code == 200


def test_certificate_without_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        HubSettings(site_file=tmp_path / "site.toml", api_tls_cert_file=tmp_path / "hub.crt")
    assert "api_tls_cert_file and api_tls_key_file must be set together" in str(caught.value)
