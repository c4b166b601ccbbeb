"""Reader profiles: how a model of LLRP reader is set up for a portal.

A profile is a TOML file under `firmware-configs/readers/`. It sets the antennas and
their transmit power, the inventory (RF mode, Gen2 session, tag population, report
trigger), the fields each tag report carries, the keepalive period and vendor
extensions. `ReaderProfile.to_sllurp_config` turns it into sllurp's
`LLRPReaderConfig`, and `ReaderProfile.warnings` names settings that are known to
break portal logic.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sllurp.llrp import LLRPReaderConfig
from sllurp.llrp_proto import LLRPError

logger = logging.getLogger(__name__)

# NOTE: this resolves only in a source checkout or an editable install, because the
# profiles are not package data. Pass `profiles_dir` when the package is installed.
DEFAULT_PROFILES_DIR = (
    Path(__file__).resolve().parents[2] / "firmware-configs" / "readers"
)


class ReaderProfileError(ValueError):
    """A reader profile that cannot be found, parsed or used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchMode(StrEnum):
    """Impinj inventory search mode (ImpinjInventorySearchMode)."""

    SINGLE_TARGET = "single_target"
    DUAL_TARGET = "dual_target"


# The values of sllurp 3.0.5's `impinj_search_mode` (its CLI help: 1=single, 2=dual).
_IMPINJ_SEARCH_MODE_VALUES = {SearchMode.SINGLE_TARGET: 1, SearchMode.DUAL_TARGET: 2}


class AntennaSettings(_Strict):
    """One antenna port of the reader and its transmit power."""

    port: int = Field(ge=1, le=65535, description="LLRP antenna id.")
    tx_power_dbm: float | None = Field(
        default=None,
        ge=0.0,
        le=40.0,
        description=(
            "Conducted transmit power in dBm, matched to an entry of the reader's "
            "power table. Unset means the reader's maximum."
        ),
    )
    # NOTE: sllurp 3.0.5 (util.find_closest) picks the highest table entry below the
    # request and finds an exact match everywhere except at the top of the table, so
    # asking for exactly the maximum gets the step below it. Leave the power unset to
    # get the maximum.


class InventorySettings(_Strict):
    """Inventory settings, which go into the ROSpec that sllurp builds."""

    mode_identifier: int | None = Field(
        default=None,
        ge=0,
        le=0xFFFFFFFF,
        description=(
            "RF mode from the reader's UHFC1G2RFModeTable. Unset leaves the mode to "
            "the reader; sllurp rejects an identifier the reader does not list."
        ),
    )
    session: int = Field(default=1, ge=0, le=3, description="Gen2 inventory session.")
    tag_population: int = Field(
        default=32, ge=1, le=65535, description="Expected tags in the field at once."
    )
    report_every_n_tags: int = Field(
        default=1,
        ge=1,
        le=65535,
        description="Tag observations per AISpec run, hence per RO_ACCESS_REPORT.",
    )
    report_timeout_ms: int = Field(
        default=0,
        ge=0,
        le=3_600_000,
        description="Report after this many ms even if fewer tags were seen; 0 is off.",
    )


class ReportFields(_Strict):
    """Fields of each TagReportData (TagReportContentSelector and C1G2 memory bits)."""

    rospec_id: bool = False
    antenna_id: bool = True
    peak_rssi: bool = True
    channel_index: bool = True
    first_seen_timestamp: bool = True
    last_seen_timestamp: bool = True
    tag_seen_count: bool = True
    pc_bits: bool = Field(default=True, description="Ask for the C1G2PC parameter.")
    epc_includes_pc_word: bool = Field(
        default=False,
        description=(
            "The reader puts the Gen2 PC word in front of the EPC. The word is then "
            "removed when its length bits match the EPC that follows."
        ),
    )


