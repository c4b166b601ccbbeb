"""The site file: one TOML document that describes a whole site.

The hub and every edge daemon of a site load the same file, so a portal's id, kind,
antenna sides and tuning are defined once. See `firmware-configs/sites/` for
examples.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortalKind(StrEnum):
    DOCK_DOOR = "dock_door"
    GATE = "gate"


class Side(StrEnum):
    INSIDE = "inside"
    OUTSIDE = "outside"


class SiteInfo(_Strict):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field(default="UTC", description="IANA time zone of the site.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class Antenna(_Strict):
    port: int = Field(ge=1, le=65535, description="LLRP antenna id on the reader.")
    side: Side


class Position(_Strict):
    x: float = Field(description="Metres east of the site plan origin.")
    y: float = Field(description="Metres north of the site plan origin.")


class ReaderRef(_Strict):
    id: Id
    host: str = Field(default="127.0.0.1", description="Reader host name or address.")
    port: int = Field(default=5084, ge=1, le=65535, description="LLRP TCP port.")
    profile: str = Field(
        default="generic",
        description="Reader profile name under firmware-configs/readers/ (without .toml).",
    )


class Tuning(_Strict):
    """Per-portal thresholds of the direction logic."""

    rssi_floor_dbm: float = Field(
        default=-70.0, ge=-120.0, le=0.0,
        description="Reads weaker than this are ignored for direction and movement.",
    )
    idle_gap_s: float = Field(
        default=3.0, gt=0.0, le=600.0,
        description="A movement closes once none of its tags was read for this long.",
    )
    min_reads: int = Field(
        default=2, ge=1, le=1000,
        description="Qualifying reads a tag needs before it can be part of a movement.",
    )
    staged_dwell_s: float = Field(
        default=8.0, gt=0.0, le=86_400.0,
        description="A tag seen on one side only for this long is staged, not moving.",
    )


class Portal(_Strict):
    id: Id
    kind: PortalKind
    name: str = ""
    reader: ReaderRef
    position: Position = Position(x=0.0, y=0.0)
    antennas: list[Antenna] = Field(min_length=2)
    tuning: Tuning = Tuning()

    @model_validator(mode="after")
    def _both_sides(self) -> "Portal":
        ports = [a.port for a in self.antennas]
        if len(ports) != len(set(ports)):
            raise ValueError(f"portal {self.id}: antenna ports repeat: {ports}")
        sides = {a.side for a in self.antennas}
        if sides != {Side.INSIDE, Side.OUTSIDE}:
            raise ValueError(
                f"portal {self.id}: needs antennas on both sides (inside and outside)"
            )
        return self

    def side_of(self, port: int) -> Side | None:
        """Return the side an antenna port faces, or None for an unknown port."""
        for antenna in self.antennas:
            if antenna.port == port:
                return antenna.side
        return None


class Site(_Strict):
    site: SiteInfo
    portals: list[Portal] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_portals(self) -> "Site":
        ids = [p.id for p in self.portals]
        if len(ids) != len(set(ids)):
            raise ValueError(f"portal ids repeat: {ids}")
        return self

    def portal(self, portal_id: str) -> Portal:
        """Return the portal with this id or raise SiteError."""
        for portal in self.portals:
            if portal.id == portal_id:
                return portal
        known = ", ".join(p.id for p in self.portals)
        raise SiteError(f"site {self.site.id} has no portal {portal_id!r} (known: {known})")


class SiteError(ValueError):
    """A site file that cannot be read or is invalid."""


def load_site(path: Path | str) -> Site:
    """Read and validate a site file, raising SiteError with the file name."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SiteError(f"cannot read site file {path}: {exc.strerror}") from exc
    try:
        # utf-8-sig drops the byte-order mark that some Windows editors write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SiteError(
            f"site file {path} is not UTF-8 text (invalid byte at offset {exc.start}); "
            "save it as UTF-8"
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"site file {path} is not valid TOML: {exc}") from exc
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(f"  {_location(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SiteError(f"site file {path} is invalid:\n{problems}") from exc


def _location(loc: tuple[int | str, ...]) -> str:
    """Format a validation error location as a TOML-like path: portals[0].kind."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text or "(file)"


def configs_dir() -> Path:
    """Return the repository's firmware-configs folder (reader, site profiles)."""
    return Path(__file__).resolve().parent.parent / "firmware-configs"
