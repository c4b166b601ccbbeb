"""EPC decoding and encoding by the GS1 Tag Data Standard.

Test vectors are built bit by bit from the TDS field layouts with string formatting,
so they do not share code with the shift-and-mask decoder under test.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bwms.epc import (
    COMMON_KEYS,
    INVALID_HEX,
    UNKNOWN_SCHEME,
    EpcError,
    decode_epc,
    encode_sgtin96,
    encode_sscc96,
    gs1_check_digit,
    normalize_gtin,
)

# --- vector builders -------------------------------------------------------------


def _field(value: int, width: int) -> str:
    bits = f"{value:0{width}b}"
    assert len(bits) == width, f"{value} does not fit in {width} bits"
    return bits


def _chars(text: str, width: int) -> str:
    bits = "".join(f"{ord(char):07b}" for char in text)
    assert len(bits) <= width
    return bits.ljust(width, "0")


def _to_hex(bits: str, align_bits: int = 16) -> str:
    # Tag memory is addressed in 16-bit words, so pad with zero bits like a tag does.
    padded = bits.ljust(-(-len(bits) // align_bits) * align_bits, "0")
    return f"{int(padded, 2):0{len(padded) // 4}X}"


def _reference_check_digit(digits: str) -> str:
    # Written out the long way, as GS1 describes it, to check the fast version.
    total = 0
    for position, char in enumerate(reversed(digits)):
        weight = 3 if position % 2 == 0 else 1
        total += int(char) * weight
    nearest_ten = (total + 9) // 10 * 10
    return str(nearest_ten - total)


SGTIN96 = "00110000"
SSCC96 = "00110001"
SGLN96 = "00110010"
GRAI96 = "00110011"
GIAI96 = "00110100"
GID96 = "00110101"
SGTIN198 = "00110110"
GRAI170 = "00110111"
GIAI202 = "00111000"
SGLN195 = "00111001"


def _sgtin96(filter_value: int, partition: int, fields: str, serial: int) -> str:
    return _to_hex(
        SGTIN96
        + _field(filter_value, 3)
        + _field(partition, 3)
        + fields
        + _field(serial, 38)
    )


# --- reported decoder faults -----------------------------------------------------------------


def test_sgtin96_uri() -> None:
    result = decode_epc("3036142C8C008F8000053244")

    assert result["uri"] == "urn:epc:id:sgtin:8719139.000574.340548"


def test_sgtin96_check_digit_zero() -> None:
    # The weighted sum of 0871913900574 is a multiple of ten, so the check digit is 0.
    result = decode_epc("3036142C8C008F8000053244")

    assert result["gtin"] == "08719139005740"


def test_pc_word_in_front_is_unknown() -> None:
    result = decode_epc("3000E2009A9040060AF000000372")

    assert result["scheme"] == UNKNOWN_SCHEME
    assert "gtin" not in result
    assert "112 bits" in str(result["reason"])
    assert result["hex"] == "3000E2009A9040060AF000000372"


def test_non_gs1_header_is_unknown() -> None:
    result = decode_epc("E2009A9040060AF000000372")

    assert result["scheme"] == UNKNOWN_SCHEME
    assert "0xE2" in str(result["reason"])
    assert result["hex"] == "E2009A9040060AF000000372"


def test_sscc96_decodes_sscc18() -> None:
    result = decode_epc("31D519601218711A07000000")

    assert result["uri"] == "urn:epc:id:sscc:4610052.9000000007"
    assert result["sscc"] == "946100520000000072"
    assert result["filter"] == 6
    assert result["extension"] == "9"


def test_sscc96_filter_six_round_trip() -> None:
    hex_text = encode_sscc96(
        "946100520000000072", company_prefix_digits=7, filter_value=6
    )

    assert hex_text == "31D519601218711A07000000"
    assert decode_epc(hex_text)["sscc"] == "946100520000000072"


# --- one known vector per scheme -------------------------------------------------

# Company prefix 0614141 (7 digits, partition 5) and its keys are the examples used
# throughout the GS1 standards: GTIN 80614141123458, GLN 0614141123452, SSCC
# 106141412345678908, GRAI 00614141123452 + serial.
SCHEME_VECTORS = [
    pytest.param(
        _sgtin96(3, 5, _field(614141, 24) + _field(812345, 20), 6789),
        {
            "scheme": "sgtin-96",
            "uri": "urn:epc:id:sgtin:0614141.812345.6789",
            "tag_uri": "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
            "filter": 3,
            "company_prefix": "0614141",
            "serial": "6789",
            "gtin": "80614141123458",
            "item_reference": "812345",
        },
        id="sgtin-96",
    ),
    pytest.param(
        # partition 0: a 12-digit prefix leaves only the indicator digit
        _sgtin96(1, 0, _field(61414112345, 40) + _field(0, 4), 1),
        {
            "uri": "urn:epc:id:sgtin:061414112345.0.1",
            "company_prefix": "061414112345",
            "gtin": "00614141123452",
            "item_reference": "0",
        },
        id="sgtin-96-partition-0",
    ),
    pytest.param(
        _to_hex(
            SGTIN198
            + _field(1, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(812345, 20)
            + _chars("32a/b", 140)
        ),
        {
            "scheme": "sgtin-198",
            "uri": "urn:epc:id:sgtin:0614141.812345.32a%2Fb",
            "tag_uri": "urn:epc:tag:sgtin-198:1.0614141.812345.32a%2Fb",
            "serial": "32a/b",
            "gtin": "80614141123458",
        },
        id="sgtin-198",
    ),
    pytest.param(
        _to_hex(
            SSCC96
            + _field(2, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(1234567890, 34)
            + _field(0, 24)
        ),
        {
            "scheme": "sscc-96",
            "uri": "urn:epc:id:sscc:0614141.1234567890",
            "tag_uri": "urn:epc:tag:sscc-96:2.0614141.1234567890",
            "filter": 2,
            "serial": "1234567890",
            "sscc": "106141412345678908",
            "extension": "1",
        },
        id="sscc-96",
    ),
    pytest.param(
        _to_hex(
            SGLN96
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(12345, 17)
            + _field(400, 41)
        ),
        {
            "scheme": "sgln-96",
            "uri": "urn:epc:id:sgln:0614141.12345.400",
            "tag_uri": "urn:epc:tag:sgln-96:0.0614141.12345.400",
            "serial": None,
            "gln": "0614141123452",
            "location_reference": "12345",
            "extension": "400",
        },
        id="sgln-96",
    ),
    pytest.param(
        # partition 0: the location reference has no digits at all
        _to_hex(
            SGLN96
            + _field(0, 3)
            + _field(0, 3)
            + _field(61414112345, 40)
            + _field(0, 1)
            + _field(0, 41)
        ),
        {
            "uri": "urn:epc:id:sgln:061414112345..0",
            "gln": "0614141123452",
            "location_reference": "",
        },
        id="sgln-96-partition-0",
    ),
    pytest.param(
        _to_hex(
            SGLN195
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(12345, 17)
            + _chars("32a/b", 140)
        ),
        {
            "scheme": "sgln-195",
            "uri": "urn:epc:id:sgln:0614141.12345.32a%2Fb",
            "gln": "0614141123452",
            "extension": "32a/b",
        },
        id="sgln-195",
    ),
    pytest.param(
        _to_hex(
            GRAI96
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(12345, 20)
            + _field(400, 38)
        ),
        {
            "scheme": "grai-96",
            "uri": "urn:epc:id:grai:0614141.12345.400",
            "tag_uri": "urn:epc:tag:grai-96:0.0614141.12345.400",
            "serial": "400",
            "grai": "00614141123452400",
            "asset_type": "12345",
        },
        id="grai-96",
    ),
    pytest.param(
        _to_hex(
            GRAI170
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(12345, 20)
            + _chars("32a/b", 112)
        ),
        {
            "scheme": "grai-170",
            "uri": "urn:epc:id:grai:0614141.12345.32a%2Fb",
            "serial": "32a/b",
            "grai": "0061414112345232a/b",
        },
        id="grai-170",
    ),
    pytest.param(
        _to_hex(
            GIAI96
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _field(12345400, 58)
        ),
        {
            "scheme": "giai-96",
            "uri": "urn:epc:id:giai:0614141.12345400",
            "tag_uri": "urn:epc:tag:giai-96:0.0614141.12345400",
            "serial": None,
            "giai": "061414112345400",
            "asset_reference": "12345400",
        },
        id="giai-96",
    ),
    pytest.param(
        _to_hex(
            GIAI202
            + _field(0, 3)
            + _field(5, 3)
            + _field(614141, 24)
            + _chars("32a/b", 164)
        ),
        {
            "scheme": "giai-202",
            "uri": "urn:epc:id:giai:0614141.32a%2Fb",
            "giai": "061414132a/b",
            "asset_reference": "32a/b",
        },
        id="giai-202",
    ),
    pytest.param(
        _to_hex(GID96 + _field(95100000, 28) + _field(12345, 24) + _field(400, 36)),
        {
            "scheme": "gid-96",
            "uri": "urn:epc:id:gid:95100000.12345.400",
            "tag_uri": "urn:epc:tag:gid-96:95100000.12345.400",
            "filter": None,
            "company_prefix": None,
            "serial": "400",
            "manager_number": "95100000",
            "object_class": "12345",
        },
        id="gid-96",
    ),
]


@pytest.mark.parametrize(("hex_text", "expected"), SCHEME_VECTORS)
def test_scheme_vector_decodes(hex_text: str, expected: dict[str, object]) -> None:
    result = decode_epc(hex_text)

    for key, value in expected.items():
        assert result.get(key, "<missing>") == value, key


@pytest.mark.parametrize(("hex_text", "expected"), SCHEME_VECTORS)
def test_scheme_vector_has_common_keys(
    hex_text: str, expected: dict[str, object]
) -> None:
    result = decode_epc(hex_text)

    for key in COMMON_KEYS:
        assert key in result, key
    assert "reason" not in result


def test_tds_sgtin96_example_hex() -> None:
    # The builder must reproduce the SGTIN-96 example printed in the TDS itself.
    hex_text = _sgtin96(3, 5, _field(614141, 24) + _field(812345, 20), 6789)

    assert hex_text == "3074257BF7194E4000001A85"


def test_sgtin198_minimal_hex_decodes() -> None:
    # 198 bits in 50 hex digits instead of 13 words: both forms are in use.
    bits = (
        SGTIN198
        + _field(1, 3)
        + _field(5, 3)
        + _field(614141, 24)
        + _field(812345, 20)
        + _chars("12345", 140)
    )
    hex_text = _to_hex(bits, align_bits=4)

    assert len(hex_text) == 50
    assert decode_epc(hex_text)["uri"] == "urn:epc:id:sgtin:0614141.812345.12345"


def test_string_serial_escapes_uri_characters() -> None:
    serial = "\"%&/<>?'"
    bits = (
        SGTIN198
        + _field(1, 3)
        + _field(5, 3)
        + _field(614141, 24)
        + _field(812345, 20)
        + _chars(serial, 140)
    )
    result = decode_epc(_to_hex(bits))

    assert result["serial"] == serial
    assert result["uri"] == "urn:epc:id:sgtin:0614141.812345.%22%25%26%2F%3C%3E%3F'"


def test_lowercase_hex_decodes() -> None:
    result = decode_epc("3036142c8c008f8000053244")

    assert result["gtin"] == "08719139005740"
    assert result["hex"] == "3036142C8C008F8000053244"


def test_surrounding_whitespace_trimmed() -> None:
    result = decode_epc("  3036142C8C008F8000053244\n")

    assert result["hex"] == "3036142C8C008F8000053244"
    assert result["scheme"] == "sgtin-96"


# --- unknown results -------------------------------------------------------------


def _assert_unknown(result: dict[str, object], reason_part: str) -> None:
    assert result["scheme"] == UNKNOWN_SCHEME
    assert reason_part in str(result["reason"])
    for key in ("uri", "tag_uri", "filter", "company_prefix", "serial"):
        assert result[key] is None, key
    for key in ("gtin", "sscc", "gln", "grai", "giai"):
        assert key not in result, key


@pytest.mark.parametrize(
    "hex_text",
    [
        "3036142C8C008F80000532",  # 88 bits
        "3036142C8C008F800005324400",  # 104 bits
        "3036142C8C008F80000532440000",  # 112 bits
        "3036142C8C008F8000053244" + "0" * 8,  # 96-bit EPC in a 128-bit read
        "31D519601218711A0700000",  # odd digit count
    ],
)
def test_length_mismatch_is_unknown(hex_text: str) -> None:
    _assert_unknown(decode_epc(hex_text), "bits")


def test_sgtin198_short_hex_is_unknown() -> None:
    _assert_unknown(decode_epc("36" + "0" * 46), "198 bits")


@pytest.mark.parametrize("header", ["00", "2C", "3A", "E2", "FF"])
def test_unsupported_header_is_unknown(header: str) -> None:
    _assert_unknown(decode_epc(header + "0" * 22), f"0x{header}")


def test_single_digit_is_unknown() -> None:
    _assert_unknown(decode_epc("3"), "header")


@pytest.mark.parametrize(
    ("scheme_bits", "layout"),
    [
        (SGTIN96, _field(0, 44) + _field(1, 38)),
        (SSCC96, _field(0, 58) + _field(0, 24)),
        (SGLN96, _field(0, 41) + _field(0, 41)),
        (GRAI96, _field(0, 44) + _field(1, 38)),
        (GIAI96, _field(0, 82)),
    ],
    ids=["sgtin-96", "sscc-96", "sgln-96", "grai-96", "giai-96"],
)
def test_partition_7_is_unknown(scheme_bits: str, layout: str) -> None:
    hex_text = _to_hex(scheme_bits + _field(1, 3) + _field(7, 3) + layout)

    _assert_unknown(decode_epc(hex_text), "partition")


def test_item_reference_wider_than_digits_is_unknown() -> None:
    # Partition 5 gives the item reference 20 bits but only 6 digits.
    hex_text = _sgtin96(1, 5, _field(614141, 24) + _field(1_000_000, 20), 1)

    _assert_unknown(decode_epc(hex_text), "does not fit in 6 digits")


def test_company_prefix_wider_than_digits_is_unknown() -> None:
    # Partition 6 gives the company prefix 20 bits but only 6 digits.
    hex_text = _sgtin96(1, 6, _field(1_000_000, 20) + _field(1, 24), 1)

    _assert_unknown(decode_epc(hex_text), "does not fit in 6 digits")


def test_sscc_reserved_bits_set_is_unknown() -> None:
    hex_text = _to_hex(
        SSCC96
        + _field(0, 3)
        + _field(5, 3)
        + _field(614141, 24)
        + _field(1, 34)
        + _field(1, 24)
    )

    _assert_unknown(decode_epc(hex_text), "reserved")


def test_padding_bits_set_is_unknown() -> None:
    bits = (
        SGTIN198
        + _field(1, 3)
        + _field(5, 3)
        + _field(614141, 24)
        + _field(812345, 20)
        + _chars("1", 140)
    )
    hex_text = _to_hex(bits + "0000000001")

    assert len(hex_text) == 52
    _assert_unknown(decode_epc(hex_text), "padding")


def _sgtin198_with_serial_bits(serial_bits: str) -> str:
    return _to_hex(
        SGTIN198
        + _field(1, 3)
        + _field(5, 3)
        + _field(614141, 24)
        + _field(812345, 20)
        + serial_bits
    )


@pytest.mark.parametrize("code", [0x20, 0x23, 0x40, 0x7F, 0x0A])
def test_string_character_outside_set_82_is_unknown(code: int) -> None:
    serial_bits = (_field(ord("A"), 7) + _field(code, 7)).ljust(140, "0")

    _assert_unknown(decode_epc(_sgtin198_with_serial_bits(serial_bits)), "set 82")


def test_string_bits_after_terminator_is_unknown() -> None:
    serial_bits = (_field(ord("A"), 7) + _field(0, 7) + _field(ord("B"), 7)).ljust(
        140, "0"
    )

    _assert_unknown(
        decode_epc(_sgtin198_with_serial_bits(serial_bits)), "non-zero bits"
    )


def test_empty_string_serial_is_unknown() -> None:
    _assert_unknown(decode_epc(_sgtin198_with_serial_bits(_field(0, 140))), "empty")


def test_giai202_asset_reference_too_long_is_unknown() -> None:
    # Partition 0 leaves 148 bits, room for 21 characters, but GIAI allows 18.
    hex_text = _to_hex(
        GIAI202
        + _field(0, 3)
        + _field(0, 3)
        + _field(61414112345, 40)
        + _chars("A" * 19, 148)
    )

    _assert_unknown(decode_epc(hex_text), "at most 18")


@pytest.mark.parametrize(
    "text", ["XYZ", "0x3036142C8C008F8000053244", "30 36", "", "30_36"]
)
def test_invalid_hex_has_error(text: str) -> None:
    result = decode_epc(text)

    assert result["scheme"] == UNKNOWN_SCHEME
    assert result["error"] == INVALID_HEX
    assert result["reason"]


def test_unknown_hex_has_no_error() -> None:
    assert "error" not in decode_epc("E2009A9040060AF000000372")


@given(
    header=st.sampled_from(
        ["30", "31", "32", "33", "34", "35", "36", "37", "38", "39"]
    ),
    body=st.text(alphabet="0123456789ABCDEF", min_size=20, max_size=52),
)
def test_decode_never_raises_on_hex(header: str, body: str) -> None:
    result = decode_epc(header + body)

    for key in COMMON_KEYS:
        assert key in result, key
    assert (result["scheme"] == UNKNOWN_SCHEME) == ("reason" in result)


@given(st.text(max_size=60))
def test_decode_never_raises_on_text(text: str) -> None:
    result = decode_epc(text)

    assert result["hex"] == text.strip().upper()


# --- GS1 keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "check"),
    [
        ("0871913900574", "0"),
        ("8061414112345", "8"),
        ("10614141234567890", "8"),
        ("03600029145", "2"),
        ("9638507", "4"),
        ("94610052000000007", "2"),
    ],
)
def test_check_digit_known(digits: str, check: str) -> None:
    assert gs1_check_digit(digits) == check


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_check_digit_matches_reference(digits: str) -> None:
    assert gs1_check_digit(digits) == _reference_check_digit(digits)


@pytest.mark.parametrize("digits", ["", "12a4", "１２３", "12 3"])
def test_check_digit_rejects_non_digits(digits: str) -> None:
    with pytest.raises(EpcError):
        gs1_check_digit(digits)


@pytest.mark.parametrize(
    ("text", "gtin14"),
    [
        ("96385074", "00000096385074"),
        ("036000291452", "00036000291452"),
        ("8719139005740", "08719139005740"),
        ("80614141123458", "80614141123458"),
        (" 08719139005740 ", "08719139005740"),
    ],
)
def test_normalize_gtin_pads_to_14(text: str, gtin14: str) -> None:
    assert normalize_gtin(text) == gtin14


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("08719139005741", "check digit"),
        ("0871913900574", "check digit"),
        ("123456789", "9 digits"),
        ("087191390057400", "15 digits"),
        ("0871913900574A", "only digits"),
        ("", "digits"),
    ],
)
def test_normalize_gtin_rejects(text: str, reason: str) -> None:
    with pytest.raises(EpcError, match=reason):
        normalize_gtin(text)


def test_epc_error_is_value_error() -> None:
    assert issubclass(EpcError, ValueError)


# --- encoders --------------------------------------------------------------------


def test_encode_sgtin96_field_case() -> None:
    assert encode_sgtin96("08719139005740", 340548, 7) == "3036142C8C008F8000053244"


def test_encode_sgtin96_accepts_gtin13() -> None:
    assert encode_sgtin96("8719139005740", 340548, 7) == "3036142C8C008F8000053244"


def test_encode_sgtin96_tds_example() -> None:
    assert encode_sgtin96("80614141123458", 6789, 7, filter_value=3) == (
        "3074257BF7194E4000001A85"
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"serial": 1 << 38}, "serial"),
        ({"serial": -1}, "serial"),
        ({"filter_value": 8}, "filter"),
        ({"company_prefix_digits": 5}, "company prefix"),
        ({"company_prefix_digits": 13}, "company prefix"),
        ({"gtin14": "08719139005741"}, "check digit"),
    ],
)
def test_encode_sgtin96_rejects(kwargs: dict[str, object], reason: str) -> None:
    arguments: dict[str, object] = {
        "gtin14": "08719139005740",
        "serial": 1,
        "company_prefix_digits": 7,
        "filter_value": 1,
    }
    arguments.update(kwargs)

    with pytest.raises(EpcError, match=reason):
        encode_sgtin96(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sscc", "prefix_digits", "reason"),
    [
        ("94610052000000007", 7, "18 digits"),
        ("946100520000000073", 7, "check digit"),
        ("94610052000000007X", 7, "18 digits"),
        ("946100520000000072", 4, "company prefix"),
    ],
)
def test_encode_sscc96_rejects(sscc: str, prefix_digits: int, reason: str) -> None:
    with pytest.raises(EpcError, match=reason):
        encode_sscc96(sscc, prefix_digits)


@given(
    body=st.text(alphabet="0123456789", min_size=13, max_size=13),
    serial=st.integers(min_value=0, max_value=(1 << 38) - 1),
    prefix_digits=st.integers(min_value=6, max_value=12),
    filter_value=st.integers(min_value=0, max_value=7),
)
def test_sgtin96_round_trip(
    body: str, serial: int, prefix_digits: int, filter_value: int
) -> None:
    gtin = body + _reference_check_digit(body)

    result = decode_epc(encode_sgtin96(gtin, serial, prefix_digits, filter_value))

    assert result["scheme"] == "sgtin-96"
    assert result["gtin"] == gtin
    assert result["serial"] == str(serial)
    assert result["filter"] == filter_value
    assert result["company_prefix"] == gtin[1 : 1 + prefix_digits]


@given(
    body=st.text(alphabet="0123456789", min_size=17, max_size=17),
    prefix_digits=st.integers(min_value=6, max_value=12),
    filter_value=st.integers(min_value=0, max_value=7),
)
def test_sscc96_round_trip(body: str, prefix_digits: int, filter_value: int) -> None:
    sscc = body + _reference_check_digit(body)

    result = decode_epc(encode_sscc96(sscc, prefix_digits, filter_value))

    assert result["scheme"] == "sscc-96"
    assert result["sscc"] == sscc
    assert result["filter"] == filter_value
    assert result["company_prefix"] == sscc[1 : 1 + prefix_digits]
    assert result["extension"] == sscc[0]


# --- command line ----------------------------------------------------------------


def _run_cli(*arguments: str) -> tuple[int, list[dict[str, object]]]:
    from bwms.cli import app

    result = CliRunner().invoke(app, ["epc", "decode", *arguments])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, lines


def test_cli_prints_one_json_per_line() -> None:
    exit_code, lines = _run_cli("3036142C8C008F8000053244", "31D519601218711A07000000")

    assert exit_code == 0
    assert len(lines) == 2
    assert lines[0]["gtin"] == "08719139005740"
    assert lines[1]["sscc"] == "946100520000000072"


def test_cli_unknown_epc_exits_zero() -> None:
    exit_code, lines = _run_cli("E2009A9040060AF000000372")

    assert exit_code == 0
    assert lines[0]["scheme"] == UNKNOWN_SCHEME


def test_cli_invalid_hex_exits_non_zero() -> None:
    exit_code, lines = _run_cli("not-hex", "3036142C8C008F8000053244")

    assert exit_code == 1
    assert len(lines) == 2
    assert lines[0]["error"] == INVALID_HEX
    assert lines[1]["scheme"] == "sgtin-96"


def test_all_names_exist() -> None:
    import bwms.epc

    for name in bwms.epc.__all__:
        assert hasattr(bwms.epc, name), name