class ImpinjSettings(_Strict):
    """Impinj LLRP extensions (vendor 25882), enabled with IMPINJ_ENABLE_EXTENSIONS."""

    search_mode: SearchMode | None = Field(
        default=None, description="Inventory search mode; unset leaves the reader's."
    )
    peak_rssi: bool = Field(default=True, description="Peak RSSI in 0.01 dBm steps.")
    rf_phase_angle: bool = Field(default=True, description="RF phase angle per read.")


class ReaderProfile(_Strict):
    """Settings of one reader model, loaded from a profile TOML file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    vendor: str = Field(min_length=1, max_length=100)
    model: str = Field(default="", max_length=100)
    description: str = Field(default="", max_length=2000)
    keepalive_interval_s: float = Field(
        default=5.0,
        gt=0.0,
        le=3600.0,
        description="Period of the reader's KEEPALIVE messages, for the watchdog.",
    )
    antennas: list[AntennaSettings] = Field(min_length=1)
    inventory: InventorySettings = InventorySettings()
    report: ReportFields = ReportFields()
    impinj: ImpinjSettings | None = None

    @model_validator(mode="after")
    def _check_antennas(self) -> ReaderProfile:
        ports = [antenna.port for antenna in self.antennas]
        if len(ports) != len(set(ports)):
            raise ValueError(f"antenna ports repeat: {ports}")
        powered = [a.tx_power_dbm is not None for a in self.antennas]
        if any(powered) and not all(powered):
            # sllurp takes either a power per antenna or one index for all of them.
            raise ValueError("set tx_power_dbm on every antenna or on none")
        return self

    @property
    def ports(self) -> list[int]:
        """Antenna ports the profile configures, in file order."""
        return [antenna.port for antenna in self.antennas]

    def warnings(self, portal_antenna_ports: Iterable[int]) -> list[str]:
        """Return settings that are known to break portal logic, one sentence each."""
        found: list[str] = []
        missing = sorted(set(portal_antenna_ports) - set(self.ports))
        if missing:
            found.append(
                f"profile {self.name}: portal antenna ports {missing} are not in the "
                "profile, so the reader will not inventory them"
            )
        found.extend(self._session_warnings())
        found.extend(self._report_field_warnings())
        return found

    def _session_warnings(self) -> list[str]:
        session = self.inventory.session
        if session not in (2, 3):
            return []
        search_mode = self.impinj.search_mode if self.impinj else None
        if search_mode == SearchMode.DUAL_TARGET:
            return []
        if search_mode == SearchMode.SINGLE_TARGET:
            setting = "single-target search"
        else:
            setting = (
                "the reader's own search mode (single target unless set otherwise)"
            )
        return [
            f"profile {self.name}: inventory session {session} with {setting}: a tag "
            "answers once and stays quiet while it is energised, so the second antenna "
            "of the portal may never see it; use session 1 or dual-target search"
        ]

    def _report_field_warnings(self) -> list[str]:
        report = self.report
        found = []
        if not report.antenna_id:
            found.append(
                f"profile {self.name}: reports lack the antenna id, so every read is "
                "rejected; set report.antenna_id = true"
            )
        impinj_rssi = self.impinj is not None and self.impinj.peak_rssi
        if not report.peak_rssi and not impinj_rssi:
            found.append(
                f"profile {self.name}: reports lack peak RSSI, so the portal cannot "
                "tell which antenna a tag was nearest; set report.peak_rssi = true"
            )
        if not report.first_seen_timestamp and not report.last_seen_timestamp:
            found.append(
                f"profile {self.name}: reports lack UTC timestamps, so every read is "
                "rejected; set report.last_seen_timestamp = true"
            )
        return found

    def to_sllurp_config(
        self,
        antennas: Sequence[int] | None = None,
        *,
        keepalive_interval_s: float | None = None,
    ) -> LLRPReaderConfig:
        """Build sllurp's reader configuration for `antennas` (default: all of them).

        Reconnecting is left off because the client runs its own connection policy.
        Raises ReaderProfileError for an antenna port the profile does not define.
        """
        ports = list(antennas) if antennas else self.ports
        unknown = sorted(set(ports) - set(self.ports))
        if unknown:
            raise ReaderProfileError(
                f"profile {self.name}: antenna ports {unknown} are not defined; add an "
                "[[antennas]] entry for each"
            )
        interval_s = keepalive_interval_s or self.keepalive_interval_s
        settings: dict[str, Any] = {
            "antennas": ports,
            "mode_identifier": self.inventory.mode_identifier,
            "session": self.inventory.session,
            "tag_population": self.inventory.tag_population,
            "report_every_n_tags": self.inventory.report_every_n_tags,
            "report_timeout_ms": self.inventory.report_timeout_ms,
            "tag_content_selector": self._tag_content_selector(),
            "keepalive_interval": max(1, round(interval_s * 1000)),
            "reconnect": False,
            "start_inventory": True,
            "reset_on_connect": True,
        }
        settings.update(self._power_settings(ports))
        settings.update(self._impinj_settings())
        try:
            return LLRPReaderConfig(settings)
        except LLRPError as exc:
            raise ReaderProfileError(f"profile {self.name}: {exc}") from exc

    def _tag_content_selector(self) -> dict[str, Any]:
        report = self.report
        return {
            "EnableROSpecID": report.rospec_id,
            "EnableSpecIndex": False,
            "EnableInventoryParameterSpecID": False,
            "EnableAntennaID": report.antenna_id,
            "EnableChannelIndex": report.channel_index,
            "EnablePeakRSSI": report.peak_rssi,
            "EnableFirstSeenTimestamp": report.first_seen_timestamp,
            "EnableLastSeenTimestamp": report.last_seen_timestamp,
            "EnableTagSeenCount": report.tag_seen_count,
            "EnableAccessSpecID": False,
            "C1G2EPCMemorySelector": {
                "EnableCRC": False,
                "EnablePCBits": report.pc_bits,
            },
        }

    def _power_settings(self, ports: list[int]) -> dict[str, Any]:
        by_port = {antenna.port: antenna.tx_power_dbm for antenna in self.antennas}
        powers = {port: by_port[port] for port in ports}
        if all(power is None for power in powers.values()):
            # sllurp's tx_power index 0 selects the top of the reader's power table.
            return {"tx_power": 0, "tx_power_dbm": None}
        return {
            "tx_power": 0,
            "tx_power_dbm": {p: float(v or 0.0) for p, v in powers.items()},
        }

    def _impinj_settings(self) -> dict[str, Any]:
        if self.impinj is None:
            return {"impinj_search_mode": None, "impinj_tag_content_selector": None}
        search_mode = self.impinj.search_mode
        return {
            "impinj_search_mode": (
                _IMPINJ_SEARCH_MODE_VALUES[search_mode] if search_mode else None
            ),
            "impinj_tag_content_selector": {
                "EnableRFPhaseAngle": self.impinj.rf_phase_angle,
                "EnablePeakRSSI": self.impinj.peak_rssi,
                "EnableRFDopplerFrequency": False,
            },
        }


def resolve_profile_path(
    name_or_path: str | Path, profiles_dir: Path | None = None
) -> Path:
    """Return the file of a profile given by name (`generic`) or by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        return Path(name_or_path)
    return (profiles_dir or DEFAULT_PROFILES_DIR) / f"{text}.toml"


def load_profile(
    name_or_path: str | Path, *, profiles_dir: Path | None = None
) -> ReaderProfile:
    """Load and validate a reader profile, raising ReaderProfileError with the cause."""
    path = resolve_profile_path(name_or_path, profiles_dir)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ReaderProfileError(f"reader profile not found: {path}") from exc
    except OSError as exc:
        raise ReaderProfileError(f"cannot read reader profile {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ReaderProfileError(
            f"reader profile {path} is not valid TOML: {exc}"
        ) from exc
    try:
        return ReaderProfile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ReaderProfileError(
            f"reader profile {path} is invalid: {problems}"
        ) from exc


def _location(parts: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in parts) or "(top level)"
