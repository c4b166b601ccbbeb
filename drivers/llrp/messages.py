"""LLRP 1.0.1 binary encoding: frames, parameters, and the messages a reader sends.

Every LLRP message starts with a 10-byte header: 3 reserved bits, a 3-bit protocol
version, a 10-bit message type, a 32-bit length that includes the header, and a
32-bit message id. A parameter is either TV or TLV. A TV parameter starts with one
byte that has bit 7 set and a 7-bit type, and the type fixes the length of the value.
A TLV parameter starts with 16 bits (6 reserved, 10-bit type) and a 16-bit length
that includes those 4 bytes. Vendor messages and parameters have type 1023 and carry
a 32-bit vendor id (the IANA enterprise number) and a subtype after the header.

The reader simulator builds its messages here. The client decodes with sllurp and
uses this module only to check frame headers before sllurp decodes them. Section
numbers follow LLRP 1.0.1 as sllurp 3.0.5 (llrp_proto.py) numbers them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

LLRP_VERSION = 1
HEADER = struct.Struct("!HII")
HEADER_BYTES = HEADER.size

# LLRP allows lengths up to 2**32 - 1. A report of 10,000 tags with every field is
# under 1 MiB, so a larger length means the stream is out of sync, not a big report.
MAX_FRAME_BYTES = 4 * 1024 * 1024

IMPINJ_VENDOR_ID = 25882
IMPINJ_ENABLE_EXTENSIONS_SUBTYPE = 21
IMPINJ_ENABLE_EXTENSIONS_RESPONSE_SUBTYPE = 22
IMPINJ_ENABLE_RF_PHASE_ANGLE_SUBTYPE = 52
IMPINJ_ENABLE_PEAK_RSSI_SUBTYPE = 53
IMPINJ_TAG_REPORT_CONTENT_SELECTOR_SUBTYPE = 50
IMPINJ_RF_PHASE_ANGLE_SUBTYPE = 56
IMPINJ_PEAK_RSSI_SUBTYPE = 57

# Impinj reports the RF phase angle as an unsigned 12-bit count of a full turn.
# NOTE: the scale follows Impinj's Octane LLRP documentation and has not been checked
# against a reader here; sllurp 3.0.5 decodes the raw value only.
IMPINJ_PHASE_STEPS = 4096


class LLRPFormatError(ValueError):
    """Bytes that do not follow the LLRP binary encoding."""


class MessageType(IntEnum):
    """LLRP 1.0.1 message types (§16.1)."""

    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    GET_ROSPECS = 26
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    GET_ROSPECS_RESPONSE = 36
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    GET_ACCESSSPECS = 44
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    GET_ACCESSSPECS_RESPONSE = 54
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = 1023


class ParamType(IntEnum):
    """LLRP 1.0.1 parameter types used here (§16.2). Types below 128 are TV."""

    ANTENNA_ID = 1
    FIRST_SEEN_TIMESTAMP_UTC = 2
    FIRST_SEEN_TIMESTAMP_UPTIME = 3
    LAST_SEEN_TIMESTAMP_UTC = 4
    LAST_SEEN_TIMESTAMP_UPTIME = 5
    PEAK_RSSI = 6
    CHANNEL_INDEX = 7
    TAG_SEEN_COUNT = 8
    ROSPEC_ID = 9
    INVENTORY_PARAMETER_SPEC_ID = 10
    C1G2_CRC = 11
    C1G2_PC = 12
    EPC_96 = 13
    SPEC_INDEX = 14
    ACCESS_SPEC_ID = 16
    UTC_TIMESTAMP = 128
    UPTIME = 129
    GENERAL_DEVICE_CAPABILITIES = 137
    RECEIVE_SENSITIVITY_TABLE_ENTRY = 139
    PER_ANTENNA_AIR_PROTOCOL = 140
    GPIO_CAPABILITIES = 141
    LLRP_CAPABILITIES = 142
    REGULATORY_CAPABILITIES = 143
    UHF_BAND_CAPABILITIES = 144
    TRANSMIT_POWER_LEVEL_TABLE_ENTRY = 145
    FREQUENCY_INFORMATION = 146
    FREQUENCY_HOP_TABLE = 147
    ROSPEC = 177
    RO_BOUNDARY_SPEC = 178
    ROSPEC_START_TRIGGER = 179
    AI_SPEC = 183
    KEEPALIVE_SPEC = 220
    RO_REPORT_SPEC = 237
    TAG_REPORT_CONTENT_SELECTOR = 238
    TAG_REPORT_DATA = 240
    EPC_DATA = 241
    READER_EVENT_NOTIFICATION_DATA = 246
    CONNECTION_ATTEMPT_EVENT = 256
    CONNECTION_CLOSE_EVENT = 257
    LLRP_STATUS = 287
    C1G2_LLRP_CAPABILITIES = 327
    UHF_C1G2_RF_MODE_TABLE = 328
    UHF_C1G2_RF_MODE_TABLE_ENTRY = 329
    C1G2_EPC_MEMORY_SELECTOR = 348
    CUSTOM = 1023


class StatusCode(IntEnum):
    """LLRPStatus codes (§16.2.8.1), the subset the simulator sends."""

    SUCCESS = 0
    UNSUPPORTED_MESSAGE = 109
    UNSUPPORTED_VERSION = 110
    A_INVALID = 300


class ConnectionAttemptStatus(IntEnum):
    """ConnectionAttemptEvent status values (§16.2.7.6.10)."""

    SUCCESS = 0
    FAILED_READER_CONNECTION_EXISTS = 1
    FAILED_CLIENT_CONNECTION_EXISTS = 2
    FAILED_OTHER = 3
    ANOTHER_CONNECTION_ATTEMPTED = 4


class ROSpecStartTrigger(IntEnum):
    """ROSpecStartTriggerType values (§16.2.4.1.1.1)."""

    NULL = 0
    IMMEDIATE = 1
    PERIODIC = 2
    GPI = 3


# Value sizes of the TV parameters (§16.2.7.3 and its sub-clauses), by type.
TV_VALUE_BYTES: dict[int, int] = {
    1: 2,
    2: 8,
    3: 8,
    4: 8,
    5: 8,
    6: 1,
    7: 2,
    8: 2,
    9: 4,
    10: 2,
    11: 2,
    12: 2,
    13: 12,
    14: 2,
    15: 2,
    16: 4,
    17: 2,
    18: 4,
    19: 2,
    20: 2,
}


# --- frame headers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The fields of a 10-byte LLRP message header."""

    version: int
    message_type: int
    length: int
    message_id: int


