"""Tag reads as the reader reports them, and the CSV reads file the simulator replays."""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Times up to the year 2100 as epoch seconds; anything larger is a typo.
MAX_TIME_S = 4_102_444_800.0

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{4})+$")


@dataclass(frozen=True, slots=True)
class TagRead:
    """One tag report entry from a reader, in the reader's own clock.

    `epc` is uppercase hex with any protocol-control word already removed.
    Times are microseconds since the Unix epoch, UTC, as LLRP's FirstSeenTimestampUTC
    and LastSeenTimestampUTC carry them.
    """

    reader_id: str
    antenna: int
    epc: str
    first_seen_us: int
    last_seen_us: int
    rssi_dbm: float | None = None
    seen_count: int = 1
    channel: int | None = None
    phase_deg: float | None = None


class ReadsFileError(ValueError):
    """A reads file row that cannot be used, with its line number."""


@dataclass(frozen=True, slots=True)
class ReadRow:
    """One row of a reads file: a single read at `time_s`."""

    line: int
    time_s: float
    antenna: int
    epc: str
    rssi_dbm: float
    phase_deg: float | None


def parse_epc_hex(text: str) -> str:
    """Normalise EPC hex to uppercase, raising ValueError if it is not whole 16-bit words."""
    value = text.strip().removeprefix("0x").removeprefix("0X")
    if not _HEX.match(value):
        raise ValueError(f"EPC {text!r} is not hex in whole 16-bit words")
    return value.upper()


def read_reads_file(path: Path | str) -> Iterator[ReadRow]:
    """Yield the rows of a reads CSV (`time_s,antenna,epc,rssi_dbm[,phase_deg]`).

    Raises ReadsFileError on the first bad row, naming its line, because a replay
    with silently skipped rows would produce wrong movements.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            fieldnames = reader.fieldnames or []
            required = {"time_s", "antenna", "epc", "rssi_dbm"}
            missing = required - set(fieldnames)
            if missing:
                raise ReadsFileError(
                    f"{path}: header lacks column(s) {', '.join(sorted(missing))}; "
                    "expected time_s,antenna,epc,rssi_dbm[,phase_deg] separated by commas"
                )
            for row in reader:
                yield _parse_row(path, reader.line_num, row)
        except UnicodeDecodeError as exc:
            raise ReadsFileError(
                f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); "
                "a reads file is a CSV saved as UTF-8"
            ) from exc


def _parse_row(path: Path, line: int, row: dict[str, str | None]) -> ReadRow:
    try:
        time_s = float(row["time_s"] or "")
        antenna = int(row["antenna"] or "")
        epc = parse_epc_hex(row["epc"] or "")
        rssi = float(row["rssi_dbm"] or "")
        phase_text = (row.get("phase_deg") or "").strip()
        phase = float(phase_text) if phase_text else None
    except ValueError as exc:
        raise ReadsFileError(f"{path} line {line}: {exc}") from exc
    if antenna < 1 or antenna > 65535:
        raise ReadsFileError(f"{path} line {line}: antenna {antenna} is not 1..65535")
    if not 0 <= time_s <= MAX_TIME_S:
        raise ReadsFileError(
            f"{path} line {line}: time_s {row['time_s']} is outside 0..{MAX_TIME_S:.0f} s"
        )
    if not math.isfinite(rssi):
        raise ReadsFileError(f"{path} line {line}: rssi_dbm {row['rssi_dbm']} is not a number")
    return ReadRow(line, time_s, antenna, epc, rssi, phase)
