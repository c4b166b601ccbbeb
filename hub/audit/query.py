"""Queries and exports of the audit trail, for auditors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditRecord

MAX_PAGE = 10_000
CSV_COLUMNS = (
    "seq",
    "at",
    "actor",
    "role",
    "client_ip",
    "action",
    "target",
    "before",
    "after",
    "prev_hash",
    "hash",
)


class AuditOut(BaseModel):
    """One audit record as the API returns it."""

    seq: int
    at: datetime
    actor: str
    role: str | None
    client_ip: str | None
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit search; `since` is inclusive and `until` exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    limit: int = 1000
    offset: int = 0


async def search(session: AsyncSession, query: AuditQuery) -> list[AuditOut]:
    """Return matching records, oldest first."""
    statement = select(AuditRecord).order_by(AuditRecord.seq)
    if query.since is not None:
        statement = statement.where(AuditRecord.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditRecord.at < query.until)
    if query.actor is not None:
        statement = statement.where(AuditRecord.actor == query.actor)
    if query.action is not None:
        statement = statement.where(AuditRecord.action == query.action)
    if query.target is not None:
        statement = statement.where(AuditRecord.target == query.target)
    rows = await session.scalars(statement.limit(query.limit).offset(query.offset))
    return [AuditOut.model_validate(row, from_attributes=True) for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    # Spreadsheet programs run a cell that starts with these as a formula (CSV
    # injection), so such cells get a leading apostrophe.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def to_csv(records: list[AuditOut]) -> str:
    """Return the records as CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow([_cell(getattr(record, column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


async def to_json_lines(records: list[AuditOut]) -> AsyncIterator[str]:
    """Yield one JSON object per line."""
    for record in records:
        yield record.model_dump_json() + "\n"
