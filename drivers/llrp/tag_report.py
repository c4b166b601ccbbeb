"""Conversion of sllurp's decoded TagReportData entries into TagRead values.

A read is kept only if it carries everything portal logic needs from the reader
itself: a well-formed EPC, a non-zero antenna id, and at least one UTC timestamp
(LLRP 1.0.1 §16.2.7.3 FirstSeenTimestampUTC or LastSeenTimestampUTC). Host arrival
time is never substituted, because reports can be buffered and arrive late.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sllurp import llrp_proto

from drivers.llrp.messages import IMPINJ_PHASE_STEPS
from drivers.llrp.reads import TagRead


class EPCData(bytes):
    """EPC hex digits as ASCII bytes, as sllurp returns them, plus EPCLengthBits."""

    bit_count: int

    def __new__(cls, hex_digits: bytes, bit_count: int) -> EPCData:
        value = super().__new__(cls, hex_digits)
        value.bit_count = bit_count
        return value


def _decode_epc_data(data: bytes, name: str | None = None) -> tuple[EPCData, str]:
    # EPCData (LLRP 1.0.1 §16.2.7.3.1): EPCLengthBits u16, then the EPC padded to
    # whole octets. sllurp's own decoder returns the same hex digits without the count.
    if len(data) < 2:
        raise llrp_proto.LLRPError("EPCData is shorter than its length field")
    bit_count = int.from_bytes(data[:2], "big")
    return EPCData(binascii.hexlify(data[2:]), bit_count), ""


def install_epc_length_decoder() -> None:
    """Make sllurp keep EPCLengthBits when it decodes EPCData.

    NOTE: sllurp 3.0.5 (llrp_proto.decode_EPCData) drops the bit count, so a reader
    that sends a length which disagrees with the EPC bytes would go unnoticed. The
    replacement returns a bytes subclass, so code that expects sllurp's value still
    works. Remove once sllurp keeps the count.
    """
    llrp_proto.Param_struct["EPC"]["decode"] = _decode_epc_data


install_epc_length_decoder()


class RejectReason:
    """Short codes for rejected reads, used in logs and counters."""

    EPC_MISSING = "epc_missing"
    EPC_MALFORMED = "epc_malformed"
    ANTENNA_MISSING = "antenna_missing"
    ANTENNA_ZERO = "antenna_zero"
    NO_UTC_TIMESTAMP = "no_utc_timestamp"
    TIMESTAMPS_INVERTED = "timestamps_inverted"


class TagReportError(ValueError):
    """TagReportData entry that cannot become a TagRead; `reason` is a RejectReason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RejectedRead:
    """One rejected TagReportData entry with the reason and a readable detail."""

    reason: str
    detail: str


def convert_tag_report(
    reader_id: str,
    entries: Iterable[Mapping[str, Any]],
    *,
    epc_includes_pc_word: bool = False,
) -> tuple[list[TagRead], list[RejectedRead]]:
    """Convert every entry of one RO_ACCESS_REPORT and return (reads, rejected)."""
    reads: list[TagRead] = []
    rejected: list[RejectedRead] = []
    for entry in entries:
        try:
            reads.append(
                tag_read_from_entry(
                    reader_id, entry, epc_includes_pc_word=epc_includes_pc_word
                )
            )
        except TagReportError as exc:
            rejected.append(RejectedRead(exc.reason, exc.detail))
    return reads, rejected


def tag_read_from_entry(
    reader_id: str,
    entry: Mapping[str, Any],
    *,
    epc_includes_pc_word: bool = False,
) -> TagRead:
    """Convert one decoded TagReportData entry, raising TagReportError if unusable."""
    epc = _epc_hex(entry)
    epc = _strip_pc_word(epc, entry.get("C1G2PC"), epc_includes_pc_word)
    antenna = _antenna(entry, epc)
    first_seen_us, last_seen_us = _timestamps(entry, epc)
    return TagRead(
        reader_id=reader_id,
        antenna=antenna,
        epc=epc,
        first_seen_us=first_seen_us,
        last_seen_us=last_seen_us,
        rssi_dbm=_rssi_dbm(entry),
        seen_count=int(entry.get("TagSeenCount") or 1),
        channel=_optional_int(entry.get("ChannelIndex")),
        phase_deg=_phase_deg(entry),
    )


