"""Manifest validation: every rejection names its line, and valid values are normalised."""

from __future__ import annotations

from typing import Any

import pytest

from bwms.site import Site, load_site
from hub.manifests.validation import ManifestInvalid, parse_manifest
from tests.hub.support import SITE_TOML

GTIN = "08719139005740"
SSCC = "946100520000000072"
EPC = "3036142C8C008F8000053244"


@pytest.fixture
def site(tmp_path: Any) -> Site:
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML.format(site_id="wgq"))
    return load_site(path)


def payload(*lines: dict[str, Any], **header: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "manifest_id": "IN-1",
        "direction": "in",
        "declaration_no": "223120250000012345",
        "portals": ["door-3"],
    }
    data.update(header)
    data["lines"] = list(lines) or [gtin_line()]
    return data


def gtin_line(**fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"line_no": 1, "gtin": GTIN, "quantity": 5, "unit": "CT"}
    line.update(fields)
    return line


def messages(data: dict[str, Any], site: Site | None, digits: int = 10) -> list[str]:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(data, site=site, hs_code_digits=digits)
    return [str(issue) for issue in caught.value.issues]


def test_valid_manifest_normalised(site: Site) -> None:
    data = payload(
        gtin_line(gtin="8719139005740", hs_code="0101210000"),
        {"line_no": 2, "epcs": [EPC.lower()], "unit": "PCE"},
        {
            "line_no": 3,
            "sscc": SSCC,
            "unit": "PLT",
            "contents": [{"gtin": GTIN, "quantity": 4}],
        },
        window_start="2025-03-01T08:00:00+08:00",
    )

    manifest = parse_manifest(data, site=site)

    assert manifest.site == "wgq"
    assert manifest.lines[0].gtin == GTIN
    assert manifest.lines[0].hs_code == "0101210000"
    assert manifest.lines[1].epcs == [EPC]
    assert manifest.lines[1].quantity == 1
    assert manifest.lines[2].quantity == 1
    assert manifest.window_start is not None
    assert manifest.window_start.isoformat() == "2025-03-01T00:00:00+00:00"


def test_gtin_check_digit_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(gtin="08719139005741")), site)

    assert found == ["line 1: GTIN 08719139005741 has check digit 1; expected 0"]


def test_gtin_as_number_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(gtin=8719139005740)), site)

    assert found == [
        "line 1: GTIN must be a string of digits, not a number, so that leading zeros survive"
    ]


def test_gtin_spreadsheet_exponent_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(gtin="8.71914E+12")), site)

    assert found == ["line 1: GTIN '8.71914E+12' must contain only digits"]


def test_gtin12_check_digit_rejected(site: Site) -> None:
    # Weighted sum of 87191390057 is 102, so the GTIN-12 check digit is 8.
    found = messages(payload(gtin_line(gtin="871913900574")), site)

    assert found == ["line 1: GTIN 871913900574 has check digit 4; expected 8"]


def test_gtin_nine_digits_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(gtin="871913900")), site)

    assert found == ["line 1: GTIN '871913900' has 9 digits; expected 8, 12, 13 or 14"]


def test_sscc_check_digit_rejected(site: Site) -> None:
    line = {"line_no": 4, "sscc": "946100520000000073", "unit": "PLT"}

    found = messages(payload(line), site)

    assert found == ["line 4: SSCC 946100520000000073 has check digit 3; expected 2"]


def test_sscc_length_rejected(site: Site) -> None:
    line = {"line_no": 4, "sscc": "46100520000000072", "unit": "PLT"}

    found = messages(payload(line), site)

    assert found == ["line 4: SSCC '46100520000000072' must be exactly 18 digits"]


def test_sscc_quantity_not_one_rejected(site: Site) -> None:
    line = {"line_no": 2, "sscc": SSCC, "quantity": 40, "unit": "CT"}

    found = messages(payload(line), site)

    assert found == [
        "line 2: an SSCC line is one logistic unit, so quantity must be 1, got 40"
    ]


def test_hs_code_short_rejected(site: Site) -> None:
    # 8471300000 with its last zero lost is not padded back.
    found = messages(payload(gtin_line(hs_code="847130000")), site)

    assert found == ["line 1: HS code '847130000' has 9 digits; expected 10"]


def test_hs_code_as_number_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(hs_code=101210000)), site)

    assert found == [
        "line 1: HS code must be a string of digits, not a number, so that leading "
        "zeros survive"
    ]


def test_hs_code_configured_length(site: Site) -> None:
    manifest = parse_manifest(
        payload(gtin_line(hs_code="84713000")), site=site, hs_code_digits=8
    )

    assert manifest.lines[0].hs_code == "84713000"


def test_hs_code_letters_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(hs_code="84713O0000")), site)

    assert found == ["line 1: HS code '84713O0000' must contain only digits"]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, "line 1: quantity must be a whole number of at least 1, got 0"),
        (-3, "line 1: quantity must be a whole number of at least 1, got -3"),
        (2.5, "line 1: quantity must be a whole number of at least 1, got 2.5"),
        ("2.5", "line 1: quantity must be a whole number of at least 1, got '2.5'"),
        (True, "line 1: quantity must be a whole number of at least 1, got True"),
        (
            99999999999999999999,
            "line 1: quantity must be at most 2147483647, got 99999999999999999999",
        ),
        ("2147483648", "line 1: quantity must be at most 2147483647, got '2147483648'"),
    ],
)
def test_quantity_not_positive_rejected(
    site: Site, quantity: Any, expected: str
) -> None:
    found = messages(payload(gtin_line(quantity=quantity)), site)

    assert found == [expected]


