"""Decode and encode EPC binary encodings by the GS1 EPC Tag Data Standard (TDS).

`decode_epc` turns the hex of an EPC bank, as a reader reports it, into a flat dict
with the pure-identity URI, the tag URI and the GS1 keys (GTIN-14, SSCC-18, GLN,
GRAI, GIAI). It never raises on tag data: hex that is not a decodable GS1 EPC comes
back as `scheme: "unknown"` with a `reason`, because a wrong GTIN in the ledger is
worse than none. The encoders and the check-digit helpers raise `EpcError`.

Supported binary schemes: SGTIN-96/198, SSCC-96, SGLN-96/195, GRAI-96/170,
GIAI-96/202 and GID-96.

The module is written here rather than taken from pyepc 0.5.0, because that package
decodes only SGTIN and SSCC, decodes a 112-bit PC+EPC string as a false SGTIN-96, and
downloads the GS1 company prefix list over the network when given a GTIN alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "COMMON_KEYS",
    "INVALID_HEX",
    "SUPPORTED_SCHEMES",
    "UNKNOWN_SCHEME",
    "EpcDict",
    "EpcError",
    "decode_epc",
    "encode_sgtin96",
    "encode_sscc96",
    "gs1_check_digit",
    "normalize_gtin",
]

EpcDict = dict[str, str | int | None]


class EpcError(ValueError):
    """Invalid input to an EPC encoder or a GS1 key helper."""


class _UndecodableError(Exception):
    """Tag data that matches no GS1 EPC binary encoding. The message is the reason."""


# Keys present in every result, null where they do not apply. Scheme-specific keys
# (gtin, sscc, gln, ...) appear only on results of their scheme.
COMMON_KEYS: Final = (
    "hex",
    "scheme",
    "uri",
    "tag_uri",
    "filter",
    "company_prefix",
    "serial",
)

UNKNOWN_SCHEME: Final = "unknown"

# Value of `error` when the input itself is not hex, as opposed to hex that is
# simply not a GS1 EPC (a factory-programmed tag, a PC word in front, ...).
INVALID_HEX: Final = "invalid_hex"

_HEX_RE: Final = re.compile(r"[0-9A-F]+")

# Partition tables of the TDS coding tables. For partition value 0..6 each row
# gives the bits and digits of the GS1 Company Prefix, then the bits and digits (or,
# for string fields, characters) of the field that shares the block with it.
_Partition = tuple[int, int, int, int]

_SGTIN_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 4, 1),
    (37, 11, 7, 2),
    (34, 10, 10, 3),
    (30, 9, 14, 4),
    (27, 8, 17, 5),
    (24, 7, 20, 6),
    (20, 6, 24, 7),
)
_SSCC_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 18, 5),
    (37, 11, 21, 6),
    (34, 10, 24, 7),
    (30, 9, 28, 8),
    (27, 8, 31, 9),
    (24, 7, 34, 10),
    (20, 6, 38, 11),
)
_SGLN_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 1, 0),
    (37, 11, 4, 1),
    (34, 10, 7, 2),
    (30, 9, 11, 3),
    (27, 8, 14, 4),
    (24, 7, 17, 5),
    (20, 6, 21, 6),
)
_GRAI_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 4, 0),
    (37, 11, 7, 1),
    (34, 10, 10, 2),
    (30, 9, 14, 3),
    (27, 8, 17, 4),
    (24, 7, 20, 5),
    (20, 6, 24, 6),
)
_GIAI96_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 42, 13),
    (37, 11, 45, 14),
    (34, 10, 48, 15),
    (30, 9, 52, 16),
    (27, 8, 55, 17),
    (24, 7, 58, 18),
    (20, 6, 62, 19),
)
# GIAI-202: the asset reference is a 7-bit string of at most 30 - L characters.
_GIAI202_PARTITIONS: Final[tuple[_Partition, ...]] = (
    (40, 12, 148, 18),
    (37, 11, 151, 19),
    (34, 10, 154, 20),
    (30, 9, 158, 21),
    (27, 8, 161, 22),
    (24, 7, 164, 23),
    (20, 6, 168, 24),
)

# GS1 AI encodable character set 82 (GS1 General Specifications): the only
# characters a 7-bit string field may carry.
_CHARSET_82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)

# Characters of set 82 that an EPC URI percent-escapes (TDS, EPC URI character
# encoding).
_URI_ESCAPES: Final = str.maketrans(
    {
        '"': "%22",
        "%": "%25",
        "&": "%26",
        "/": "%2F",
        "<": "%3C",
        ">": "%3E",
        "?": "%3F",
    }
)


# --- GS1 keys ------------------------------------------------------------------


def gs1_check_digit(digits: str) -> str:
    """Compute the GS1 mod-10 check digit of a digit string given without it.

    Weights 3 and 1 alternate from the rightmost digit (GS1 General Specifications,
    check digit calculation). Raises EpcError if `digits` is empty or not all ASCII
    digits.
    """
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise EpcError(
            f"invalid digit string {digits!r} for a check digit; expected ASCII digits"
        )

    # Summing ASCII codes minus ord("0") per digit keeps the loop in C, because
    # this runs once for every decoded tag.
    weight3 = digits[-1::-2]
    weight1 = digits[-2::-2]
    total = 3 * (sum(weight3.encode()) - 48 * len(weight3))
    total += sum(weight1.encode()) - 48 * len(weight1)

    # The final % 10 maps a sum that is already a multiple of ten to 0, not 10.
    return str((10 - total % 10) % 10)


def normalize_gtin(text: str) -> str:
    """Return a GTIN-8, -12, -13 or -14 as a 14-digit string, left-padded with zeros.

    Raises EpcError if the text is not 8, 12, 13 or 14 digits or the check digit is
    wrong. Surrounding whitespace is ignored.
    """
    gtin = text.strip()
    if not (gtin.isascii() and gtin.isdigit()):
        raise EpcError(f"GTIN {text!r} must contain only digits")
    if len(gtin) not in (8, 12, 13, 14):
        raise EpcError(
            f"GTIN {text!r} has {len(gtin)} digits; expected 8, 12, 13 or 14"
        )

    _verify_check_digit("GTIN", gtin)
    return gtin.zfill(14)


def _verify_check_digit(kind: str, key: str) -> None:
    expected = gs1_check_digit(key[:-1])
    if key[-1] != expected:
        raise EpcError(f"{kind} {key} has check digit {key[-1]}; expected {expected}")


# --- decoding ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scheme:
    name: str
    bits: int
    decode: Callable[[str, str, int], EpcDict]


def decode_epc(text: str) -> EpcDict:
    """Decode the hex of one EPC into a dict; never raises on bad tag data.

    The hex must contain the EPC alone, without a PC word, either in the fewest hex
    digits that hold the scheme's bits or padded with zero bits to a whole number
    of 16-bit words as it sits in tag memory. Anything else comes back with
    `scheme` "unknown" and a `reason`, and input that is not hex at all also gets
    `error` "invalid_hex". Lowercase hex is accepted.
    """
    hex_text = text.strip().upper()
    if not _HEX_RE.fullmatch(hex_text):
        reason = f"{text.strip()!r} is not a hex string" if hex_text else "empty input"
        result = _unknown(hex_text, reason)
        result["error"] = INVALID_HEX
        return result

    if len(hex_text) < 2:
        return _unknown(hex_text, "too short to hold an 8-bit EPC header")

    header = int(hex_text[:2], 16)
    scheme = _SCHEMES.get(header)
    if scheme is None:
        return _unknown(
            hex_text,
            f"header 0x{header:02X} is not a supported GS1 EPC header",
        )

    padding = _padding_bits(len(hex_text), scheme.bits)
    if padding is None:
        return _unknown(
            hex_text,
            f"header 0x{header:02X} means {scheme.name} ({scheme.bits} bits) "
            f"but the hex holds {len(hex_text) * 4} bits",
        )

    value = int(hex_text, 16)
    if value & ((1 << padding) - 1):
        return _unknown(hex_text, f"{scheme.name} padding bits are not zero")

    try:
        return scheme.decode(hex_text, scheme.name, value >> padding)
    except _UndecodableError as exc:
        return _unknown(hex_text, f"{scheme.name}: {exc}")


def _padding_bits(hex_digits: int, scheme_bits: int) -> int | None:
    # Gen2 EPC memory is addressed in 16-bit words, so readers report a 198-bit EPC
    # as 208 bits. Some software writes the minimal hex form, so both are accepted.
    total_bits = hex_digits * 4
    minimal_bits = -(-scheme_bits // 4) * 4
    word_bits = -(-scheme_bits // 16) * 16
    if total_bits in (minimal_bits, word_bits):
        return total_bits - scheme_bits
    return None


def _unknown(hex_text: str, reason: str) -> EpcDict:
    return {
        "hex": hex_text,
        "scheme": UNKNOWN_SCHEME,
        "uri": None,
        "tag_uri": None,
        "filter": None,
        "company_prefix": None,
        "serial": None,
        "reason": reason,
    }


def _result(
    hex_text: str,
    scheme: str,
    uri_body: str,
    filter_value: int | None,
    company_prefix: str | None,
    serial: str | None,
) -> EpcDict:
    kind = scheme.split("-", 1)[0]
    tag_body = uri_body if filter_value is None else f"{filter_value}.{uri_body}"
    return {
        "hex": hex_text,
        "scheme": scheme,
        "uri": f"urn:epc:id:{kind}:{uri_body}",
        "tag_uri": f"urn:epc:tag:{scheme}:{tag_body}",
        "filter": filter_value,
        "company_prefix": company_prefix,
        "serial": serial,
    }


def _split_partition(
    partitions: tuple[_Partition, ...], partition: int, block: int
) -> tuple[str, str]:
    # TDS partition table coding method: the partition value sets where a block of
    # bits divides between the company prefix and the next field. Each integer must
    # fit in the digits it encodes.
    if partition >= len(partitions):
        raise _UndecodableError(f"invalid partition value {partition}")

    _, prefix_digits, other_bits, other_digits = partitions[partition]
    prefix = block >> other_bits
    other = block & ((1 << other_bits) - 1)
    return (
        _digits(prefix, prefix_digits, "company prefix"),
        _digits(other, other_digits, "field after the company prefix"),
    )


def _digits(value: int, digits: int, field: str) -> str:
    if value >= 10**digits:
        raise _UndecodableError(
            f"{field} value {value} does not fit in {digits} digits"
        )
    return f"{value:0{digits}d}" if digits else ""


def _decode_string(value: int, width: int, max_chars: int, field: str) -> str:
    # TDS string coding method: 7-bit ASCII characters from the most significant
    # end, ended by the first all-zero character, with every bit after it zero.
    chars: list[str] = []
    shift = width
    while shift >= 7:
        shift -= 7
        code = (value >> shift) & 0x7F
        if code == 0:
            break
        char = chr(code)
        if char not in _CHARSET_82:
            raise _UndecodableError(
                f"{field} has character 0x{code:02X} outside set 82"
            )
        chars.append(char)

    if value & ((1 << shift) - 1):
        raise _UndecodableError(f"{field} has non-zero bits after its last character")
    if not chars:
        raise _UndecodableError(f"{field} is empty")
    if len(chars) > max_chars:
        raise _UndecodableError(
            f"{field} has {len(chars)} characters; at most {max_chars}"
        )
    return "".join(chars)


def _escape(component: str) -> str:
    return component.translate(_URI_ESCAPES)


def _head(value: int, bits: int) -> tuple[int, int]:
    # Filter and partition: the 3+3 bits right after the 8-bit header.
    return (value >> (bits - 11)) & 0x7, (value >> (bits - 14)) & 0x7


def _mask(width: int) -> int:
    return (1 << width) - 1


def _decode_sgtin(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS SGTIN-96 and SGTIN-198 coding tables: header 8, filter 3, partition 3,
    # prefix + item reference 44, then the serial as an integer or a string.
    serial_bits = 38 if scheme == "sgtin-96" else 140
    filter_value, partition = _head(value, serial_bits + 58)
    block = (value >> serial_bits) & _mask(44)
    company_prefix, item_reference = _split_partition(
        _SGTIN_PARTITIONS, partition, block
    )

    serial_value = value & _mask(serial_bits)
    if scheme == "sgtin-96":
        serial = str(serial_value)
    else:
        serial = _decode_string(serial_value, serial_bits, 20, "serial")

    # GTIN-14: indicator digit, company prefix, rest of the item reference, check.
    body = item_reference[0] + company_prefix + item_reference[1:]
    result = _result(
        hex_text,
        scheme,
        f"{company_prefix}.{item_reference}.{_escape(serial)}",
        filter_value,
        company_prefix,
        serial,
    )
    result["gtin"] = body + gs1_check_digit(body)
    result["item_reference"] = item_reference
    return result


def _decode_sscc(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS SSCC-96 coding table: header 8, filter 3, partition 3, prefix + serial
    # reference 58, then 24 reserved bits that an encoder sets to zero.
    if value & _mask(24):
        raise _UndecodableError("reserved bits are not zero")

    filter_value, partition = _head(value, 96)
    block = (value >> 24) & _mask(58)
    company_prefix, serial_reference = _split_partition(
        _SSCC_PARTITIONS, partition, block
    )

    # SSCC-18: extension digit, company prefix, rest of the serial reference, check.
    body = serial_reference[0] + company_prefix + serial_reference[1:]
    result = _result(
        hex_text,
        scheme,
        f"{company_prefix}.{serial_reference}",
        filter_value,
        company_prefix,
        serial_reference,
    )
    result["sscc"] = body + gs1_check_digit(body)
    result["extension"] = serial_reference[0]
    return result


def _decode_sgln(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS SGLN-96 and SGLN-195 coding tables: header 8, filter 3, partition 3,
    # prefix + location reference 41, then the GLN extension as an integer (SGLN-96)
    # or a string of up to 20 characters.
    extension_bits = 41 if scheme == "sgln-96" else 140
    filter_value, partition = _head(value, extension_bits + 55)
    block = (value >> extension_bits) & _mask(41)
    company_prefix, location_reference = _split_partition(
        _SGLN_PARTITIONS, partition, block
    )

    extension_value = value & _mask(extension_bits)
    if scheme == "sgln-96":
        extension = str(extension_value)
    else:
        extension = _decode_string(extension_value, extension_bits, 20, "extension")

    body = company_prefix + location_reference
    result = _result(
        hex_text,
        scheme,
        f"{company_prefix}.{location_reference}.{_escape(extension)}",
        filter_value,
        company_prefix,
        None,
    )
    result["gln"] = body + gs1_check_digit(body)
    result["location_reference"] = location_reference
    result["extension"] = extension
    return result


def _decode_grai(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS GRAI-96 and GRAI-170 coding tables: header 8, filter 3, partition 3,
    # prefix + asset type 44, then the serial as an integer (GRAI-96) or a string of
    # up to 16 characters.
    serial_bits = 38 if scheme == "grai-96" else 112
    filter_value, partition = _head(value, serial_bits + 58)
    block = (value >> serial_bits) & _mask(44)
    company_prefix, asset_type = _split_partition(_GRAI_PARTITIONS, partition, block)

    serial_value = value & _mask(serial_bits)
    if scheme == "grai-96":
        serial = str(serial_value)
    else:
        serial = _decode_string(serial_value, serial_bits, 16, "serial")

    # AI (8003): a padding zero, prefix, asset type, check digit, then the serial.
    body = "0" + company_prefix + asset_type
    result = _result(
        hex_text,
        scheme,
        f"{company_prefix}.{asset_type}.{_escape(serial)}",
        filter_value,
        company_prefix,
        serial,
    )
    result["grai"] = body + gs1_check_digit(body) + serial
    result["asset_type"] = asset_type
    return result


def _decode_giai(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS GIAI-96 and GIAI-202 coding tables: header 8, filter 3, partition 3, then
    # the company prefix and the individual asset reference in the other 82 or 188
    # bits.
    block_bits = 82 if scheme == "giai-96" else 188
    filter_value, partition = _head(value, block_bits + 14)
    block = value & _mask(block_bits)

    if scheme == "giai-96":
        company_prefix, padded = _split_partition(_GIAI96_PARTITIONS, partition, block)
        # The TDS integer coding method gives no leading zeros to an asset reference.
        asset_reference = padded.lstrip("0") or "0"
    else:
        if partition >= len(_GIAI202_PARTITIONS):
            raise _UndecodableError(f"invalid partition value {partition}")
        _, prefix_digits, asset_bits, asset_chars = _GIAI202_PARTITIONS[partition]
        company_prefix = _digits(block >> asset_bits, prefix_digits, "company prefix")
        asset_reference = _decode_string(
            block & _mask(asset_bits), asset_bits, asset_chars, "asset reference"
        )

    result = _result(
        hex_text,
        scheme,
        f"{company_prefix}.{_escape(asset_reference)}",
        filter_value,
        company_prefix,
        None,
    )
    result["giai"] = company_prefix + asset_reference
    result["asset_reference"] = asset_reference
    return result


def _decode_gid(hex_text: str, scheme: str, value: int) -> EpcDict:
    # TDS GID-96 coding table: header 8, manager number 28, object class 24, serial 36.
    # GID has no filter value and no GS1 Company Prefix.
    manager_number = str((value >> 60) & _mask(28))
    object_class = str((value >> 36) & _mask(24))
    serial = str(value & _mask(36))

    result = _result(
        hex_text,
        scheme,
        f"{manager_number}.{object_class}.{serial}",
        None,
        None,
        serial,
    )
    result["manager_number"] = manager_number
    result["object_class"] = object_class
    return result


# EPC header values (TDS EPC header table) of the schemes decoded here.
_SCHEMES: Final[dict[int, _Scheme]] = {
    0x30: _Scheme("sgtin-96", 96, _decode_sgtin),
    0x36: _Scheme("sgtin-198", 198, _decode_sgtin),
    0x31: _Scheme("sscc-96", 96, _decode_sscc),
    0x32: _Scheme("sgln-96", 96, _decode_sgln),
    0x39: _Scheme("sgln-195", 195, _decode_sgln),
    0x33: _Scheme("grai-96", 96, _decode_grai),
    0x37: _Scheme("grai-170", 170, _decode_grai),
    0x34: _Scheme("giai-96", 96, _decode_giai),
    0x38: _Scheme("giai-202", 202, _decode_giai),
    0x35: _Scheme("gid-96", 96, _decode_gid),
}

SUPPORTED_SCHEMES: Final = tuple(sorted(scheme.name for scheme in _SCHEMES.values()))


# --- encoding ------------------------------------------------------------------


def encode_sgtin96(
    gtin14: str, serial: int, company_prefix_digits: int, filter_value: int = 1
) -> str:
    """Encode a GTIN and a numeric serial as SGTIN-96 hex (24 uppercase digits).

    `gtin14` may also be a GTIN-8, -12 or -13; it is padded to 14 digits and its
    check digit verified. `company_prefix_digits` (6 to 12) is the length of the
    GS1 Company Prefix inside it, which the GTIN alone does not tell. Filter 1 is
    "point of sale trade item" in the TDS SGTIN filter values. Raises EpcError on
    any invalid argument.
    """
    gtin = normalize_gtin(gtin14)
    partition = _partition_for(company_prefix_digits)
    _check_range("filter value", filter_value, 8)
    # SGTIN-96 serials are integers of at most 38 bits (TDS SGTIN-96 coding table).
    _check_range("SGTIN-96 serial", serial, 1 << 38)

    prefix_bits, prefix_digits, item_bits, _ = _SGTIN_PARTITIONS[partition]
    company_prefix = int(gtin[1 : 1 + prefix_digits])
    item_reference = int(gtin[0] + gtin[1 + prefix_digits : 13])

    value = 0x30
    for field, width in (
        (filter_value, 3),
        (partition, 3),
        (company_prefix, prefix_bits),
        (item_reference, item_bits),
        (serial, 38),
    ):
        value = (value << width) | field
    return f"{value:024X}"


def encode_sscc96(
    sscc18: str, company_prefix_digits: int, filter_value: int = 0
) -> str:
    """Encode an SSCC-18 as SSCC-96 hex (24 uppercase digits).

    `company_prefix_digits` (6 to 12) is the length of the GS1 Company Prefix inside
    the SSCC. Filter 0 is "all others" in the TDS SSCC filter values. Raises
    EpcError if the SSCC is not 18 digits, its check digit is wrong, or an argument
    is out of range.
    """
    sscc = sscc18.strip()
    if not (sscc.isascii() and sscc.isdigit() and len(sscc) == 18):
        raise EpcError(f"SSCC {sscc18!r} must be exactly 18 digits")
    _verify_check_digit("SSCC", sscc)
    partition = _partition_for(company_prefix_digits)
    _check_range("filter value", filter_value, 8)

    prefix_bits, prefix_digits, serial_bits, _ = _SSCC_PARTITIONS[partition]
    company_prefix = int(sscc[1 : 1 + prefix_digits])
    serial_reference = int(sscc[0] + sscc[1 + prefix_digits : 17])

    value = 0x31
    for field, width in (
        (filter_value, 3),
        (partition, 3),
        (company_prefix, prefix_bits),
        (serial_reference, serial_bits),
        (0, 24),
    ):
        value = (value << width) | field
    return f"{value:024X}"


def _partition_for(company_prefix_digits: int) -> int:
    # Every partition table here maps a 12-digit prefix to 0 down to 6 digits to 6.
    if isinstance(company_prefix_digits, bool) or company_prefix_digits not in range(
        6, 13
    ):
        raise EpcError(
            f"company prefix length {company_prefix_digits!r} must be 6 to 12 digits"
        )
    return 12 - company_prefix_digits


def _check_range(name: str, value: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise EpcError(f"{name} {value!r} must be an integer from 0 to {limit - 1}")