def _epc_hex(entry: Mapping[str, Any]) -> str:
    raw = entry.get("EPC")
    if raw is None:
        raw = entry.get("EPC-96")
    if raw is None or len(raw) == 0:
        raise TagReportError(RejectReason.EPC_MISSING, "TagReportData has no EPC")
    if not isinstance(raw, bytes | str):
        raise TagReportError(
            RejectReason.EPC_MALFORMED, f"EPC value {raw!r} is not hex"
        )
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        int(text, 16)
    except ValueError:
        raise TagReportError(
            RejectReason.EPC_MALFORMED, f"EPC {text!r} is not hex"
        ) from None
    bit_count = getattr(raw, "bit_count", None)
    if bit_count is not None and bit_count != len(text) * 4:
        raise TagReportError(
            RejectReason.EPC_MALFORMED,
            f"EPCLengthBits {bit_count} does not match the {len(text) * 4} bits "
            f"of EPC {text}",
        )
    if len(text) % 4 != 0:
        raise TagReportError(
            RejectReason.EPC_MALFORMED, f"EPC {text} is not whole 16-bit words"
        )
    return text.upper()


def _pc_length_words(pc_word: int) -> int:
    # The top five bits of the Gen2 PC word give the EPC length in 16-bit words.
    return (pc_word >> 11) & 0x1F


def _strip_pc_word(
    epc: str, reported_pc: int | None, epc_includes_pc_word: bool
) -> str:
    """Remove a leading PC word only when the reader says it is there and it fits.

    A reader says so either by sending the same word in a C1G2PC parameter or by a
    profile that marks it as one that puts the PC word in front of the EPC. In both
    cases the PC length bits must match the words that follow. Otherwise the EPC is
    kept as reported, because a first word that merely looks like a PC word is
    ordinary EPC data.
    """
    words = len(epc) // 4
    if words < 2:
        return epc
    first_word = int(epc[:4], 16)
    if reported_pc is not None and first_word != int(reported_pc):
        return epc
    if reported_pc is None and not epc_includes_pc_word:
        return epc
    if _pc_length_words(first_word) != words - 1:
        return epc
    return epc[4:]


def _antenna(entry: Mapping[str, Any], epc: str) -> int:
    antenna = entry.get("AntennaID")
    if antenna is None:
        raise TagReportError(
            RejectReason.ANTENNA_MISSING, f"EPC {epc} was reported without AntennaID"
        )
    if int(antenna) == 0:
        raise TagReportError(
            RejectReason.ANTENNA_ZERO, f"EPC {epc} was reported on antenna 0"
        )
    return int(antenna)


def _timestamps(entry: Mapping[str, Any], epc: str) -> tuple[int, int]:
    first = _optional_int(entry.get("FirstSeenTimestampUTC"))
    last = _optional_int(entry.get("LastSeenTimestampUTC"))
    if first is None and last is None:
        uptime_only = (
            "FirstSeenTimestampUptime" in entry or "LastSeenTimestampUptime" in entry
        )
        detail = "only uptime timestamps" if uptime_only else "no timestamps"
        raise TagReportError(
            RejectReason.NO_UTC_TIMESTAMP, f"EPC {epc} was reported with {detail}"
        )
    # One UTC timestamp is still the reader's own time of the read.
    first = last if first is None else first
    last = first if last is None else last
    assert first is not None and last is not None
    if first > last:
        raise TagReportError(
            RejectReason.TIMESTAMPS_INVERTED,
            f"EPC {epc} first seen at {first} us, after last seen at {last} us",
        )
    return first, last


def _rssi_dbm(entry: Mapping[str, Any]) -> float | None:
    # Impinj's peak RSSI is in hundredths of a dBm, finer than LLRP's whole dBm.
    impinj = entry.get("ImpinjPeakRSSI")
    if isinstance(impinj, int):
        return impinj / 100.0
    peak = entry.get("PeakRSSI")
    if isinstance(peak, int):
        return float(peak)
    return None


def _phase_deg(entry: Mapping[str, Any]) -> float | None:
    steps = entry.get("ImpinjRFPhaseAngle")
    if not isinstance(steps, int):
        return None
    return steps * 360.0 / IMPINJ_PHASE_STEPS


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
