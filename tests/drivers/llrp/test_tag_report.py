"""TagReportData to TagRead: real-reader fixtures, EPC forms, PC words, rejections."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from sllurp.llrp import LLRPMessage

from drivers.llrp.messages import (
    MessageType,
    ParamType,
    ReportContent,
    TagObservation,
    encode_message,
    encode_tag_report_data,
    encode_tlv,
    encode_tv,
)
from drivers.llrp.tag_report import (
    RejectReason,
    TagReportError,
    convert_tag_report,
    tag_read_from_entry,
)

ALL_FIELDS = ReportContent(
    antenna_id=True,
    channel_index=True,
    peak_rssi=True,
    first_seen_timestamp=True,
    last_seen_timestamp=True,
    tag_seen_count=True,
    pc_bits=True,
    impinj_rf_phase_angle=True,
    impinj_peak_rssi=True,
)


def decode(message_type: int, body: bytes) -> dict[str, Any]:
    """Decode a message body through sllurp, after prefixing the LLRP header."""
    message = LLRPMessage(msgbytes=encode_message(message_type, 7, body))
    return message.msgdict[message.getName()]


def report_entries(*tag_report_data: bytes) -> list[dict[str, Any]]:
    decoded = decode(MessageType.RO_ACCESS_REPORT, b"".join(tag_report_data))
    return decoded["TagReportData"]


def single_entry(tag_report_data: bytes) -> dict[str, Any]:
    (entry,) = report_entries(tag_report_data)
    return entry


def observation(**changes: Any) -> TagObservation:
    values: dict[str, Any] = {
        "epc_hex": "3036142C8C008F8000053244",
        "antenna": 2,
        "rssi_dbm": -48.0,
        "first_seen_us": 1_700_000_000_000_000,
        "last_seen_us": 1_700_000_000_250_000,
        "seen_count": 3,
        "channel": 7,
        "pc_word": 0x3000,
    }
    values.update(changes)
    return TagObservation(**values)


def report_fixtures(fixtures_dir: Path) -> list[Path]:
    return sorted((fixtures_dir / "roAccessReports").glob("ROAccessReport-*.bytes"))


def test_fixtures_match_json(fixtures_dir: Path) -> None:
    paths = report_fixtures(fixtures_dir)
    assert paths, "no RO_ACCESS_REPORT fixtures found"
    for path in paths:
        expected = json.loads(path.with_suffix(".json").read_text())["TagReportData"]
        entries = decode(MessageType.RO_ACCESS_REPORT, path.read_bytes())[
            "TagReportData"
        ]
        reads, rejected = convert_tag_report("fixture", entries)
        assert rejected == [], path.name
        assert len(reads) == len(expected), path.name
        for read, want in zip(reads, expected, strict=True):
            epc = base64.b64decode(want["EPC96"]["EPC"]).hex().upper()
            assert read.epc == epc, path.name
            assert read.antenna == want["AntennaID"], path.name
            assert read.rssi_dbm == want["PeakRSSI"], path.name
            assert read.first_seen_us == want["FirstSeenUTC"], path.name
            # The captures carry only FirstSeenTimestampUTC, so it stands for both.
            assert read.last_seen_us == want["FirstSeenUTC"], path.name


def test_fixture_capabilities_decode(fixtures_dir: Path) -> None:
    body = (fixtures_dir / "GetReaderCapabilitiesResponse-000.bytes").read_bytes()
    expected = json.loads(
        (fixtures_dir / "GetReaderCapabilitiesResponse-000.json").read_text()
    )
    decoded = decode(MessageType.GET_READER_CAPABILITIES_RESPONSE, body)
    general = decoded["GeneralDeviceCapabilities"]
    want = expected["GeneralDeviceCapabilities"]
    assert decoded["LLRPStatus"]["StatusCode"] == "Success"
    assert general["MaxNumberOfAntennaSupported"] == want["MaxSupportedAntennas"]
    assert general["DeviceManufacturerName"] == want["DeviceManufacturer"]
    assert general["ModelName"] == want["Model"]
    assert general["ReaderFirmwareVersion"].decode() == want["FirmwareVersion"]
    band = decoded["RegulatoryCapabilities"]["UHFBandCapabilities"]
    want_band = expected["RegulatoryCapabilities"]["UHFBandCapabilities"]
    powers = [
        entry["TransmitPowerValue"] for entry in band["TransmitPowerLevelTableEntry"]
    ]
    assert powers == [
        entry["TransmitPowerValue"] for entry in want_band["TransmitPowerLevels"]
    ]
    modes = band["UHFC1G2RFModeTable"]["UHFC1G2RFModeTableEntry"]
    want_modes = want_band["C1G2RFModes"]["UHFC1G2RFModeTableEntries"]
    assert [m["ModeIdentifier"] for m in modes] == [m["ModeID"] for m in want_modes]


def test_fixture_event_notification_decode(fixtures_dir: Path) -> None:
    body = (fixtures_dir / "ReaderEventNotification-000.bytes").read_bytes()
    expected = json.loads(
        (fixtures_dir / "ReaderEventNotification-000.json").read_text()
    )
    decoded = decode(MessageType.READER_EVENT_NOTIFICATION, body)
    event = decoded["ReaderEventNotificationData"]
    want = expected["ReaderEventNotificationData"]
    assert event["UTCTimestamp"]["Microseconds"] == want["UTCTimestamp"]
    assert "ConnectionCloseEvent" in event


@pytest.mark.parametrize(
    ("name", "message_type"),
    [
        ("CloseConnectionResponse-000", MessageType.CLOSE_CONNECTION_RESPONSE),
        ("GetReaderConfigResponse-000", MessageType.GET_READER_CONFIG_RESPONSE),
    ],
)
def test_fixture_status_decode(
    fixtures_dir: Path, name: str, message_type: int
) -> None:
    decoded = decode(message_type, (fixtures_dir / f"{name}.bytes").read_bytes())
    assert decoded["LLRPStatus"]["StatusCode"] == "Success"


def test_all_fields_convert() -> None:
    tag = observation(phase_deg=90.0, rssi_dbm=-48.37)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS, impinj=True))
    read = tag_read_from_entry("r1", entry)
    assert read.reader_id == "r1"
    assert read.epc == "3036142C8C008F8000053244"
    assert read.antenna == 2
    assert read.first_seen_us == tag.first_seen_us
    assert read.last_seen_us == tag.last_seen_us
    assert read.seen_count == 3
    assert read.channel == 7
    # ImpinjPeakRSSI carries hundredths of a dBm; LLRP's PeakRSSI whole dBm only.
    assert read.rssi_dbm == pytest.approx(-48.37)
    assert read.phase_deg == pytest.approx(90.0)


def test_epc_data_128_bits_kept() -> None:
    epc = "E28011700000020A5B6C7D8E9FA0B1C2"
    entry = single_entry(encode_tag_report_data(observation(epc_hex=epc), ALL_FIELDS))
    assert tag_read_from_entry("r1", entry).epc == epc


def test_epc_length_bits_mismatch_rejected() -> None:
    # EPCLengthBits is 96, but the EPC has 128 bits.
    epc_data = encode_tlv(ParamType.EPC_DATA, struct.pack("!H", 96) + bytes(range(16)))
    body = epc_data + encode_tv(ParamType.ANTENNA_ID, "H", 1)
    body += encode_tv(ParamType.LAST_SEEN_TIMESTAMP_UTC, "Q", 1_700_000_000_000_000)
    entry = single_entry(encode_tlv(ParamType.TAG_REPORT_DATA, body))
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.EPC_MALFORMED


def test_epc_odd_bytes_rejected() -> None:
    # 88 bits: whole octets, but not whole 16-bit words as Gen2 EPC memory stores them.
    epc_data = encode_tlv(ParamType.EPC_DATA, struct.pack("!H", 88) + bytes(range(11)))
    body = epc_data + encode_tv(ParamType.ANTENNA_ID, "H", 1)
    body += encode_tv(ParamType.LAST_SEEN_TIMESTAMP_UTC, "Q", 1_700_000_000_000_000)
    entry = single_entry(encode_tlv(ParamType.TAG_REPORT_DATA, body))
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.EPC_MALFORMED


def test_pc_word_stripped_with_c1g2pc() -> None:
    # The reader sends the PC word in front of the EPC and also as C1G2PC.
    tag = observation(epc_hex="3000E2009A9040060AF000000372", pc_word=0x3000)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    assert tag_read_from_entry("r1", entry).epc == "E2009A9040060AF000000372"


def test_pc_word_stripped_by_profile() -> None:
    tag = observation(epc_hex="3000E2009A9040060AF000000372", pc_word=None)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    read = tag_read_from_entry("r1", entry, epc_includes_pc_word=True)
    assert read.epc == "E2009A9040060AF000000372"


def test_pc_word_kept_without_hint() -> None:
    tag = observation(epc_hex="3000E2009A9040060AF000000372", pc_word=None)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    assert tag_read_from_entry("r1", entry).epc == "3000E2009A9040060AF000000372"


def test_pc_word_kept_when_length_disagrees() -> None:
    # 0x3800 announces 7 words, but only 6 follow: the first word is EPC data.
    tag = observation(epc_hex="3800E2009A9040060AF000000372", pc_word=None)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    read = tag_read_from_entry("r1", entry, epc_includes_pc_word=True)
    assert read.epc == "3800E2009A9040060AF000000372"


def test_epc_like_pc_word_kept() -> None:
    # An SGTIN-96 starting with 0x3000 next to a C1G2PC of 0x3000: the length bits give
    # 6 words and 6 words are there, so nothing is stripped.
    tag = observation(epc_hex="3000ABCDEF00000000000003", pc_word=0x3000)
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    assert tag_read_from_entry("r1", entry).epc == "3000ABCDEF00000000000003"


def test_antenna_zero_rejected() -> None:
    entry = single_entry(encode_tag_report_data(observation(antenna=0), ALL_FIELDS))
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.ANTENNA_ZERO


def test_antenna_missing_rejected() -> None:
    content = ReportContent(last_seen_timestamp=True, peak_rssi=True)
    entry = single_entry(encode_tag_report_data(observation(), content))
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.ANTENNA_MISSING


def test_uptime_only_rejected() -> None:
    data = encode_tag_report_data(observation(), ALL_FIELDS, uptime_timestamps=True)
    entry = single_entry(data)
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.NO_UTC_TIMESTAMP
    assert "uptime" in caught.value.detail


def test_last_seen_only_used_for_both() -> None:
    content = ReportContent(antenna_id=True, last_seen_timestamp=True)
    entry = single_entry(encode_tag_report_data(observation(), content))
    read = tag_read_from_entry("r1", entry)
    assert read.first_seen_us == 1_700_000_000_250_000
    assert read.last_seen_us == 1_700_000_000_250_000


def test_inverted_timestamps_rejected() -> None:
    tag = observation(
        first_seen_us=1_700_000_000_900_000, last_seen_us=1_700_000_000_000_000
    )
    entry = single_entry(encode_tag_report_data(tag, ALL_FIELDS))
    with pytest.raises(TagReportError) as caught:
        tag_read_from_entry("r1", entry)
    assert caught.value.reason == RejectReason.TIMESTAMPS_INVERTED


def test_report_keeps_good_reads() -> None:
    entries = report_entries(
        encode_tag_report_data(observation(antenna=0), ALL_FIELDS),
        encode_tag_report_data(observation(antenna=1), ALL_FIELDS),
    )
    reads, rejected = convert_tag_report("r1", entries)
    assert [read.antenna for read in reads] == [1]
    assert [item.reason for item in rejected] == [RejectReason.ANTENNA_ZERO]
