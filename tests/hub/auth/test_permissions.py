"""Every API route declares a permission, and the permission table is consistent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from hub.app import API_PREFIX, create_app
from hub.auth.deps import PUBLIC
from hub.auth.permissions import PERMISSIONS, PUBLIC_ROUTES, ROLE_PERMISSIONS, Role
from hub.settings import HubSettings


def _declared(dependant: Dependant) -> Iterator[str]:
    for dependency in dependant.dependencies:
        permission = getattr(dependency.call, "permission", None)
        if permission is not None:
            yield permission
        yield from _declared(dependency)


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, list[str]]]:
    """Yield (method, path under /api/v1, declared permissions) of every API route."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not context.path.startswith(API_PREFIX + "/"):
            continue
        assert isinstance(route, APIRoute), context.path
        for method in sorted(context.methods or ()):
            yield (
                method,
                context.path.removeprefix(API_PREFIX),
                list(_declared(route.dependant)),
            )


@pytest.fixture
def app(site_file: Path, tmp_path: Path) -> FastAPI:
    settings = HubSettings(site_file=site_file, data_dir=tmp_path / "data")
    return create_app(settings, start_consumer=False)


def test_every_route_declares_one_permission(app: FastAPI) -> None:
    undeclared = [
        (method, path)
        for method, path, declared in api_routes(app)
        if len(declared) != 1
    ]

    assert undeclared == []


def test_public_routes_match_table(app: FastAPI) -> None:
    public = {
        (method, path)
        for method, path, declared in api_routes(app)
        if declared == [PUBLIC]
    }

    assert public == set(PUBLIC_ROUTES)


def test_declared_permissions_known(app: FastAPI) -> None:
    unknown = {
        permission
        for _method, _path, declared in api_routes(app)
        for permission in declared
        if permission != PUBLIC and permission not in PERMISSIONS
    }

    assert unknown == set()


def test_every_role_in_table() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_admin_holds_every_permission() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(PERMISSIONS)


def test_route_without_permission_detected(app: FastAPI) -> None:
    # The check above must be able to fail: a route added without a dependency
    # shows up as undeclared.
    @app.get(API_PREFIX + "/unguarded")
    async def unguarded() -> dict[str, str]:
        return {}

    undeclared = [
        (method, path) for method, path, declared in api_routes(app) if not declared
    ]

    assert undeclared == [("GET", "/unguarded")]
