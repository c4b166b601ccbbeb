"""Fuzz every operation of the hub's OpenAPI document; no input may cause a 5xx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from hub.app import HubRuntime
from hub.settings import HubSettings
from tests.hub.support import sign_in

# Schemathesis sits next to the interpreter running the tests, in the same venv.
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 5
RUN_TIMEOUT_S = 100.0
OUTPUT_TAIL_CHARS = 6000


@pytest.fixture
async def hub(make_settings: Callable[..., HubSettings]) -> AsyncIterator[HubRuntime]:
    runtime = HubRuntime(
        make_settings(api_host="127.0.0.1", api_port=0), start_consumer=False
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run_schemathesis(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI without blocking the loop that serves the hub under test."""
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return -1, output.decode(errors="replace") + "\n[timed out]"
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def schemathesis_args(url: str, authorization: str) -> list[str]:
    """Arguments shared by both runs: admin token, 5xx check, bounded examples."""
    return [
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: {authorization}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
    ]


# Operations that revoke the access tokens of the user they change: a user
# update, a password change and a TOTP reset.
SELF_REVOKING = "^/api/v1/users/[{]username[}]($|/password$|/totp$)"


@pytest.mark.slow
async def test_no_server_error(hub: HubRuntime, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=hub.url) as client:
        main_auth = await sign_in(hub.app, client, "admin")
        # An API key outlives changes to the user that made it.
        created = await client.post(
            "/api/v1/api-keys",
            json={"name": "fuzz-admin", "role": "admin"},
            headers=main_auth,
        )
        created.raise_for_status()
        key_auth = f"Bearer {created.json()['key']}"
    # The first run can learn the signed-in user's name from responses and would
    # then revoke its own token, so it leaves the self-revoking operations out.
    main_args = schemathesis_args(hub.url, main_auth["Authorization"])
    code, output = await run_schemathesis(
        [*main_args, "--exclude-path-regex", SELF_REVOKING], tmp_path
    )
    assert code == 0, output[-OUTPUT_TAIL_CHARS:]
    # The second run covers those operations with an admin API key, which they
    # cannot revoke.
    second_args = schemathesis_args(hub.url, key_auth)
    code, output = await run_schemathesis(
        [
            *second_args,
            "--include-path-regex",
            f"{SELF_REVOKING}|^/api/v1/users$",
        ],
        tmp_path,
    )
    assert code == 0, output[-OUTPUT_TAIL_CHARS:]


@pytest.mark.parametrize("path", ["/api/v1/manifests", "/api/v1/audit"])
async def test_offset_beyond_int64(hub: HubRuntime, path: str) -> None:
    async with httpx.AsyncClient(base_url=hub.url) as client:
        headers = await sign_in(hub.app, client, "admin")
        response = await client.get(path, params={"offset": 2**63}, headers=headers)
    assert response.status_code == 422
