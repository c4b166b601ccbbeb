"""Sign-in: lockout, token expiry, refresh rotation, two-factor, API keys, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub.app import create_app
from hub.auth import totp
from hub.settings import HubSettings
from tests.hub.support import PASSWORD, add_user, sign_in
from tests.hub.test_manifests_api import manifest

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Hub:
    app: FastAPI
    client: httpx.AsyncClient
    clock: Clock


@pytest.fixture
def hub_factory(
    make_settings: Callable[..., HubSettings],
) -> Callable[..., Any]:
    def factory(**overrides: Any) -> Any:
        clock = Clock()
        app = create_app(make_settings(**overrides), start_consumer=False, clock=clock)

        async def run() -> AsyncIterator[Hub]:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://hub"
                ) as client:
                    yield Hub(app, client, clock)

        return run()

    return factory


@pytest.fixture
async def hub(hub_factory: Callable[..., Any]) -> AsyncIterator[Hub]:
    running = hub_factory(auth_max_failed_logins=3, auth_lockout_s=60)
    yield await running.__anext__()
    await running.aclose()


async def token(
    hub: Hub, username: str, password: str = PASSWORD, code: str | None = None
) -> httpx.Response:
    form = {"username": username, "password": password}
    if code is not None:
        form["totp"] = code
    return await hub.client.post("/api/v1/auth/token", data=form)


def bearer(response: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_lockout_after_failures(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    for _ in range(3):
        await token(hub, "kim", "wrong password!")

    locked = await token(hub, "kim")

    assert locked.status_code == 400
    assert "locked" in locked.json()["detail"]


async def test_lockout_ends_after_lockout_s(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    for _ in range(3):
        await token(hub, "kim", "wrong password!")
    hub.clock.advance(61)

    response = await token(hub, "kim")

    assert response.status_code == 200


async def test_failures_below_limit_no_lock(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    for _ in range(2):
        await token(hub, "kim", "wrong password!")

    response = await token(hub, "kim")

    assert response.status_code == 200


async def test_unknown_user_rejected(hub: Hub) -> None:
    response = await token(hub, "nobody")

    assert response.json()["error"] == "invalid_grant"


async def test_access_token_expires(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    headers = bearer(await token(hub, "kim"))
    before = await hub.client.get("/api/v1/auth/me", headers=headers)
    hub.clock.advance(hub.app.state.settings.auth_access_token_ttl_s + 1)

    after = await hub.client.get("/api/v1/auth/me", headers=headers)

    assert before.status_code == 200
    assert after.status_code == 401


async def test_tampered_token_401(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    access = (await token(hub, "kim")).json()["access_token"]
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")

    response = await hub.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}
    )

    assert response.status_code == 401


async def test_refresh_rotates_token(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    first = (await token(hub, "kim")).json()["refresh_token"]

    rotated = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first}
    )
    again = await hub.client.post("/api/v1/auth/refresh", json={"refresh_token": first})

    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != first
    assert again.status_code == 401


async def test_refresh_reuse_revokes_family(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    first = (await token(hub, "kim")).json()["refresh_token"]
    second = (
        await hub.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    ).json()["refresh_token"]
    await hub.client.post("/api/v1/auth/refresh", json={"refresh_token": first})

    response = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second}
    )

    assert response.status_code == 401


async def test_refresh_expires(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    first = (await token(hub, "kim")).json()["refresh_token"]
    hub.clock.advance(hub.app.state.settings.auth_refresh_token_ttl_s + 1)

    response = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first}
    )

    assert response.status_code == 401


async def test_logout_revokes_refresh(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")
    signed = await token(hub, "kim")
    refresh = signed.json()["refresh_token"]
    await hub.client.post(
        "/api/v1/auth/logout", json={"refresh_token": refresh}, headers=bearer(signed)
    )

    response = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": refresh}
    )

    assert response.status_code == 401


async def test_role_change_revokes_access(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    await add_user(hub.app, "kim", "keeper")
    kim = bearer(await token(hub, "kim"))
    await hub.client.patch("/api/v1/users/kim", json={"role": "viewer"}, headers=admin)

    response = await hub.client.get("/api/v1/auth/me", headers=kim)

    assert response.status_code == 401


async def test_disabled_user_cannot_sign_in(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    await add_user(hub.app, "kim", "keeper")
    await hub.client.patch("/api/v1/users/kim", json={"disabled": True}, headers=admin)

    response = await token(hub, "kim")

    assert response.status_code == 400


async def test_last_admin_kept(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin", username="root")

    response = await hub.client.patch(
        "/api/v1/users/root", json={"role": "viewer"}, headers=admin
    )

    assert response.status_code == 409


async def test_totp_code_required_for_admin(hub: Hub) -> None:
    await add_user(hub.app, "ada", "admin", totp=True)

    response = await token(hub, "ada")

    assert response.status_code == 400
    assert "TOTP code required" in response.json()["detail"]


async def test_totp_code_signs_admin_in(hub: Hub) -> None:
    secret = await add_user(hub.app, "ada", "admin", totp=True)
    assert secret is not None

    response = await token(hub, "ada", code=totp.code_at(secret, hub.clock()))

    assert response.status_code == 200


async def test_totp_code_not_reusable(hub: Hub) -> None:
    secret = await add_user(hub.app, "ada", "admin", totp=True)
    assert secret is not None
    code = totp.code_at(secret, hub.clock())
    await token(hub, "ada", code=code)

    response = await token(hub, "ada", code=code)

    assert response.status_code == 400


async def test_totp_not_required_for_keeper(hub: Hub) -> None:
    await add_user(hub.app, "kim", "keeper")

    response = await token(hub, "kim")

    assert response.json()["mfa_enrolment_required"] is False


async def test_unenrolled_admin_limited_to_enrolment(hub: Hub) -> None:
    await add_user(hub.app, "ada", "admin")
    headers = bearer(await token(hub, "ada"))

    users = await hub.client.get("/api/v1/users", headers=headers)
    me = await hub.client.get("/api/v1/auth/me", headers=headers)

    assert users.status_code == 403
    assert me.json()["mfa_enrolment_required"] is True


async def test_totp_enrolment_then_sign_in(hub: Hub) -> None:
    await add_user(hub.app, "ada", "admin")
    pending = bearer(await token(hub, "ada"))
    secret = (await hub.client.post("/api/v1/auth/totp", headers=pending)).json()[
        "secret"
    ]
    confirmed = await hub.client.post(
        "/api/v1/auth/totp/confirm",
        json={"code": totp.code_at(secret, hub.clock())},
        headers=pending,
    )
    hub.clock.advance(30)
    signed = await token(hub, "ada", code=totp.code_at(secret, hub.clock()))

    users = await hub.client.get("/api/v1/users", headers=bearer(signed))

    assert confirmed.status_code == 204
    assert users.status_code == 200


async def test_refresh_keeps_enrolment_limit(hub: Hub) -> None:
    await add_user(hub.app, "ada", "admin")
    refresh = (await token(hub, "ada")).json()["refresh_token"]
    renewed = await hub.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": refresh}
    )

    users = await hub.client.get("/api/v1/users", headers=bearer(renewed))

    assert users.status_code == 403


async def test_api_key_scoped_to_role(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    created = await hub.client.post(
        "/api/v1/api-keys", json={"name": "erp", "role": "viewer"}, headers=admin
    )
    key = {"Authorization": f"Bearer {created.json()['key']}"}

    read = await hub.client.get("/api/v1/manifests", headers=key)
    write = await hub.client.post("/api/v1/manifests", json=manifest(), headers=key)

    assert read.status_code == 200
    assert write.status_code == 403


async def test_api_key_secret_not_listed(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    created = await hub.client.post(
        "/api/v1/api-keys", json={"name": "erp", "role": "viewer"}, headers=admin
    )

    listed = await hub.client.get("/api/v1/api-keys", headers=admin)

    assert created.json()["key"] not in listed.text


async def test_revoked_api_key_401(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    created = (
        await hub.client.post(
            "/api/v1/api-keys", json={"name": "erp", "role": "viewer"}, headers=admin
        )
    ).json()
    await hub.client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=admin)

    response = await hub.client.get(
        "/api/v1/manifests", headers={"Authorization": f"Bearer {created['key']}"}
    )

    assert response.status_code == 401


async def test_wrong_api_key_secret_401(hub: Hub) -> None:
    admin = await sign_in(hub.app, hub.client, "admin")
    key = (
        await hub.client.post(
            "/api/v1/api-keys", json={"name": "erp", "role": "viewer"}, headers=admin
        )
    ).json()["key"]
    wrong = key[:-3] + ("xyz" if not key.endswith("xyz") else "abc")

    response = await hub.client.get(
        "/api/v1/manifests", headers={"Authorization": f"Bearer {wrong}"}
    )

    assert response.status_code == 401


@pytest.fixture
async def cookie_hub(hub_factory: Callable[..., Any]) -> AsyncIterator[Hub]:
    # The test client speaks plain HTTP, which Secure cookies would not be sent over.
    running = hub_factory(auth_cookie_secure=False)
    yield await running.__anext__()
    await running.aclose()


async def cookie_session(hub: Hub) -> str:
    await add_user(hub.app, "kim", "keeper")
    response = await hub.client.post(
        "/api/v1/auth/session", data={"username": "kim", "password": PASSWORD}
    )
    csrf: str = response.json()["csrf_token"]
    return csrf


async def test_cookie_session_reads(cookie_hub: Hub) -> None:
    await cookie_session(cookie_hub)

    response = await cookie_hub.client.get("/api/v1/manifests")

    assert response.status_code == 200


async def test_cookie_write_without_csrf_403(cookie_hub: Hub) -> None:
    await cookie_session(cookie_hub)

    response = await cookie_hub.client.post("/api/v1/manifests", json=manifest())

    assert response.status_code == 403


async def test_cookie_write_wrong_csrf_403(cookie_hub: Hub) -> None:
    await cookie_session(cookie_hub)

    response = await cookie_hub.client.post(
        "/api/v1/manifests", json=manifest(), headers={"X-CSRF-Token": "guess"}
    )

    assert response.status_code == 403


async def test_cookie_write_with_csrf(cookie_hub: Hub) -> None:
    csrf = await cookie_session(cookie_hub)

    response = await cookie_hub.client.post(
        "/api/v1/manifests", json=manifest(), headers={"X-CSRF-Token": csrf}
    )

    assert response.status_code == 201


async def test_session_cookie_httponly_strict(cookie_hub: Hub) -> None:
    await add_user(cookie_hub.app, "kim", "keeper")
    response = await cookie_hub.client.post(
        "/api/v1/auth/session", data={"username": "kim", "password": PASSWORD}
    )
    access = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith("bwms_access=")
    )

    assert "HttpOnly" in access
    assert "SameSite=strict" in access


async def test_cookie_refresh_needs_csrf(cookie_hub: Hub) -> None:
    await cookie_session(cookie_hub)

    response = await cookie_hub.client.post("/api/v1/auth/refresh")

    assert response.status_code == 403