def parse_header(data: bytes | bytearray) -> FrameHeader:
    """Split the first 10 bytes of `data` into the header fields."""
    if len(data) < HEADER_BYTES:
        raise LLRPFormatError(f"header needs {HEADER_BYTES} bytes, got {len(data)}")
    type_word, length, message_id = HEADER.unpack_from(data)
    return FrameHeader(
        version=(type_word >> 10) & 0x7,
        message_type=type_word & 0x3FF,
        length=length,
        message_id=message_id,
    )


def header_problem(
    header: FrameHeader, max_frame_bytes: int = MAX_FRAME_BYTES
) -> str | None:
    """Describe why a header cannot start a valid frame, or return None if it can.

    A bad version or length means the byte stream is out of step with the frame
    boundaries, so the receiver can no longer find the next frame.
    """
    if header.version != LLRP_VERSION:
        return f"protocol version {header.version} (expected {LLRP_VERSION})"
    if header.length < HEADER_BYTES:
        return f"length {header.length} is shorter than the {HEADER_BYTES}-byte header"
    if header.length > max_frame_bytes:
        return f"length {header.length} exceeds the {max_frame_bytes}-byte limit"
    return None


# --- encoding ---------------------------------------------------------------------


def encode_message(message_type: int, message_id: int, body: bytes = b"") -> bytes:
    """Frame `body` as an LLRP 1.0.1 message."""
    type_word = (LLRP_VERSION << 10) | (message_type & 0x3FF)
    return HEADER.pack(type_word, HEADER_BYTES + len(body), message_id) + body


