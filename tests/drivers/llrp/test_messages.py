"""LLRP encoding: frame headers, parsing sllurp's requests, sllurp decoding replies."""

from __future__ import annotations

import struct

import pytest
from sllurp.llrp import LLRPClient, LLRPMessage
from sllurp.llrp_proto import LLRPROSpec

from drivers.llrp.messages import (
    HEADER_BYTES,
    MAX_FRAME_BYTES,
    LLRPFormatError,
    MessageType,
    ReaderIdentity,
    RFMode,
    ROSpecStartTrigger,
    encode_message,
    encode_reader_capabilities,
    header_problem,
    iter_params,
    parse_add_rospec,
    parse_header,
    parse_keepalive_interval_ms,
)
from drivers.llrp.profile import load_profile


def test_header_round_trip() -> None:
    header = parse_header(encode_message(MessageType.KEEPALIVE, 42, b"abc"))
    assert header.version == 1
    assert header.message_type == MessageType.KEEPALIVE
    assert header.length == HEADER_BYTES + 3
    assert header.message_id == 42
    assert header_problem(header) is None


@pytest.mark.parametrize(
    ("type_word", "length", "fragment"),
    [
        ((7 << 10) | 61, 20, "version 7"),
        ((1 << 10) | 61, 4, "shorter than"),
        ((1 << 10) | 61, MAX_FRAME_BYTES + 1, "exceeds"),
    ],
)
def test_header_problem_named(type_word: int, length: int, fragment: str) -> None:
    header = parse_header(struct.pack("!HII", type_word, length, 1))
    problem = header_problem(header)
    assert problem is not None
    assert fragment in problem


def test_header_short_data_raises() -> None:
    with pytest.raises(LLRPFormatError):
        parse_header(b"\x04\x3d\x00")


def test_keepalive_from_sllurp_parsed() -> None:
    message = LLRPMessage(
        msgdict={
            "SET_READER_CONFIG": {
                "ResetToFactoryDefaults": False,
                "KeepaliveSpec": {"KeepaliveTriggerType": 1, "TimeInterval": 250},
                "ID": 3,
            }
        }
    )
    body = message.msgbytes[HEADER_BYTES:]
    assert parse_keepalive_interval_ms(body) == 250


def test_keepalive_off_parsed_as_none() -> None:
    message = LLRPMessage(
        msgdict={
            "SET_READER_CONFIG": {
                "ResetToFactoryDefaults": False,
                "KeepaliveSpec": {"KeepaliveTriggerType": 0, "TimeInterval": 0},
                "ID": 3,
            }
        }
    )
    assert parse_keepalive_interval_ms(message.msgbytes[HEADER_BYTES:]) is None


def test_add_rospec_from_sllurp_parsed() -> None:
    config = load_profile("impinj-r700").to_sllurp_config([1, 2])
    rospec = LLRPROSpec(
        None,
        7,
        antennas=config.antennas,
        tag_content_selector=config.tag_content_selector,
        impinj_tag_content_selector=config.impinj_tag_content_selector,
        report_every_n_tags=1,
    )
    message = LLRPMessage(
        msgdict={"ADD_ROSPEC": {"ROSpecID": 7, "ROSpec": rospec, "ID": 5}}
    )
    summary = parse_add_rospec(message.msgbytes[HEADER_BYTES:])
    assert summary.rospec_id == 7
    assert summary.start_trigger == ROSpecStartTrigger.IMMEDIATE
    assert summary.antennas == (1, 2)
    assert summary.content.antenna_id
    assert summary.content.peak_rssi
    assert summary.content.first_seen_timestamp
    assert summary.content.last_seen_timestamp
    assert summary.content.channel_index
    assert summary.content.tag_seen_count
    assert summary.content.pc_bits
    assert summary.content.impinj_rf_phase_angle
    assert summary.content.impinj_peak_rssi
    assert not summary.content.rospec_id


def test_sllurp_default_selector_lacks_antenna() -> None:
    # sllurp's own ROSpec default reports no antenna when the caller passes a
    # selector without EnableAntennaID, which is why profiles set every field.
    rospec = LLRPROSpec(None, 1, tag_content_selector={"EnableAntennaID": False})
    message = LLRPMessage(
        msgdict={"ADD_ROSPEC": {"ROSpecID": 1, "ROSpec": rospec, "ID": 1}}
    )
    summary = parse_add_rospec(message.msgbytes[HEADER_BYTES:])
    assert not summary.content.antenna_id


def test_truncated_parameter_raises() -> None:
    with pytest.raises(LLRPFormatError):
        list(iter_params(struct.pack("!HH", 177, 40) + b"\x00" * 8))


def test_unknown_tv_parameter_raises() -> None:
    with pytest.raises(LLRPFormatError):
        list(iter_params(b"\xff\x00"))


def test_capabilities_accepted_by_sllurp() -> None:
    identity = ReaderIdentity(
        antenna_count=2,
        manufacturer=0,
        model=0,
        firmware="test",
        power_table_centi_dbm=(1000, 2000, 3000, 3250),
        hop_table_khz=(902_750, 903_250),
        rf_modes=(RFMode(1000, 0, False, 0, 0, 0, 40_000, 1500, 6250, 6250, 0),),
    )
    frame = encode_message(
        MessageType.GET_READER_CAPABILITIES_RESPONSE,
        9,
        encode_reader_capabilities(identity),
    )
    capabilities = LLRPMessage(msgbytes=frame).msgdict[
        "GET_READER_CAPABILITIES_RESPONSE"
    ]
    config = load_profile("impinj-r700").to_sllurp_config([1, 2])
    client = LLRPClient(config)
    client.parseCapabilities(capabilities)
    assert client.max_ant == 2
    assert client.tx_power_table == [0, 10.0, 20.0, 30.0, 32.5]
    assert client.reader_mode["ModeIdentifier"] == 1000
    # The profile's 30 dBm is the third entry of the table.
    assert client.config.tx_power == {1: 3, 2: 3}
