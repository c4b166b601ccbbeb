"""The demo's built-in scenario: an inbound truck at dock door 3.

Everything is built from real GS1 keys so that each EPC decodes to the GTIN or SSCC
the manifest names. Company prefix 6901234 lies in GS1 China's 690–699 range; the
keys themselves are made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bwms.epc import encode_sgtin96, encode_sscc96, gs1_check_digit
from drivers.llrp.reads import ReadRow

COMPANY_PREFIX = "6901234"
DECLARATION_NO = "223320261000012345"
PORTAL_ID = "door-3"
INSIDE_PORT = 1
OUTSIDE_PORT = 2


def _gtin(item_reference: str) -> str:
    body = "0" + COMPANY_PREFIX + item_reference
    return body + gs1_check_digit(body)


def _sscc(serial_reference: str) -> str:
    body = "0" + COMPANY_PREFIX + serial_reference
    return body + gs1_check_digit(body)


@dataclass(frozen=True)
class Product:
    gtin: str
    description: str
    hs_code: str


FORMULA = Product(_gtin("00011"), "Infant formula 800 g, carton of 6 tins", "1901101000")
WINE = Product(_gtin("00028"), "Red wine 750 ml, carton of 6 bottles", "2204210000")
CREAM = Product(_gtin("00035"), "Face cream 50 ml, carton of 24", "3304990000")
COFFEE = Product(_gtin("00042"), "Roasted coffee beans 1 kg, carton of 10", "0901210000")

MANIFESTED_PALLET = _sscc("000000101")
STAGED_PALLET = _sscc("000000205")


def carton_epc(product: Product, serial: int) -> str:
    return encode_sgtin96(product.gtin, serial, len(COMPANY_PREFIX), filter_value=1)


def pallet_epc(sscc: str) -> str:
    # Filter 2 is "full case for transport" in the TDS SSCC filter table.
    return encode_sscc96(sscc, len(COMPANY_PREFIX), filter_value=2)


def manifest(manifest_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Build the inbound manifest the truck is expected to match."""
    now = now or datetime.now(UTC)
    return {
        "manifest_id": manifest_id,
        "direction": "in",
        "declaration_no": DECLARATION_NO,
        "site": "demo-wgq",
        "portals": [PORTAL_ID],
        "window_start": (now - timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=4)).isoformat(),
        "lines": [
            {
                "line_no": 1, "gtin": FORMULA.gtin, "quantity": 4, "unit": "CT",
                "description": FORMULA.description, "hs_code": FORMULA.hs_code,
                "batch": "IF2611A", "gross_kg": 31.2,
            },
            {
                "line_no": 2, "gtin": WINE.gtin, "quantity": 3, "unit": "CT",
                "description": WINE.description, "hs_code": WINE.hs_code,
                "batch": "RW2609", "gross_kg": 27.0,
            },
            {
                "line_no": 3, "sscc": MANIFESTED_PALLET, "quantity": 1, "unit": "PLT",
                "description": "Pallet of face cream", "hs_code": CREAM.hs_code,
                "batch": "FC2610", "gross_kg": 180.0,
                "contents": [{"gtin": CREAM.gtin, "quantity": 2}],
            },
        ],
    }


@dataclass(frozen=True)
class Expected:
    """Expected outcome of the scenario, for the demo's own check and for tests."""

    missing_line: int
    unexpected_epc: str
    staged_epc: str
    pallet_epc: str


def truck_epcs() -> dict[str, list[str]]:
    """EPCs carried through the door, by load."""
    return {
        "pallet": [pallet_epc(MANIFESTED_PALLET)]
        + [carton_epc(CREAM, serial) for serial in (5001, 5002)],
        "cartons": [carton_epc(FORMULA, serial) for serial in (1001, 1002, 1003, 1004)]
        + [carton_epc(WINE, serial) for serial in (2001, 2002)]  # the third is missing
        + [carton_epc(COFFEE, 3001)],  # not on the manifest
    }


EXPECTED = Expected(
    missing_line=2,
    unexpected_epc=carton_epc(COFFEE, 3001),
    staged_epc=pallet_epc(STAGED_PALLET),
    pallet_epc=pallet_epc(MANIFESTED_PALLET),
)


def _crossing(epc: str, start_s: float, first_port: int, second_port: int) -> list[ReadRow]:
    """Reads of one tag carried through the door: first side, then the other.

    The first antenna reads it for 1.2 s with a peak at 0.6 s, the second from 1.0 s
    to 2.6 s with a peak at 1.8 s, every 0.1 s: the shape of a forklift passing.
    """
    rows: list[ReadRow] = []
    for port, begin, end, peak_at, peak_dbm in (
        (first_port, 0.0, 1.2, 0.6, -48.0),
        (second_port, 1.0, 2.6, 1.8, -50.0),
    ):
        step = 0
        while begin + step * 0.1 <= end + 1e-9:
            t = begin + step * 0.1
            rssi = peak_dbm - 15.0 * abs(t - peak_at)
            rows.append(ReadRow(0, round(start_s + t, 3), port, epc, round(rssi, 1), None))
            step += 1
    return rows


def reads(duration_s: float = 24.0) -> list[ReadRow]:
    """Return every read of the scenario, sorted by time, relative to its start."""
    rows: list[ReadRow] = []
    loads = truck_epcs()
    for index, epc in enumerate(loads["pallet"]):
        rows += _crossing(epc, 2.0 + 0.03 * index, OUTSIDE_PORT, INSIDE_PORT)
    for index, epc in enumerate(loads["cartons"]):
        rows += _crossing(epc, 6.0 + 0.03 * index, OUTSIDE_PORT, INSIDE_PORT)
    # A pallet waiting for the next truck is just inside the door the whole time.
    t = 0.0
    while t <= duration_s:
        rows.append(ReadRow(0, round(t, 3), INSIDE_PORT, EXPECTED.staged_epc, -62.5, None))
        t += 1.0
    rows.sort(key=lambda row: (row.time_s, row.epc, row.antenna))
    return [
        ReadRow(line, r.time_s, r.antenna, r.epc, r.rssi_dbm, r.phase_deg)
        for line, r in enumerate(rows, start=2)
    ]