def encode_custom_message(
    vendor_id: int, subtype: int, message_id: int, body: bytes
) -> bytes:
    """Frame a vendor message: the body starts with vendor id and subtype."""
    prefix = struct.pack("!IB", vendor_id, subtype)
    return encode_message(MessageType.CUSTOM_MESSAGE, message_id, prefix + body)


def encode_tlv(param_type: int, body: bytes = b"") -> bytes:
    """Encode a TLV parameter."""
    return struct.pack("!HH", param_type & 0x3FF, 4 + len(body)) + body


def encode_tv(param_type: int, value_format: str, value: int) -> bytes:
    """Encode a TV parameter whose value is one struct field (`value_format`)."""
    return struct.pack("!B" + value_format, 0x80 | param_type, value)


def encode_custom_param(vendor_id: int, subtype: int, body: bytes = b"") -> bytes:
    """Encode a vendor parameter (type 1023) with its vendor id and 32-bit subtype."""
    return encode_tlv(ParamType.CUSTOM, struct.pack("!II", vendor_id, subtype) + body)


def encode_llrp_status(code: int = StatusCode.SUCCESS, description: str = "") -> bytes:
    """Encode an LLRPStatus parameter (§16.2.8.1)."""
    text = description.encode("utf-8")
    return encode_tlv(ParamType.LLRP_STATUS, struct.pack("!HH", code, len(text)) + text)


def encode_connection_attempt_event(utc_us: int, status: int) -> bytes:
    """Encode a READER_EVENT_NOTIFICATION body that reports a connection attempt."""
    data = encode_tlv(ParamType.UTC_TIMESTAMP, struct.pack("!Q", utc_us))
    data += encode_tlv(ParamType.CONNECTION_ATTEMPT_EVENT, struct.pack("!H", status))
    return encode_tlv(ParamType.READER_EVENT_NOTIFICATION_DATA, data)


def encode_keepalive_spec(interval_ms: int | None) -> bytes:
    """Encode a KeepaliveSpec: trigger 1 (periodic) with the interval, or 0 for none."""
    if interval_ms is None:
        return encode_tlv(ParamType.KEEPALIVE_SPEC, struct.pack("!BI", 0, 0))
    return encode_tlv(ParamType.KEEPALIVE_SPEC, struct.pack("!BI", 1, interval_ms))


@dataclass(frozen=True, slots=True)
class RFMode:
    """One UHFC1G2RFModeTableEntry of the reader's RF mode table; Tari in ns."""

    identifier: int
    divide_ratio: int
    epc_hag_conformant: bool
    modulation: int
    forward_link_modulation: int
    spectral_mask: int
    backscatter_data_rate: int
    pie_ratio: int
    min_tari_ns: int
    max_tari_ns: int
    step_tari_ns: int


@dataclass(frozen=True, slots=True)
class ReaderIdentity:
    """Reader identity and RF tables that GET_READER_CAPABILITIES_RESPONSE reports."""

    antenna_count: int
    manufacturer: int
    model: int
    firmware: str
    power_table_centi_dbm: tuple[int, ...]
    hop_table_khz: tuple[int, ...]
    rf_modes: tuple[RFMode, ...]
    # ISO 3166 numeric country code and LLRP CommunicationsStandard; 840 and 1 are
    # what the captured Impinj reader (United States, FCC part 15) reported.
    country_code: int = 840
    communications_standard: int = 1


def encode_reader_capabilities(identity: ReaderIdentity) -> bytes:
    """Encode the body of GET_READER_CAPABILITIES_RESPONSE (§16.1.2)."""
    parts = [
        encode_llrp_status(),
        _general_device_capabilities(identity),
        _llrp_capabilities(),
        _regulatory_capabilities(identity),
        # C1G2LLRPCapabilities: no optional features, 2 select filters per query.
        encode_tlv(ParamType.C1G2_LLRP_CAPABILITIES, struct.pack("!BH", 0, 2)),
    ]
    return b"".join(parts)


