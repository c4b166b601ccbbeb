"""`bwms user …`: accounts from the command line, each change audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bwms.cli import app as bwms
from hub.auth import passwords
from hub.auth.models import User
from hub.auth.service import find_user
from hub.storage.db import Database

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

PASSWORD = "a password long enough"


def run(db_url: str, data_dir: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(
        bwms,
        ["user", *args, "--database-url", db_url, "--data-dir", str(data_dir)],
        input=stdin,
    )
    return result.exit_code, result.output


async def _user(db_url: str, username: str) -> User | None:
    database = Database(db_url)
    try:
        async with database.session() as session:
            return await find_user(session, username)
    finally:
        await database.close()


def user(db_url: str, username: str) -> User | None:
    return asyncio.run(_user(db_url, username))


def test_add_admin_from_stdin(db_url: str, tmp_path: Path) -> None:
    code, _ = run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "admin",
        "root",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    stored = user(db_url, "root")

    assert code == 0
    assert stored is not None
    assert passwords.verify_password(stored.password_hash, PASSWORD)


def test_add_from_prompt(db_url: str, tmp_path: Path) -> None:
    code, output = run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "keeper",
        "kim",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert code == 0
    assert PASSWORD not in output


def test_password_option_rejected(db_url: str, tmp_path: Path) -> None:
    code, _ = run(
        db_url, tmp_path, "add", "--role", "admin", "root", "--password", PASSWORD
    )

    assert code == 2


def test_short_password_rejected(db_url: str, tmp_path: Path) -> None:
    code, output = run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "admin",
        "root",
        "--password-stdin",
        stdin="short\n",
    )

    assert code == 1
    assert "too short" in output


def test_unknown_role_rejected(db_url: str, tmp_path: Path) -> None:
    code, output = run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "boss",
        "root",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )

    assert code == 1
    assert "unknown role" in output


def test_role_and_disable(db_url: str, tmp_path: Path) -> None:
    for name, role in (("root", "admin"), ("kim", "keeper")):
        run(
            db_url,
            tmp_path,
            "add",
            "--role",
            role,
            name,
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
    run(db_url, tmp_path, "role", "kim", "customs")
    run(db_url, tmp_path, "disable", "kim")
    stored = user(db_url, "kim")

    assert stored is not None
    assert stored.role == "customs"
    assert stored.disabled is True


def test_passwd_changes_hash(db_url: str, tmp_path: Path) -> None:
    run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "admin",
        "root",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    code, _ = run(
        db_url,
        tmp_path,
        "passwd",
        "root",
        "--password-stdin",
        stdin="another long password\n",
    )
    stored = user(db_url, "root")

    assert code == 0
    assert stored is not None
    assert passwords.verify_password(stored.password_hash, "another long password")


def test_changes_audited(db_url: str, tmp_path: Path) -> None:
    run(
        db_url,
        tmp_path,
        "add",
        "--role",
        "admin",
        "root",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    run(db_url, tmp_path, "passwd", "root", "--password-stdin", stdin=PASSWORD + "x\n")

    result = CliRunner().invoke(
        bwms, ["audit", "verify", "--database-url", db_url, "--data-dir", str(tmp_path)]
    )

    assert "OK: 2 audit records" in result.output
