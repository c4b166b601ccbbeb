"""Every route against every role: allowed → success, other roles → 403,
anonymous → 401.

The expected outcome of each (route, role) is written here, not read from the
permission table, so a change to the table that widens or narrows access fails
a test until this table is changed too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub.app import create_app
from hub.settings import HubSettings
from tests.hub.auth.test_permissions import api_routes
from tests.hub.support import PASSWORD, add_user, sign_in
from tests.hub.test_manifests_api import manifest

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ADMIN, KEEPER, CUSTOMS, FINANCE, GUARD, VIEWER = (
    "admin",
    "keeper",
    "customs",
    "finance",
    "guard",
    "viewer",
)
ROLES = (ADMIN, KEEPER, CUSTOMS, FINANCE, GUARD, VIEWER)
EVERYONE = frozenset(ROLES)
PUBLIC = "public"
ANONYMOUS = "anonymous"

Builder = Callable[["Env", str], Awaitable[dict[str, Any]]]


@dataclass
class Env:
    """The app, an API client and what the routes under test act on."""

    app: FastAPI
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    api_key_id: str
    counter: int = 0

    def next(self) -> int:
        self.counter += 1
        return self.counter


async def nothing(_env: Env, _caller: str) -> dict[str, Any]:
    return {}


async def token_form(env: Env, _caller: str) -> dict[str, Any]:
    form = {"username": "target", "password": PASSWORD, "grant_type": "password"}
    return {"data": form}


async def fresh_refresh_token(env: Env, _caller: str) -> dict[str, Any]:
    response = await env.client.post(
        "/api/v1/auth/token",
        data={"username": "target", "password": PASSWORD},
    )
    return {"json": {"refresh_token": response.json()["refresh_token"]}}


async def new_manifest(env: Env, caller: str) -> dict[str, Any]:
    return {"json": manifest(f"IN-{caller}-{env.next()}")}


async def new_user(env: Env, caller: str) -> dict[str, Any]:
    body = {
        "username": f"new-{caller}-{env.next()}",
        "password": PASSWORD,
        "role": VIEWER,
    }
    return {"json": body}


async def role_change(env: Env, _caller: str) -> dict[str, Any]:
    return {"json": {"role": (GUARD, VIEWER)[env.next() % 2]}}


async def new_password(_env: Env, _caller: str) -> dict[str, Any]:
    return {"json": {"password": PASSWORD}}


async def new_api_key(env: Env, caller: str) -> dict[str, Any]:
    return {"json": {"name": f"erp-{caller}", "role": VIEWER}}


async def confirmation(_env: Env, _caller: str) -> dict[str, Any]:
    return {"json": {"quantity": 1, "by": "keeper on duty", "reason": "label torn"}}


async def wrong_totp(_env: Env, _caller: str) -> dict[str, Any]:
    return {"json": {"code": "000000"}}


@dataclass(frozen=True)
class Case:
    method: str
    route: str
    path: str
    allowed: frozenset[str] | str
    success: frozenset[int]
    build: Builder = nothing


def ok(*codes: int) -> frozenset[int]:
    return frozenset(codes)


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)


# (route, who may call it, which statuses count as success for them).
CASES = (
    # Public: health returns 503 when a part is down, which still passed auth.
    Case("GET", "/health", "/health", PUBLIC, ok(200, 503)),
    Case("POST", "/auth/token", "/auth/token", PUBLIC, ok(200), token_form),
    Case("POST", "/auth/session", "/auth/session", PUBLIC, ok(200), token_form),
    Case(
        "POST", "/auth/refresh", "/auth/refresh", PUBLIC, ok(200), fresh_refresh_token
    ),
    Case("POST", "/auth/logout", "/auth/logout", EVERYONE, ok(204)),
    Case("GET", "/auth/me", "/auth/me", EVERYONE, ok(200)),
    Case("POST", "/auth/totp", "/auth/totp", EVERYONE, ok(200)),
    # A wrong code passes auth and is rejected as a bad body: 422.
    Case(
        "POST",
        "/auth/totp/confirm",
        "/auth/totp/confirm",
        EVERYONE,
        ok(422),
        wrong_totp,
    ),
    Case("GET", "/users", "/users", roles(ADMIN), ok(200)),
    Case("POST", "/users", "/users", roles(ADMIN), ok(201), new_user),
    Case(
        "PATCH",
        "/users/{username}",
        "/users/target",
        roles(ADMIN),
        ok(200),
        role_change,
    ),
    Case(
        "PUT",
        "/users/{username}/password",
        "/users/target/password",
        roles(ADMIN),
        ok(204),
        new_password,
    ),
    Case(
        "DELETE", "/users/{username}/totp", "/users/target/totp", roles(ADMIN), ok(204)
    ),
    Case("GET", "/api-keys", "/api-keys", roles(ADMIN), ok(200)),
    Case("POST", "/api-keys", "/api-keys", roles(ADMIN), ok(201), new_api_key),
    Case(
        "DELETE", "/api-keys/{key_id}", "/api-keys/{api_key_id}", roles(ADMIN), ok(204)
    ),
    Case("GET", "/movements", "/movements", EVERYONE, ok(200)),
    # No movement is stored: 404 means the request passed auth.
    Case("GET", "/movements/{event_id}", "/movements/none", EVERYONE, ok(404)),
    Case("GET", "/dead-letters", "/dead-letters", roles(ADMIN, KEEPER), ok(200)),
    Case(
        "GET",
        "/portals",
        "/portals",
        roles(ADMIN, KEEPER, CUSTOMS, GUARD, VIEWER),
        ok(200),
    ),
    Case(
        "GET", "/site", "/site", roles(ADMIN, KEEPER, CUSTOMS, GUARD, VIEWER), ok(200)
    ),
    Case(
        "POST", "/manifests", "/manifests", roles(ADMIN, KEEPER), ok(201), new_manifest
    ),
    Case(
        "GET",
        "/manifests",
        "/manifests",
        roles(ADMIN, KEEPER, CUSTOMS, FINANCE, VIEWER),
        ok(200),
    ),
    Case(
        "GET",
        "/manifests/{manifest_id}",
        "/manifests/IN-SET-UP",
        roles(ADMIN, KEEPER, CUSTOMS, FINANCE, VIEWER),
        ok(200),
    ),
    Case(
        "GET",
        "/manifests/{manifest_id}/reconciliation",
        "/manifests/IN-SET-UP/reconciliation",
        roles(ADMIN, KEEPER, CUSTOMS, FINANCE, VIEWER),
        ok(200),
    ),
    Case(
        "POST",
        "/manifests/{manifest_id}/close",
        "/manifests/IN-SET-UP/close",
        roles(ADMIN, KEEPER),
        ok(200),
    ),
    Case(
        "POST",
        "/manifests/{manifest_id}/lines/{line_no}/confirm",
        "/manifests/IN-SET-UP/lines/1/confirm",
        roles(ADMIN, KEEPER),
        ok(201),
        confirmation,
    ),
    Case("GET", "/audit", "/audit", roles(ADMIN, CUSTOMS), ok(200)),
    Case("GET", "/audit/verify", "/audit/verify", roles(ADMIN, CUSTOMS), ok(200)),
)


def expected(case: Case, caller: str) -> frozenset[int]:
    if case.allowed == PUBLIC:
        return case.success
    if caller == ANONYMOUS:
        return ok(401)
    assert isinstance(case.allowed, frozenset)
    return case.success if caller in case.allowed else ok(403)


@pytest.fixture
async def env(make_settings: Callable[..., HubSettings]) -> AsyncIterator[Env]:
    # Two-factor sign-in is tested on its own; here every role signs in alike.
    app = create_app(make_settings(auth_totp_roles=[]), start_consumer=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub"
        ) as client:
            headers = {role: await sign_in(app, client, role) for role in ROLES}
            await add_user(app, "target", VIEWER)
            admin = headers[ADMIN]
            created = await client.post(
                "/api/v1/manifests", json=manifest("IN-SET-UP"), headers=admin
            )
            assert created.status_code == 201, created.text
            key = await client.post(
                "/api/v1/api-keys",
                json={"name": "set-up", "role": VIEWER},
                headers=admin,
            )
            yield Env(app, client, headers, key.json()["key_id"])


async def test_route_access_by_role(env: Env) -> None:
    # One app serves every caller, because each sign-in costs an Argon2 hash.
    wrong = []
    for caller in (*ROLES, ANONYMOUS):
        for case in CASES:
            options = await case.build(env, caller)
            path = "/api/v1" + case.path.format(api_key_id=env.api_key_id)
            headers = env.headers.get(caller, {})
            env.client.cookies.clear()
            response = await env.client.request(
                case.method, path, headers=headers, **options
            )
            env.client.cookies.clear()
            if response.status_code not in expected(case, caller):
                wrong.append(
                    f"{caller}: {case.method} {case.route}: "
                    f"{response.status_code} {response.text[:120]}"
                )

    assert wrong == []


async def test_table_covers_every_route(env: Env) -> None:
    in_table = {(case.method, case.route) for case in CASES}
    in_app = {(method, path) for method, path, _ in api_routes(env.app)}

    assert in_app - in_table == set()