def _general_device_capabilities(identity: ReaderIdentity) -> bytes:
    firmware = identity.firmware.encode("utf-8")
    has_utc_clock = 1 << 14
    data = struct.pack(
        "!HHIIH",
        identity.antenna_count,
        has_utc_clock,
        identity.manufacturer,
        identity.model,
        len(firmware),
    )
    data += firmware
    data += encode_tlv(
        ParamType.RECEIVE_SENSITIVITY_TABLE_ENTRY, struct.pack("!HH", 1, 0)
    )
    for antenna in range(1, identity.antenna_count + 1):
        # One air protocol per antenna: EPCglobal Class 1 Gen 2 (protocol id 1).
        body = struct.pack("!HHB", antenna, 1, 1)
        data += encode_tlv(ParamType.PER_ANTENNA_AIR_PROTOCOL, body)
    data += encode_tlv(ParamType.GPIO_CAPABILITIES, struct.pack("!HH", 0, 0))
    return encode_tlv(ParamType.GENERAL_DEVICE_CAPABILITIES, data)


def _llrp_capabilities() -> bytes:
    # The limits copy the captured Impinj capabilities response. It has no RF survey
    # and no client opspecs, one priority level and one ROSpec with 32 specs. It allows
    # one InventoryParameterSpec per AISpec and 1508 AccessSpecs of 8 OpSpecs each.
    body = struct.pack("!BBHIIIII", 0, 1, 0, 1, 32, 1, 1508, 8)
    return encode_tlv(ParamType.LLRP_CAPABILITIES, body)


def _regulatory_capabilities(identity: ReaderIdentity) -> bytes:
    band = b""
    for index, centi_dbm in enumerate(identity.power_table_centi_dbm, start=1):
        entry = struct.pack("!Hh", index, centi_dbm)
        band += encode_tlv(ParamType.TRANSMIT_POWER_LEVEL_TABLE_ENTRY, entry)

    hop_table = struct.pack("!BBH", 1, 0, len(identity.hop_table_khz))
    hop_table += b"".join(struct.pack("!I", khz) for khz in identity.hop_table_khz)
    hopping = 1 << 7
    frequency_information = struct.pack("!B", hopping)
    frequency_information += encode_tlv(ParamType.FREQUENCY_HOP_TABLE, hop_table)
    band += encode_tlv(ParamType.FREQUENCY_INFORMATION, frequency_information)

    modes = b"".join(_rf_mode_entry(mode) for mode in identity.rf_modes)
    band += encode_tlv(ParamType.UHF_C1G2_RF_MODE_TABLE, modes)

    data = struct.pack("!HH", identity.country_code, identity.communications_standard)
    data += encode_tlv(ParamType.UHF_BAND_CAPABILITIES, band)
    return encode_tlv(ParamType.REGULATORY_CAPABILITIES, data)


def _rf_mode_entry(mode: RFMode) -> bytes:
    flags = (mode.divide_ratio & 1) << 7 | int(mode.epc_hag_conformant) << 6
    body = struct.pack(
        "!IBBBBIIIII",
        mode.identifier,
        flags,
        mode.modulation,
        mode.forward_link_modulation,
        mode.spectral_mask,
        mode.backscatter_data_rate,
        mode.pie_ratio,
        mode.min_tari_ns,
        mode.max_tari_ns,
        mode.step_tari_ns,
    )
    return encode_tlv(ParamType.UHF_C1G2_RF_MODE_TABLE_ENTRY, body)


@dataclass(frozen=True, slots=True)
class ReportContent:
    """Fields that the client requested in its TagReportContentSelector.

    The flags follow the bit order of TagReportContentSelector (§16.2.7.1), then
    C1G2EPCMemorySelector, then the Impinj tag report content selector.
    """

    rospec_id: bool = False
    spec_index: bool = False
    inventory_parameter_spec_id: bool = False
    antenna_id: bool = False
    channel_index: bool = False
    peak_rssi: bool = False
    first_seen_timestamp: bool = False
    last_seen_timestamp: bool = False
    tag_seen_count: bool = False
    access_spec_id: bool = False
    pc_bits: bool = False
    impinj_rf_phase_angle: bool = False
    impinj_peak_rssi: bool = False


@dataclass(frozen=True, slots=True)
class TagObservation:
    """The values one TagReportData entry carries, before the selector filters them."""

    epc_hex: str
    antenna: int
    rssi_dbm: float
    first_seen_us: int
    last_seen_us: int
    seen_count: int = 1
    channel: int = 1
    phase_deg: float | None = None
    pc_word: int | None = None
    rospec_id: int = 1


