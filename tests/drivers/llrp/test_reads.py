"""The reads file the simulator and `bwms edge replay` take: each bad row named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.llrp.reads import ReadsFileError, read_reads_file

HEADER = "time_s,antenna,epc,rssi_dbm,phase_deg\n"


def write(tmp_path: Path, body: str | bytes) -> Path:
    path = tmp_path / "reads.csv"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    return path


def test_rows_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "0.5,2,3036142c8c008f8000053244,-48.5,\n1.0,1,0x3036142C8C008F8000053244,-50,91.5\n")

    rows = list(read_reads_file(path))

    assert [row.line for row in rows] == [2, 3]
    assert rows[0].epc == "3036142C8C008F8000053244"
    assert rows[1].epc == "3036142C8C008F8000053244"
    assert rows[0].phase_deg is None
    assert rows[1].phase_deg == 91.5


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x,1,30361234,-50,", "line 2: could not convert string to float: 'x'"),
        ("1,one,30361234,-50,", "line 2: invalid literal for int() with base 10: 'one'"),
        ("1,1,3036123,-50,", "line 2: EPC '3036123' is not hex in whole 16-bit words"),
        ("1,0,30361234,-50,", "line 2: antenna 0 is not 1..65535"),
        ("-1,1,30361234,-50,", "line 2: time_s -1 is outside 0..4102444800 s"),
        ("1e300,1,30361234,-50,", "line 2: time_s 1e300 is outside 0..4102444800 s"),
        ("nan,1,30361234,-50,", "line 2: time_s nan is outside 0..4102444800 s"),
        ("1,1,30361234,nan,", "line 2: rssi_dbm nan is not a number"),
    ],
)
def test_bad_row_named(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, HEADER + row + "\n")

    with pytest.raises(ReadsFileError) as caught:
        list(read_reads_file(path))
    assert str(caught.value) == f"{path} {message}"


def test_missing_columns_named(tmp_path: Path) -> None:
    path = write(tmp_path, "time_s;antenna;epc;rssi_dbm\n1;1;30361234;-50\n")

    with pytest.raises(ReadsFileError) as caught:
        list(read_reads_file(path))
    assert str(caught.value) == (
        f"{path}: header lacks column(s) antenna, epc, rssi_dbm, time_s; expected "
        "time_s,antenna,epc,rssi_dbm[,phase_deg] separated by commas"
    )


def test_binary_file_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")

    with pytest.raises(ReadsFileError) as caught:
        list(read_reads_file(path))
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (invalid byte at offset 0); a reads file is a CSV "
        "saved as UTF-8"
    )
