"""`bwms manifest import`: the CSV layout, all-or-nothing storage, and every rejection."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from bwms.cli import app
from bwms.site import Site
from hub.manifests.importer import ImportFailed, read_manifests, run_import
from hub.manifests.schemas import ManifestOut
from hub.manifests.service import get_manifest
from hub.storage.db import display_url, Database

DATA = Path(__file__).resolve().parent / "data"
HEADER = (
    "manifest_id,direction,declaration_no,portals,window_start,window_end,line_no,gtin,"
    "sscc,epcs,quantity,unit,description,hs_code,batch,gross_kg,contents\n"
)


def run_cli(site_file: Path, database_url: str, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["manifest", "import", *args, "--database-url", database_url, "--config", str(site_file)],
    )


def fetch(database_url: str, manifest_id: str) -> ManifestOut:
    async def load() -> ManifestOut:
        database = Database(database_url)
        try:
            await database.migrate()
            async with database.session() as session:
                return await get_manifest(session, manifest_id)
        finally:
            await database.close()

    return asyncio.run(load())


def count_manifests(database_url: str) -> int:
    async def count() -> int:
        from sqlalchemy import func, select

        from hub.manifests.models import Manifest

        database = Database(database_url)
        try:
            await database.migrate()
            async with database.session() as session:
                return int(await session.scalar(select(func.count()).select_from(Manifest)) or 0)
        finally:
            await database.close()

    return asyncio.run(count())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"


def test_import_valid_file(site_file: Path, db_url: str) -> None:
    result = run_cli(site_file, db_url, str(DATA / "manifests_valid.csv"))

    assert result.exit_code == 0
    assert "imported 2 manifest(s), 5 line(s) into " in result.stdout
    assert result.stdout.rstrip().endswith(": IN-2025-0001, OUT-2025-0002")
    assert display_url(db_url) in result.stdout


def test_import_keeps_values(site_file: Path, db_url: str, site_id: str) -> None:
    run_cli(site_file, db_url, str(DATA / "manifests_valid.csv"))

    inbound = fetch(db_url, "IN-2025-0001")
    outbound = fetch(db_url, "OUT-2025-0002")

    assert inbound.site == site_id
    assert inbound.lines[0].gtin == "08719139005740"
    assert inbound.lines[0].description == "Laptops, 14 inch"
    assert inbound.lines[1].hs_code == "0202300090"
    assert inbound.lines[1].description == "冷冻牛肉"
    assert [c.quantity for c in inbound.lines[1].contents] == [20, 10]
    assert inbound.lines[2].epcs == ["3036142C8C008F8000053244", "3036142C8C008F8000053245"]
    assert inbound.window_start is not None
    assert inbound.window_start.isoformat() == "2025-03-01T00:00:00+00:00"
    assert outbound.portals == ["gate-1", "door-3"]
    assert outbound.lines[1].batch == "B-2"


def test_import_gb18030_with_option(site_file: Path, sqlite_url: str) -> None:
    result = run_cli(
        site_file, sqlite_url, str(DATA / "manifests_gb18030.csv"), "--encoding", "gb18030"
    )

    assert result.exit_code == 0
    assert fetch(sqlite_url, "IN-2025-0001").lines[1].description == "冷冻牛肉"


def test_import_bad_encoding(site_file: Path, sqlite_url: str) -> None:
    path = DATA / "manifests_gb18030.csv"

    result = run_cli(site_file, sqlite_url, str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "CSV line 3: the file is not valid utf-8-sig (byte 0xC0 at offset 433); save it "
        "as UTF-8, or give its encoding with --encoding, e.g. --encoding gb18030",
        f"{path}: 1 issue(s); nothing was imported",
    ]


def test_import_missing_columns(site_file: Path, sqlite_url: str) -> None:
    result = run_cli(site_file, sqlite_url, str(DATA / "manifests_missing_columns.csv"))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "CSV line 1: missing columns: unit"


def test_import_hs_code_short_rejected(site_file: Path, db_url: str) -> None:
    # 8471600000 lost a digit on its way through a spreadsheet. It is not padded.
    result = run_cli(site_file, db_url, str(DATA / "manifests_hs_code_short.csv"))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "CSV line 3: manifest IN-2025-0007: line 2: HS code '847160000' has 9 digits; "
        "expected 10"
    )
    # IN-2025-0008 is valid, but the file is imported all or nothing.
    assert count_manifests(db_url) == 0


def test_import_gtin_check_digit(site_file: Path, sqlite_url: str) -> None:
    result = run_cli(site_file, sqlite_url, str(DATA / "manifests_gtin_check_digit.csv"))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "CSV line 2: manifest IN-2025-0009: line 1: GTIN 08719139005741 has check digit 1; "
        "expected 0"
    )


def test_import_lists_every_issue(site_file: Path, sqlite_url: str, site_id: str) -> None:
    path = DATA / "manifests_many_issues.csv"

    result = run_cli(site_file, sqlite_url, str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"CSV line 2: manifest IN-2025-0011: portal 'door-9' is not in site {site_id} "
        "(known: door-3, gate-1)",
        "CSV line 3: manifest IN-2025-0011: declaration_no '223120250000099999' differs "
        "from '223120250000012403' on CSV line 2",
        "CSV line 3: manifest IN-2025-0011: line 2: quantity must be a whole number of at "
        "least 1, got '0'",
        "CSV line 4: manifest IN-2025-0011: line 3: SSCC 946100520000000073 has check "
        "digit 3; expected 2",
        "CSV line 5: 10 fields; the header has 17",
        "CSV line 6: manifest_id is empty",
        f"{path}: 6 issue(s); nothing was imported",
    ]


def test_import_existing_manifest(site_file: Path, db_url: str) -> None:
    run_cli(site_file, db_url, str(DATA / "manifests_valid.csv"))

    again = run_cli(site_file, db_url, str(DATA / "manifests_valid.csv"))

    assert again.exit_code == 2
    assert again.stderr.splitlines()[:2] == [
        "CSV line 2: manifest IN-2025-0001 already exists",
        "CSV line 6: manifest OUT-2025-0002 already exists",
    ]


def test_import_existing_keeps_file_out(site_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "IN-A,in,D1,door-3,,,1,08719139005740,,,1,CT,x,,,,\n")
    second = tmp_path / "second.csv"
    second.write_text(
        HEADER
        + "IN-B,in,D2,door-3,,,1,08719139005740,,,1,CT,x,,,,\n"
        + "IN-A,in,D1,door-3,,,1,08719139005740,,,1,CT,x,,,,\n"
    )
    run_cli(site_file, sqlite_url, str(first))

    result = run_cli(site_file, sqlite_url, str(second))

    assert result.exit_code == 2
    assert count_manifests(sqlite_url) == 1


def test_import_unknown_column(site_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text(HEADER.replace("hs_code", "hs_cod"))

    result = run_cli(site_file, sqlite_url, str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(
        "CSV line 1: unknown columns: hs_cod (known: manifest_id, direction,"
    )


def test_import_empty_file(site_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    result = run_cli(site_file, sqlite_url, str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "CSV line 1: the file is empty; expected a header row"
    )


def test_import_quote_not_closed(site_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(HEADER + 'IN-A,in,D1,door-3,,,1,08719139005740,,,1,CT,"Laptops,,,,\n')

    result = run_cli(site_file, sqlite_url, str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "CSV line 2: unexpected end of data"


def test_import_missing_file(site_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    result = run_cli(site_file, sqlite_url, str(tmp_path / "absent.csv"))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"cannot read {tmp_path / 'absent.csv'}")


def test_import_bad_site_file(sqlite_url: str, tmp_path: Path) -> None:
    site_file = tmp_path / "absent.toml"

    result = run_cli(site_file, sqlite_url, str(DATA / "manifests_valid.csv"))

    assert result.exit_code == 1
    assert "cannot read site file" in result.stderr


def test_import_unreachable_database(site_file: Path) -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"

    result = run_cli(site_file, url, str(DATA / "manifests_valid.csv"))

    assert result.exit_code == 1
    assert "cannot migrate database" in result.stderr


def test_read_reports_progress(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    rows = [
        f"IN-{n // 100},in,D{n // 100},door-3,,,{n % 100 + 1},08719139005740,,,1,CT,x,,,,\n"
        for n in range(2500)
    ]
    path.write_text(HEADER + "".join(rows))
    calls: list[tuple[str, int, int]] = []

    parsed = read_manifests(path, site=site, on_progress=lambda *call: calls.append(call))

    assert len(parsed.manifests) == 25
    assert ("reading", 2501, 2501) in calls
    assert ("validating", 25, 25) in calls


def test_progress_bar_on_terminal(site_file: Path, sqlite_url: str) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)

    status = run_import(
        DATA / "manifests_valid.csv",
        database_url=sqlite_url,
        site_file=site_file,
        console=Console(file=io.StringIO()),
        error_console=terminal,
    )

    assert status == 0
    assert "validating" in screen.getvalue()


def test_contents_cell_forms(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "pallet.csv"
    cell = "08719139005740*4; 3036142C8C008F8000053244,3036142C8C008F8000053245"
    path.write_text(HEADER + f'P-1,in,D1,door-3,,,1,,946100520000000072,,,PLT,x,,,,"{cell}"\n')

    parsed = read_manifests(path, site=site)

    contents = parsed.manifests[0].lines[0].contents
    assert [c.gtin for c in contents] == ["08719139005740", None]
    assert contents[1].epcs == ["3036142C8C008F8000053244", "3036142C8C008F8000053245"]


def test_contents_bad_quantity(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "pallet.csv"
    path.write_text(
        HEADER + "P-1,in,D1,door-3,,,1,,946100520000000072,,,PLT,x,,,,08719139005740*x\n"
    )

    with pytest.raises(ImportFailed) as caught:
        read_manifests(path, site=site)

    assert caught.value.issues == [
        "CSV line 2: manifest P-1: line 1: contents entry 1: quantity must be a whole "
        "number of at least 1, got 'x'"
    ]
