"""The audit hash chain and `bwms audit verify`, on SQLite and PostgreSQL.

The tests that tamper with records run the command line in-process, so they are
synchronous and set their database up with asyncio.run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bwms.cli import app as bwms
from hub.audit.chain import Actor, append, verify_chain
from hub.auth.keys import load_key
from hub.storage.db import Database

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ACTOR = Actor(name="kim", role="keeper", client_ip="192.0.2.10")


async def _fill(db_url: str, key: bytes, count: int) -> None:
    database = Database(db_url)
    try:
        await database.migrate()
        for index in range(count):
            async with database.transaction() as session:
                await append(
                    session,
                    key,
                    ACTOR,
                    "manifest.close",
                    f"manifest:IN-{index + 1}",
                    before={"closed_at": None, "gross_kg": 12.5},
                    after={"closed_at": "2025-03-01T09:00:00+00:00", "lines": [1, 2]},
                    now=T0 + timedelta(seconds=index, microseconds=123_456),
                )
    finally:
        await database.close()


async def _execute(db_url: str, statement: str) -> None:
    database = Database(db_url)
    try:
        async with database.transaction() as session:
            await session.execute(text(statement))
    finally:
        await database.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def audit_key(data_dir: Path) -> bytes:
    return load_key(None, data_dir / "audit-hmac.key")


@pytest.fixture
def chain(db_url: str, audit_key: bytes) -> str:
    """A database with five audit records."""
    asyncio.run(_fill(db_url, audit_key, 5))
    return db_url


def verify(db_url: str, data_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        bwms, ["audit", "verify", "--database-url", db_url, "--data-dir", str(data_dir)]
    )
    return result.exit_code, result.output


def test_intact_chain_ok(chain: str, data_dir: Path) -> None:
    code, output = verify(chain, data_dir)

    assert code == 0
    assert "OK: 5 audit records" in output


def test_edited_record_named(chain: str, data_dir: Path) -> None:
    asyncio.run(
        _execute(chain, "UPDATE audit_log SET actor = 'someone else' WHERE seq = 3")
    )

    code, output = verify(chain, data_dir)

    assert code == 1
    assert "BROKEN at record 3" in output


def test_edited_json_named(chain: str, data_dir: Path) -> None:
    asyncio.run(
        _execute(
            chain,
            "UPDATE audit_log SET after = '{\"closed_at\": null}' WHERE seq = 2",
        )
    )

    code, output = verify(chain, data_dir)

    assert code == 1
    assert "BROKEN at record 2" in output


def test_deleted_newest_detected(chain: str, data_dir: Path) -> None:
    asyncio.run(_execute(chain, "DELETE FROM audit_log WHERE seq = 5"))

    code, output = verify(chain, data_dir)

    assert code == 1
    assert "record 5 is missing" in output or "records 5 to 5 are missing" in output


def test_deleted_middle_detected(chain: str, data_dir: Path) -> None:
    asyncio.run(_execute(chain, "DELETE FROM audit_log WHERE seq = 2"))

    code, output = verify(chain, data_dir)

    assert code == 1
    assert "record 2 is missing" in output


def test_forged_head_detected(chain: str, data_dir: Path) -> None:
    asyncio.run(_execute(chain, "DELETE FROM audit_log WHERE seq = 5"))
    asyncio.run(
        _execute(
            chain,
            "UPDATE audit_head SET seq = 4, "
            "hash = (SELECT hash FROM audit_log WHERE seq = 4)",
        )
    )

    code, output = verify(chain, data_dir)

    assert code == 1
    assert "signature is invalid" in output


def test_wrong_key_detected(chain: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    load_key(None, other / "audit-hmac.key")

    code, _output = verify(chain, other)

    assert code == 1


def test_missing_key_exit_2(chain: str, tmp_path: Path) -> None:
    code, output = verify(chain, tmp_path / "no-keys")

    assert code == 2
    assert "not found" in output


async def test_empty_chain_ok(database: Database, audit_key: bytes) -> None:
    async with database.session() as session:
        report = await verify_chain(session, audit_key)

    assert report.ok


async def test_append_links_records(database: Database, audit_key: bytes) -> None:
    for index in range(2):
        async with database.transaction() as session:
            await append(
                session, audit_key, ACTOR, "user.create", f"user:{index}", now=T0
            )

    async with database.session() as session:
        rows = (
            await session.execute(
                text("SELECT prev_hash, hash FROM audit_log ORDER BY seq")
            )
        ).all()

    assert rows[1][0] == rows[0][1]
