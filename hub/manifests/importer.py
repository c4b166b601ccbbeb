"""Import manifests from a CSV file, all or nothing per file.

The layout (docs/manifests.md has the full table): a header row, then one row per
manifest line. The manifest's own fields (manifest_id, direction, declaration_no,
portals, ...) are repeated on each row, so a broker's flat export fits, and rows of
several manifests may share a file. List cells (portals, epcs, contents) separate
their items with spaces, commas or semicolons.

Every issue of the file is collected and reported with its CSV line number before
anything is stored. A file without issues is stored in one transaction.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bwms.site import Site, SiteError, load_site
from hub.audit.chain import Actor, AuditTrail
from hub.manifests.schemas import DEFAULT_HS_CODE_DIGITS, ManifestIn
from hub.manifests.service import ManifestExists, existing_manifest_ids, store_manifests
from hub.manifests.validation import ManifestInvalid, parse_manifest
from hub.storage.db import Database, StorageError, display_url

logger = logging.getLogger(__name__)

HEADER_COLUMNS = (
    "manifest_id",
    "direction",
    "declaration_no",
    "site",
    "portals",
    "window_start",
    "window_end",
)
LINE_COLUMNS = (
    "line_no",
    "gtin",
    "sscc",
    "epcs",
    "quantity",
    "unit",
    "description",
    "hs_code",
    "batch",
    "gross_kg",
    "contents",
)
COLUMNS = HEADER_COLUMNS + LINE_COLUMNS
REQUIRED_COLUMNS = ("manifest_id", "direction", "declaration_no", "portals", "line_no", "unit")

LIST_SEPARATORS = re.compile(r"[\s,;]+")

# Exit statuses of `bwms manifest import`.
EXIT_OK = 0
EXIT_ENVIRONMENT = 1
EXIT_INVALID = 2

ProgressCallback = Callable[[str, int, int], None]


class ImportFailed(Exception):
    """A CSV file with issues, of which nothing was stored.

    `issues` are complete messages, each starting with its CSV line number.
    """

    def __init__(self, issues: list[str]) -> None:
        super().__init__(f"{len(issues)} issue(s); first: {issues[0]}")
        self.issues = issues


@dataclass
class ParsedFile:
    """The valid manifests of a file, with the CSV line where each one starts."""

    manifests: list[ManifestIn]
    first_csv_line: dict[str, int]

    @property
    def line_count(self) -> int:
        return sum(len(manifest.lines) for manifest in self.manifests)


@dataclass
class _Rows:
    """The rows of one manifest as read, with the CSV line of each."""

    first_csv_line: int
    header: dict[str, str] = field(default_factory=dict)
    header_line: dict[str, int] = field(default_factory=dict)
    lines: list[dict[str, Any]] = field(default_factory=list)
    csv_lines: list[int] = field(default_factory=list)


def _decode(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        csv_line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex().upper()
        raise ImportFailed(
            [
                f"CSV line {csv_line}: the file is not valid {encoding} "
                f"(byte 0x{byte} at offset {exc.start}); save it as UTF-8, or give "
                "its encoding with --encoding, e.g. --encoding gb18030"
            ]
        ) from exc
    except LookupError as exc:
        raise ImportFailed([f"CSV line 1: unknown encoding {encoding!r}"]) from exc


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (CSV line where the record starts, fields) for each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    next_line = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed([f"CSV line {next_line}: {exc}"]) from exc
        start, next_line = next_line, reader.line_num + 1
        if any(cell.strip() for cell in record):
            yield start, record


def _check_header(csv_line: int, names: list[str]) -> list[str]:
    issues: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            issues.append(f"CSV line {csv_line}: column {name!r} appears twice")
        seen.add(name)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        issues.append(
            f"CSV line {csv_line}: unknown columns: {', '.join(unknown)} "
            f"(known: {', '.join(COLUMNS)})"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        issues.append(f"CSV line {csv_line}: missing columns: {', '.join(missing)}")
    return issues


def _split(cell: str) -> list[str]:
    return [item for item in LIST_SEPARATORS.split(cell) if item]


def _contents(cell: str) -> list[dict[str, Any]]:
    # Each GTIN*quantity token becomes an entry of its own, and the bare EPCs
    # together form one entry.
    entries: list[dict[str, Any]] = []
    epcs: list[str] = []
    for token in _split(cell):
        if "*" in token:
            gtin, _, quantity = token.partition("*")
            entries.append({"gtin": gtin, "quantity": quantity})
        else:
            if not epcs:
                entries.append({"epcs": epcs})
            epcs.append(token)
    return entries


def _line_fields(values: dict[str, str]) -> dict[str, Any]:
    line: dict[str, Any] = {}
    for name in LINE_COLUMNS:
        cell = values.get(name, "")
        if not cell:
            continue
        if name == "epcs":
            line[name] = _split(cell)
        elif name == "contents":
            line[name] = _contents(cell)
        else:
            line[name] = cell
    return line


def _group_rows(
    text: str, on_progress: ProgressCallback | None
) -> tuple[dict[str, _Rows], list[tuple[int, str]]]:
    """Group the rows by manifest id, and return them with the issues of single rows."""
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise ImportFailed(["CSV line 1: the file is empty; expected a header row"])
    header_line, names = first
    names = [name.strip().lower() for name in names]
    issues = _check_header(header_line, names)
    if issues:
        raise ImportFailed(issues)

    total = max(text.count("\n"), 1)
    manifests: dict[str, _Rows] = {}
    row_issues: list[tuple[int, str]] = []
    for count, (csv_line, record) in enumerate(records, start=1):
        if on_progress is not None and count % 1000 == 0:
            on_progress("reading", csv_line, total)
        if len(record) != len(names):
            row_issues.append(
                (csv_line, f"CSV line {csv_line}: {len(record)} fields; the header has {len(names)}")
            )
            continue
        values = {name: cell.strip() for name, cell in zip(names, record, strict=True)}
        manifest_id = values["manifest_id"]
        if not manifest_id:
            row_issues.append((csv_line, f"CSV line {csv_line}: manifest_id is empty"))
            continue
        rows = manifests.setdefault(manifest_id, _Rows(first_csv_line=csv_line))
        for message in _merge_header(rows, manifest_id, values, csv_line):
            row_issues.append((csv_line, message))
        rows.lines.append(_line_fields(values))
        rows.csv_lines.append(csv_line)
    if on_progress is not None:
        on_progress("reading", total, total)
    return manifests, row_issues


def _merge_header(
    rows: _Rows, manifest_id: str, values: dict[str, str], csv_line: int
) -> list[str]:
    # A header cell may be left empty on later rows, but the values given must agree.
    issues: list[str] = []
    for name in HEADER_COLUMNS:
        cell = values.get(name, "")
        if not cell:
            continue
        known = rows.header.get(name)
        if known is None:
            rows.header[name] = cell
            rows.header_line[name] = csv_line
        elif known != cell:
            issues.append(
                f"CSV line {csv_line}: manifest {manifest_id}: {name} {cell!r} differs "
                f"from {known!r} on CSV line {rows.header_line[name]}"
            )
    return issues


def _payload(manifest_id: str, rows: _Rows) -> dict[str, Any]:
    payload: dict[str, Any] = {"manifest_id": manifest_id}
    for name, cell in rows.header.items():
        payload[name] = _split(cell) if name == "portals" else cell
    payload["lines"] = rows.lines
    return payload


def read_manifests(
    path: Path,
    *,
    site: Site | None,
    hs_code_digits: int = DEFAULT_HS_CODE_DIGITS,
    encoding: str = "utf-8-sig",
    on_progress: ProgressCallback | None = None,
) -> ParsedFile:
    """Read and validate every manifest of a CSV file.

    Raises ImportFailed listing every issue with its CSV line number, or OSError if
    the file cannot be read. `on_progress(phase, done, total)` is called every 1000
    rows and after each manifest.
    """
    text = _decode(path.read_bytes(), encoding)
    grouped, issues = _group_rows(text, on_progress)

    parsed = ParsedFile([], {})
    for done, (manifest_id, rows) in enumerate(grouped.items(), start=1):
        parsed.first_csv_line[manifest_id] = rows.first_csv_line
        try:
            manifest = parse_manifest(
                _payload(manifest_id, rows), site=site, hs_code_digits=hs_code_digits
            )
        except ManifestInvalid as exc:
            for issue in exc.issues:
                csv_line = (
                    rows.first_csv_line
                    if issue.position is None
                    else rows.csv_lines[issue.position]
                )
                message = f"CSV line {csv_line}: manifest {manifest_id}: {issue}"
                issues.append((csv_line, message))
        else:
            parsed.manifests.append(manifest)
        if on_progress is not None:
            on_progress("validating", done, len(grouped))

    if issues:
        issues.sort(key=lambda item: item[0])
        raise ImportFailed([message for _, message in issues])
    return parsed


async def store_parsed(
    parsed: ParsedFile,
    database: Database,
    *,
    on_progress: ProgressCallback | None = None,
    audit: tuple[bytes, Actor] | None = None,
) -> None:
    """Store the manifests of a validated file in one transaction.

    With `audit` (the audit chain key and who imports), each manifest gets a
    manifest.create audit record in the same transaction. Raises ImportFailed,
    and stores nothing, when a manifest id is already stored. StorageError passes
    through.
    """
    ids = [manifest.manifest_id for manifest in parsed.manifests]
    async with database.transaction() as session:
        existing = await existing_manifest_ids(session, ids)
        if existing:
            raise ImportFailed(
                [
                    f"CSV line {parsed.first_csv_line[manifest_id]}: "
                    f"manifest {manifest_id} already exists"
                    for manifest_id in ids
                    if manifest_id in existing
                ]
            )
        if on_progress is not None:
            on_progress("storing", 0, len(ids))
        try:
            await store_manifests(session, parsed.manifests)
        except ManifestExists as exc:
            csv_line = parsed.first_csv_line.get(exc.manifest_id, 2)
            raise ImportFailed([f"CSV line {csv_line}: {exc}"]) from exc
        if audit is not None:
            await _audit_created(session, parsed, audit)
        if on_progress is not None:
            on_progress("storing", len(ids), len(ids))
    logger.info("manifest import: stored %s manifests, %s lines", len(ids), parsed.line_count)


async def _audit_created(
    session: Any, parsed: ParsedFile, audit: tuple[bytes, Actor]
) -> None:
    key, actor = audit
    trail = AuditTrail(key=key, actor=actor, now=datetime.now(UTC))
    for manifest in parsed.manifests:
        await trail.record(
            session,
            "manifest.create",
            f"manifest:{manifest.manifest_id}",
            after={**manifest.model_dump(mode="json"), "source": "csv import"},
        )


async def import_csv(
    path: Path,
    database: Database,
    *,
    site: Site | None,
    hs_code_digits: int = DEFAULT_HS_CODE_DIGITS,
    encoding: str = "utf-8-sig",
    on_progress: ProgressCallback | None = None,
) -> ParsedFile:
    """Validate a CSV file and store all its manifests in one transaction.

    Returns what was stored. Raises ImportFailed when the file has issues or a
    manifest id is already stored, and then stores nothing. StorageError and
    OSError pass through.
    """
    parsed = read_manifests(
        path,
        site=site,
        hs_code_digits=hs_code_digits,
        encoding=encoding,
        on_progress=on_progress,
    )
    await store_parsed(parsed, database, on_progress=on_progress)
    return parsed


def run_import(
    path: Path,
    *,
    database_url: str,
    site_file: Path,
    hs_code_digits: int = DEFAULT_HS_CODE_DIGITS,
    encoding: str = "utf-8-sig",
    console: Console | None = None,
    error_console: Console | None = None,
    audit: tuple[bytes, Actor] | None = None,
) -> int:
    """Import a CSV file for the command line, print the outcome and return the exit status.

    Status 0 means every manifest was stored, 2 that the file has issues (each is
    printed with its CSV line number) and nothing was stored, 1 that the site file,
    the CSV file or the database could not be used.
    """
    out = console or Console(soft_wrap=True, markup=False, highlight=False)
    err = error_console or Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    try:
        site = load_site(site_file)
    except SiteError as exc:
        err.print(str(exc))
        return EXIT_ENVIRONMENT

    # The bar is drawn only on a terminal, so piped output and logs stay free of
    # control codes.
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def on_progress(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total)
        progress.update(tasks[phase], completed=done, total=total)

    async def store(parsed: ParsedFile) -> None:
        database = Database(database_url)
        try:
            await database.migrate()
            await store_parsed(parsed, database, on_progress=on_progress, audit=audit)
        finally:
            await database.close()

    try:
        with progress:
            parsed = read_manifests(
                path,
                site=site,
                hs_code_digits=hs_code_digits,
                encoding=encoding,
                on_progress=on_progress,
            )
            asyncio.run(store(parsed))
    except ImportFailed as exc:
        for issue in exc.issues:
            err.print(issue)
        err.print(f"{path}: {len(exc.issues)} issue(s); nothing was imported")
        return EXIT_INVALID
    except OSError as exc:
        err.print(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_ENVIRONMENT
    except StorageError as exc:
        err.print(str(exc))
        return EXIT_ENVIRONMENT

    ids = ", ".join(manifest.manifest_id for manifest in parsed.manifests)
    # The database is named because an import run from another folder than the
    # hub's would otherwise land, unnoticed, in a new empty default database.
    out.print(
        f"{path}: imported {len(parsed.manifests)} manifest(s), "
        f"{parsed.line_count} line(s) into {display_url(database_url)}: {ids}"
    )
    return EXIT_OK
