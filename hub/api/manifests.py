"""Manifest routes: create, list, close, confirm by hand, reconciliation.

Request bodies are validated by `hub.manifests.validation` rather than by FastAPI, so
that a 422 lists every issue with the manifest line it belongs to:
`{"detail": [{"line_no": 3, "field": "gtin", "msg": "line 3: GTIN ..."}]}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, ValidationError

from hub.api import SessionDep, SiteDep
from hub.auth.deps import Principal, require, trail_for
from hub.manifests.matching import Direction, ManifestStatus
from hub.manifests.schemas import (
    ConfirmIn,
    ManifestIn,
    ManifestOut,
    ManifestSummary,
)
from hub.manifests.service import (
    MAX_PAGE,
    ConfirmationRejected,
    ManifestExists,
    ManifestNotFound,
    close_manifest,
    confirm_units,
    create_manifest,
    get_manifest,
    list_manifests,
    reconciliation,
)
from hub.manifests.validation import ManifestInvalid, validation_issues

# OFFSET binds as a signed 64-bit integer in SQLite and PostgreSQL; a larger
# value fails in the driver, so reject it here as a 422.
MAX_OFFSET = 2**63 - 1

router = APIRouter(tags=["manifests"])


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    # OpenAPI resolves "$ref" from the document root, where pydantic's "$defs" are
    # not, so the body schema is documented with its definitions inlined.
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return resolve(definitions[ref.rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(model)}},
        }
    }


def _hs_code_digits(request: Request) -> int:
    digits: int = request.app.state.settings.hs_code_digits
    return digits


def _not_found(exc: ManifestNotFound) -> HTTPException:
    return HTTPException(status_code=404, detail=str(exc))


@router.post(
    "/manifests",
    status_code=201,
    response_model=ManifestOut,
    openapi_extra=_body_doc(ManifestIn),
    responses={409: {"description": "The manifest id exists."}},
)
async def post_manifest(
    request: Request,
    session: SessionDep,
    site: SiteDep,
    principal: Annotated[Principal, require("manifest:write")],
    payload: Annotated[Any, Body()],
) -> ManifestOut:
    """Store a manifest. A 422 response lists every issue with its line number."""
    try:
        manifest = await create_manifest(
            session, payload, site, _hs_code_digits(request)
        )
    except ManifestInvalid as exc:
        raise HTTPException(
            status_code=422, detail=[issue.as_dict() for issue in exc.issues]
        ) from exc
    except ManifestExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    await trail_for(request, principal).record(
        session,
        "manifest.create",
        f"manifest:{manifest.manifest_id}",
        after=manifest.model_dump(mode="json"),
    )
    await session.commit()
    return manifest


@router.get(
    "/manifests",
    response_model=list[ManifestSummary],
    dependencies=[require("manifest:read")],
)
async def get_manifests(
    session: SessionDep,
    status: Annotated[
        ManifestStatus | None, Query(description="Reconciliation status.")
    ] = None,
    direction: Annotated[Direction | None, Query(description="in or out.")] = None,
    declaration_no: Annotated[
        str | None, Query(description="Customs declaration number.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Manifests to skip.")
    ] = 0,
) -> list[ManifestSummary]:
    """List manifests, newest first, without their lines."""
    manifests = await list_manifests(
        session,
        status=None if status is None else status.value,
        direction=None if direction is None else direction.value,
        declaration_no=declaration_no,
        limit=limit,
        offset=offset,
    )
    # Statuses of open manifests may have been computed again.
    await session.commit()
    return manifests


@router.get(
    "/manifests/{manifest_id}",
    response_model=ManifestOut,
    dependencies=[require("manifest:read")],
)
async def get_one_manifest(session: SessionDep, manifest_id: str) -> ManifestOut:
    """Return one manifest with its lines."""
    try:
        return await get_manifest(session, manifest_id)
    except ManifestNotFound as exc:
        raise _not_found(exc) from exc


@router.get(
    "/manifests/{manifest_id}/reconciliation",
    dependencies=[require("manifest:read")],
)
async def get_reconciliation(session: SessionDep, manifest_id: str) -> dict[str, Any]:
    """Return expected, received and manually confirmed units per line."""
    try:
        result = await reconciliation(session, manifest_id)
    except ManifestNotFound as exc:
        raise _not_found(exc) from exc
    await session.commit()
    return result


@router.post("/manifests/{manifest_id}/close")
async def post_close(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("manifest:close")],
    manifest_id: str,
    payload: Annotated[Any, Body()] = None,
) -> dict[str, Any]:
    """Close a manifest and return its final reconciliation.

    `by` defaults to the signed-in user; the audit record names the user either way.
    """
    by = _closed_by(payload) or principal.name
    try:
        before = _close_state(await get_manifest(session, manifest_id))
        await close_manifest(session, manifest_id, by=by)
        after = _close_state(await get_manifest(session, manifest_id))
        result = await reconciliation(session, manifest_id)
    except ManifestNotFound as exc:
        raise _not_found(exc) from exc
    if before["closed_at"] is None:
        await trail_for(request, principal).record(
            session,
            "manifest.close",
            f"manifest:{manifest_id}",
            before=before,
            after=after,
        )
    await session.commit()
    return result


def _close_state(manifest: ManifestOut) -> dict[str, Any]:
    return {
        "status": manifest.status,
        "closed_at": manifest.closed_at.isoformat() if manifest.closed_at else None,
        "closed_by": manifest.closed_by,
    }


def _closed_by(payload: Any) -> str | None:
    """Return who closes the manifest from an optional {"by": name} body."""
    if payload is None:
        return None
    if isinstance(payload, dict) and set(payload) <= {"by"}:
        by = payload.get("by")
        if by is None or isinstance(by, str):
            return (by or "").strip() or None
    raise HTTPException(
        status_code=422,
        detail=[
            {"line_no": None, "field": "by", "msg": 'body must be {"by": "<name>"}'}
        ],
    )


@router.post(
    "/manifests/{manifest_id}/lines/{line_no}/confirm",
    status_code=201,
    openapi_extra=_body_doc(ConfirmIn),
)
async def post_confirm(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require("manifest:confirm")],
    manifest_id: str,
    line_no: int,
    payload: Annotated[Any, Body()],
) -> dict[str, Any]:
    """Record units of a line that a keeper confirmed by hand."""
    try:
        data = ConfirmIn.model_validate(payload)
    except ValidationError as exc:
        raise HTTPException(
            status_code=422,
            detail=[
                issue.as_dict() for issue in validation_issues(exc, line_no=line_no)
            ],
        ) from exc
    try:
        record = await confirm_units(session, manifest_id, line_no, data)
    except ManifestNotFound as exc:
        raise _not_found(exc) from exc
    except ConfirmationRejected as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"line_no": line_no, "field": "epcs", "msg": str(exc)}],
        ) from exc
    await trail_for(request, principal).record(
        session,
        "manifest.confirm",
        f"manifest:{manifest_id}/line:{line_no}",
        after=record,
    )
    await session.commit()
    return record