def encode_tag_report_data(
    tag: TagObservation,
    content: ReportContent,
    *,
    impinj: bool = False,
    uptime_timestamps: bool = False,
    uptime_origin_us: int = 0,
) -> bytes:
    """Encode one TagReportData parameter (§16.2.7.3) with the fields in `content`.

    The EPC uses the EPC-96 TV parameter when it is 96 bits long and EPCData with its
    bit count otherwise. With `uptime_timestamps`, the timestamps are sent as reader
    uptime (microseconds since `uptime_origin_us`) instead of UTC, as readers without
    a UTC clock do.
    """
    epc = bytes.fromhex(tag.epc_hex)
    if len(epc) == 12:
        parts = [bytes([0x80 | ParamType.EPC_96]) + epc]
    else:
        parts = [encode_tlv(ParamType.EPC_DATA, struct.pack("!H", len(epc) * 8) + epc)]

    if content.rospec_id:
        parts.append(encode_tv(ParamType.ROSPEC_ID, "I", tag.rospec_id))
    if content.spec_index:
        parts.append(encode_tv(ParamType.SPEC_INDEX, "H", 1))
    if content.inventory_parameter_spec_id:
        parts.append(encode_tv(ParamType.INVENTORY_PARAMETER_SPEC_ID, "H", 1))
    if content.antenna_id:
        parts.append(encode_tv(ParamType.ANTENNA_ID, "H", tag.antenna))
    if content.peak_rssi:
        rssi = max(-128, min(127, round(tag.rssi_dbm)))
        parts.append(encode_tv(ParamType.PEAK_RSSI, "b", rssi))
    if content.channel_index:
        parts.append(encode_tv(ParamType.CHANNEL_INDEX, "H", tag.channel))
    parts.extend(
        _timestamps(
            tag,
            content,
            uptime_timestamps=uptime_timestamps,
            origin_us=uptime_origin_us,
        )
    )
    if content.tag_seen_count:
        parts.append(
            encode_tv(ParamType.TAG_SEEN_COUNT, "H", min(tag.seen_count, 0xFFFF))
        )
    if content.pc_bits and tag.pc_word is not None:
        parts.append(encode_tv(ParamType.C1G2_PC, "H", tag.pc_word))
    if content.access_spec_id:
        parts.append(encode_tv(ParamType.ACCESS_SPEC_ID, "I", 0))
    if impinj and content.impinj_peak_rssi:
        centi_dbm = round(tag.rssi_dbm * 100)
        parts.append(
            encode_custom_param(
                IMPINJ_VENDOR_ID, IMPINJ_PEAK_RSSI_SUBTYPE, struct.pack("!h", centi_dbm)
            )
        )
    if impinj and content.impinj_rf_phase_angle and tag.phase_deg is not None:
        steps = (
            round(tag.phase_deg % 360.0 / 360.0 * IMPINJ_PHASE_STEPS)
            % IMPINJ_PHASE_STEPS
        )
        parts.append(
            encode_custom_param(
                IMPINJ_VENDOR_ID,
                IMPINJ_RF_PHASE_ANGLE_SUBTYPE,
                struct.pack("!H", steps),
            )
        )
    return encode_tlv(ParamType.TAG_REPORT_DATA, b"".join(parts))


def _timestamps(
    tag: TagObservation,
    content: ReportContent,
    *,
    uptime_timestamps: bool,
    origin_us: int,
) -> list[bytes]:
    if uptime_timestamps:
        first_type, last_type = (
            ParamType.FIRST_SEEN_TIMESTAMP_UPTIME,
            ParamType.LAST_SEEN_TIMESTAMP_UPTIME,
        )
        first, last = tag.first_seen_us - origin_us, tag.last_seen_us - origin_us
    else:
        first_type, last_type = (
            ParamType.FIRST_SEEN_TIMESTAMP_UTC,
            ParamType.LAST_SEEN_TIMESTAMP_UTC,
        )
        first, last = tag.first_seen_us, tag.last_seen_us
    parts = []
    if content.first_seen_timestamp:
        parts.append(encode_tv(first_type, "Q", max(0, first)))
    if content.last_seen_timestamp:
        parts.append(encode_tv(last_type, "Q", max(0, last)))
    return parts