def test_gtin_without_quantity_rejected(site: Site) -> None:
    line = gtin_line()
    del line["quantity"]

    found = messages(payload(line), site)

    assert found == [f"line 1: GTIN {GTIN} needs a quantity"]


def test_epc_not_hex_rejected(site: Site) -> None:
    line = {"line_no": 3, "epcs": ["3036142C8C008F80000532GG"], "unit": "PCE"}

    found = messages(payload(line), site)

    assert found == ["line 3: EPC '3036142C8C008F80000532GG' is not a hex string"]


def test_epc_partial_word_rejected(site: Site) -> None:
    line = {"line_no": 3, "epcs": ["3036142C8C008F800005324"], "unit": "PCE"}

    found = messages(payload(line), site)

    assert found == [
        "line 3: EPC 3036142C8C008F800005324 has 23 hex digits; expected whole 16-bit "
        "words (a multiple of 4 hex digits, at most 124)"
    ]


def test_epc_quantity_mismatch_rejected(site: Site) -> None:
    line = {"line_no": 3, "epcs": [EPC], "quantity": 2, "unit": "PCE"}

    found = messages(payload(line), site)

    assert found == ["line 3: quantity 2 differs from the 1 listed EPCs"]


def test_epc_on_two_lines_rejected(site: Site) -> None:
    first = {"line_no": 1, "epcs": [EPC], "unit": "PCE"}
    second = {
        "line_no": 2,
        "sscc": SSCC,
        "unit": "PLT",
        "contents": [{"epcs": [EPC]}],
    }

    found = messages(payload(first, second), site)

    assert found == [f"line 2: EPC {EPC} is also listed on line 1"]


def test_sscc_on_two_lines_rejected(site: Site) -> None:
    first = {"line_no": 1, "sscc": SSCC, "unit": "PLT"}
    second = {"line_no": 2, "sscc": SSCC, "unit": "PLT"}

    found = messages(payload(first, second), site)

    assert found == [f"line 2: SSCC {SSCC} is also on line 1"]


def test_two_identities_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(sscc=SSCC)), site)

    assert found == [
        "line 1: give exactly one of gtin, sscc or epcs; this line gives gtin and sscc"
    ]


def test_no_identity_rejected(site: Site) -> None:
    found = messages(payload({"line_no": 1, "quantity": 1, "unit": "CT"}), site)

    assert found == [
        "line 1: give exactly one of gtin, sscc or epcs; this line gives none of them"
    ]


def test_contents_on_gtin_line_rejected(site: Site) -> None:
    line = gtin_line(contents=[{"gtin": GTIN, "quantity": 1}])

    found = messages(payload(line), site)

    assert found == ["line 1: contents are allowed only on an SSCC (pallet) line"]


def test_contents_entry_errors_named(site: Site) -> None:
    line = {
        "line_no": 5,
        "sscc": SSCC,
        "unit": "PLT",
        "contents": [{"gtin": GTIN}, {"gtin": "08719139005741", "quantity": 1}],
    }

    found = messages(payload(line), site)

    assert found == [
        f"line 5: contents entry 1: GTIN {GTIN} needs a quantity",
        "line 5: contents entry 2: GTIN 08719139005741 has check digit 1; expected 0",
    ]


def test_duplicate_line_numbers_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(), gtin_line(quantity=0)), site)

    assert found == [
        "line 1: quantity must be a whole number of at least 1, got 0",
        "line 1: line number 1 is repeated",
    ]


def test_missing_line_no_named_by_position(site: Site) -> None:
    line = gtin_line()
    del line["line_no"]

    found = messages(payload(gtin_line(), line), site)

    assert found == ["line at position 2: line_no is missing"]


def test_unknown_field_rejected(site: Site) -> None:
    found = messages(payload(gtin_line(qty=5)), site)

    assert found == ["line 1: unknown field 'qty'"]


def test_unknown_portal_rejected(site: Site) -> None:
    found = messages(payload(portals=["door-9"]), site)

    assert found == ["portal 'door-9' is not in site wgq (known: door-3, gate-1)"]


def test_other_site_rejected(site: Site) -> None:
    found = messages(payload(site="elsewhere"), site)

    assert found == ["site 'elsewhere' is not this hub's site 'wgq'"]


def test_window_without_offset_rejected(site: Site) -> None:
    found = messages(payload(window_end="2025-03-01T18:00:00"), site)

    assert found == [
        "window_end 2025-03-01T18:00:00 has no UTC offset; write it as RFC 3339, "
        "e.g. 2025-03-01T08:00:00+08:00"
    ]


def test_window_reversed_rejected(site: Site) -> None:
    data = payload(
        window_start="2025-03-02T00:00:00Z", window_end="2025-03-01T00:00:00Z"
    )

    found = messages(data, site)

    assert found == [
        "window_end 2025-03-01T00:00:00+00:00 is before window_start "
        "2025-03-02T00:00:00+00:00"
    ]


def test_no_lines_rejected(site: Site) -> None:
    data = payload()
    data["lines"] = []

    found = messages(data, site)

    assert found == ["a manifest needs at least one line"]


def test_bad_direction_rejected(site: Site) -> None:
    found = messages(payload(direction="inbound"), site)

    assert found == ["direction: Input should be 'in' or 'out'"]


def test_every_issue_reported_at_once(site: Site) -> None:
    data = payload(
        gtin_line(gtin="08719139005741"),
        gtin_line(line_no=2, hs_code="847130000"),
        portals=["door-9"],
    )

    found = messages(data, site)

    assert len(found) == 3


def test_not_an_object_rejected() -> None:
    found = messages([1, 2], None)  # type: ignore[arg-type]

    assert found == ["a manifest must be a JSON object, got list"]
