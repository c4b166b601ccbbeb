"""Audit trail routes: search and export for admins and customs officers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from hub.api import SessionDep
from hub.audit import query
from hub.audit.chain import verify_chain
from hub.auth.deps import Principal, get_auth, require

# OFFSET binds as a signed 64-bit integer in SQLite and PostgreSQL; a larger
# value fails in the driver, so reject it here as a 422.
MAX_OFFSET = 2**63 - 1

router = APIRouter(tags=["audit"])

Auditor = Annotated[Principal, require("audit:read")]


class ExportFormat(StrEnum):
    """Response formats of an audit search."""

    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


class ChainStatus(BaseModel):
    """Result of a check of the whole audit chain."""

    ok: bool
    records: int
    broken_seq: int | None
    reason: str


@router.get(
    "/audit",
    response_model=list[query.AuditOut],
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            }
        }
    },
)
async def get_audit(
    session: SessionDep,
    _auditor: Auditor,
    since: Annotated[
        datetime | None, Query(description="Earliest time, inclusive; RFC 3339.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Latest time, exclusive; RFC 3339.")
    ] = None,
    actor: Annotated[str | None, Query(max_length=80)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. manifest.close.")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=200, description="e.g. manifest:IN-1.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=query.MAX_PAGE)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    format: Annotated[ExportFormat, Query(description="json, jsonl or csv.")] = (
        ExportFormat.JSON
    ),
) -> Any:
    """Search audit records, oldest first, as JSON, JSON lines or CSV."""
    records = await query.search(
        session,
        query.AuditQuery(
            since=since,
            until=until,
            actor=actor,
            action=action,
            target=target,
            limit=limit,
            offset=offset,
        ),
    )
    if format is ExportFormat.CSV:
        return PlainTextResponse(
            query.to_csv(records),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    if format is ExportFormat.JSONL:
        return StreamingResponse(
            query.to_json_lines(records), media_type="application/x-ndjson"
        )
    return records


@router.get("/audit/verify", response_model=ChainStatus)
async def get_audit_verify(
    request: Request, session: SessionDep, _auditor: Auditor
) -> ChainStatus:
    """Check every link of the audit chain and the signed head."""
    report = await verify_chain(session, get_auth(request).audit_key)
    return ChainStatus(
        ok=report.ok,
        records=report.records,
        broken_seq=report.broken_seq,
        reason=report.reason,
    )