def pc_word_for(epc_hex: str) -> int:
    """Return the Gen2 PC word of an EPC: its length in words in the top 5 bits."""
    words = len(epc_hex) // 4
    if words > 31:
        raise ValueError(f"EPC of {words} words does not fit the 5-bit PC length field")
    return words << 11


# --- decoding what a client sends -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One decoded parameter: its type, its value bytes, and vendor fields if custom."""

    type: int
    body: bytes
    vendor_id: int = 0
    subtype: int = 0


def iter_params(data: bytes) -> Iterator[Param]:
    """Yield the parameters that fill `data` back to back, raising LLRPFormatError."""
    offset = 0
    while offset < len(data):
        first = data[offset]
        if first & 0x80:
            param_type = first & 0x7F
            size = TV_VALUE_BYTES.get(param_type)
            if size is None:
                raise LLRPFormatError(f"unknown TV parameter type {param_type}")
            end = offset + 1 + size
            if end > len(data):
                raise LLRPFormatError(f"TV parameter {param_type} runs past the data")
            yield Param(param_type, data[offset + 1 : end])
            offset = end
            continue
        if offset + 4 > len(data):
            raise LLRPFormatError("TLV parameter header runs past the data")
        type_word, length = struct.unpack_from("!HH", data, offset)
        param_type = type_word & 0x3FF
        end = offset + length
        if length < 4 or end > len(data):
            raise LLRPFormatError(
                f"TLV parameter {param_type} has invalid length {length}"
            )
        body = data[offset + 4 : end]
        if param_type == ParamType.CUSTOM:
            if len(body) < 8:
                raise LLRPFormatError(
                    "custom parameter is shorter than its vendor fields"
                )
            vendor_id, subtype = struct.unpack_from("!II", body)
            yield Param(param_type, body[8:], vendor_id, subtype)
        else:
            yield Param(param_type, body)
        offset = end


def _unpack(fmt: str, data: bytes, what: str) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data)
    except struct.error as exc:
        raise LLRPFormatError(f"{what} is too short") from exc


def parse_keepalive_interval_ms(set_reader_config_body: bytes) -> int | None:
    """Return the periodic keepalive interval in ms that SET_READER_CONFIG requests.

    Returns None when the message has no KeepaliveSpec or turns keepalives off
    (trigger type 0). The body starts with one byte holding ResetToFactoryDefault.
    """
    for param in iter_params(set_reader_config_body[1:]):
        if param.type == ParamType.KEEPALIVE_SPEC:
            trigger, interval_ms = _unpack("!BI", param.body, "KeepaliveSpec")
            if trigger == 0 or interval_ms == 0:
                return None
            return interval_ms
    return None


def keepalive_spec_present(set_reader_config_body: bytes) -> bool:
    """Tell whether a SET_READER_CONFIG body carries a KeepaliveSpec at all."""
    return any(
        param.type == ParamType.KEEPALIVE_SPEC
        for param in iter_params(set_reader_config_body[1:])
    )


@dataclass(frozen=True, slots=True)
class ROSpecSummary:
    """ADD_ROSPEC content the simulator uses: id, start trigger, antennas, fields."""

    rospec_id: int
    start_trigger: int
    antennas: tuple[int, ...]
    content: ReportContent = field(default_factory=ReportContent)

    def covers_antenna(self, antenna: int) -> bool:
        """Tell whether the ROSpec inventories `antenna` (antenna id 0 means all)."""
        return 0 in self.antennas or antenna in self.antennas


