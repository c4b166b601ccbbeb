"""User and API key routes, for admins. Every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.api import SessionDep
from hub.auth import service
from hub.auth.deps import Principal, require, trail_for
from hub.auth.permissions import Role

router = APIRouter(tags=["users"])

Admin = Annotated[Principal, require("user:admin")]


class UserIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role


class UserPatch(BaseModel):
    """Changes to a user; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None


class PasswordIn(BaseModel):
    """A new password."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


class ApiKeyIn(BaseModel):
    """A new API key for an integration."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role


class ApiKeyCreated(service.ApiKeyOut):
    """A new API key with its secret, which is shown this once only."""

    key: str


def _error(exc: service.AuthError) -> HTTPException:
    if isinstance(exc, (service.UserNotFound, service.ApiKeyNotFound)):
        return HTTPException(status_code=404, detail=str(exc))
    if isinstance(exc, (service.UserExists, service.LastAdmin)):
        return HTTPException(status_code=409, detail=str(exc))
    return HTTPException(status_code=422, detail=str(exc))


@router.get("/users", response_model=list[service.UserOut])
async def get_users(session: SessionDep, _admin: Admin) -> list[service.UserOut]:
    """List users by name."""
    return await service.list_users(session)


@router.post("/users", status_code=201, response_model=service.UserOut)
async def post_user(
    request: Request, session: SessionDep, admin: Admin, payload: UserIn
) -> service.UserOut:
    """Create a user."""
    try:
        user = await service.create_user(
            session,
            trail_for(request, admin),
            payload.username,
            payload.password,
            payload.role.value,
        )
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return service.user_out(user)


@router.patch("/users/{username}", response_model=service.UserOut)
async def patch_user(
    request: Request,
    session: SessionDep,
    admin: Admin,
    username: str,
    payload: UserPatch,
) -> service.UserOut:
    """Change a user's role or disable the user; either signs the user out."""
    try:
        user = await service.update_user(
            session,
            trail_for(request, admin),
            username,
            role=payload.role.value if payload.role is not None else None,
            disabled=payload.disabled,
        )
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return service.user_out(user)


@router.put("/users/{username}/password", status_code=204)
async def put_password(
    request: Request,
    session: SessionDep,
    admin: Admin,
    username: str,
    payload: PasswordIn,
) -> Response:
    """Set a user's password, unlock the account and sign the user out."""
    try:
        await service.set_password(
            session, trail_for(request, admin), username, payload.password
        )
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return Response(status_code=204)


@router.delete("/users/{username}/totp", status_code=204)
async def delete_totp(
    request: Request, session: SessionDep, admin: Admin, username: str
) -> Response:
    """Delete a user's two-factor secret, so that the user enrols again."""
    try:
        await service.reset_totp(session, trail_for(request, admin), username)
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return Response(status_code=204)


@router.get("/api-keys", response_model=list[service.ApiKeyOut])
async def get_api_keys(session: SessionDep, _admin: Admin) -> list[service.ApiKeyOut]:
    """List API keys, newest first, without their secrets."""
    return await service.list_api_keys(session)


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated)
async def post_api_key(
    request: Request, session: SessionDep, admin: Admin, payload: ApiKeyIn
) -> ApiKeyCreated:
    """Create an API key; its secret is in this response only."""
    try:
        view, key = await service.create_api_key(
            session, trail_for(request, admin), payload.name, payload.role.value
        )
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return ApiKeyCreated(**view.model_dump(), key=key)


@router.delete("/api-keys/{key_id}", status_code=204)
async def delete_api_key(
    request: Request, session: SessionDep, admin: Admin, key_id: str
) -> Response:
    """Revoke an API key."""
    try:
        await service.revoke_api_key(session, trail_for(request, admin), key_id)
    except service.AuthError as exc:
        raise _error(exc) from exc
    await session.commit()
    return Response(status_code=204)