def parse_add_rospec(body: bytes) -> ROSpecSummary:
    """Extract id, start trigger, antennas and report fields from an ADD_ROSPEC body."""
    rospec = next((p for p in iter_params(body) if p.type == ParamType.ROSPEC), None)
    if rospec is None:
        raise LLRPFormatError("ADD_ROSPEC has no ROSpec parameter")
    # ROSpec (§16.2.4.1): ROSpecID u32, Priority u8, CurrentState u8, then parameters.
    (rospec_id,) = _unpack("!I", rospec.body, "ROSpec")
    start_trigger: int = ROSpecStartTrigger.NULL
    antennas: list[int] = []
    content = ReportContent()
    for param in iter_params(rospec.body[6:]):
        if param.type == ParamType.RO_BOUNDARY_SPEC:
            start_trigger = _start_trigger(param.body)
        elif param.type == ParamType.AI_SPEC:
            antennas.extend(_ai_spec_antennas(param.body))
        elif param.type == ParamType.RO_REPORT_SPEC:
            content = _report_content(param.body)
    return ROSpecSummary(rospec_id, start_trigger, tuple(antennas), content)


def _start_trigger(boundary_body: bytes) -> int:
    for param in iter_params(boundary_body):
        if param.type == ParamType.ROSPEC_START_TRIGGER:
            return _unpack("!B", param.body, "ROSpecStartTrigger")[0]
    return ROSpecStartTrigger.NULL


def _ai_spec_antennas(ai_spec_body: bytes) -> list[int]:
    # AISpec (§16.2.4.2): AntennaCount u16, then that many AntennaID u16.
    (count,) = _unpack("!H", ai_spec_body, "AISpec")
    return list(_unpack(f"!{count}H", ai_spec_body[2:], "AISpec antenna list"))


def _report_content(report_spec_body: bytes) -> ReportContent:
    # ROReportSpec (§16.2.7.1): ROReportTrigger u8, N u16, then parameters.
    flags: dict[str, bool] = {}
    for param in iter_params(report_spec_body[3:]):
        if param.type == ParamType.TAG_REPORT_CONTENT_SELECTOR:
            flags.update(_selector_flags(param.body))
        elif param.type == ParamType.CUSTOM and param.vendor_id == IMPINJ_VENDOR_ID:
            if param.subtype == IMPINJ_TAG_REPORT_CONTENT_SELECTOR_SUBTYPE:
                flags.update(_impinj_selector_flags(param.body))
    return ReportContent(**flags)


_SELECTOR_BITS = (
    "rospec_id",
    "spec_index",
    "inventory_parameter_spec_id",
    "antenna_id",
    "channel_index",
    "peak_rssi",
    "first_seen_timestamp",
    "last_seen_timestamp",
    "tag_seen_count",
    "access_spec_id",
)


def _selector_flags(selector_body: bytes) -> dict[str, bool]:
    (bits,) = _unpack("!H", selector_body, "TagReportContentSelector")
    flags = {
        name: bool(bits & (1 << (15 - i))) for i, name in enumerate(_SELECTOR_BITS)
    }
    for param in iter_params(selector_body[2:]):
        if param.type == ParamType.C1G2_EPC_MEMORY_SELECTOR:
            # C1G2EPCMemorySelector: bit 7 CRC, bit 6 PC bits.
            (memory_bits,) = _unpack("!B", param.body, "C1G2EPCMemorySelector")
            flags["pc_bits"] = bool(memory_bits & 0x40)
    return flags


def _impinj_selector_flags(selector_body: bytes) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for param in iter_params(selector_body):
        if param.type != ParamType.CUSTOM or param.vendor_id != IMPINJ_VENDOR_ID:
            continue
        if param.subtype == IMPINJ_ENABLE_RF_PHASE_ANGLE_SUBTYPE:
            mode = _unpack("!H", param.body, "ImpinjEnableRFPhaseAngle")[0]
            flags["impinj_rf_phase_angle"] = mode == 1
        elif param.subtype == IMPINJ_ENABLE_PEAK_RSSI_SUBTYPE:
            mode = _unpack("!H", param.body, "ImpinjEnablePeakRSSI")[0]
            flags["impinj_peak_rssi"] = mode == 1
    return flags


def parse_rospec_id(body: bytes) -> int:
    """Return the ROSpecID that ENABLE/START/STOP/DISABLE/DELETE_ROSPEC carry first."""
    return _unpack("!I", body, "ROSpecID")[0]


def parse_custom_message_kind(body: bytes) -> tuple[int, int]:
    """Return (vendor id, subtype) from the start of a vendor message body."""
    vendor_id, subtype = _unpack("!IB", body, "custom message")
    return vendor_id, subtype
