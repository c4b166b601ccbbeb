"""Manifest input and output models, and the checks of single fields.

Input models normalise what they accept: GTINs become GTIN-14, EPCs uppercase hex,
times UTC. Validate untrusted manifests with `hub.manifests.validation.parse_manifest`
rather than with these models directly, because it also checks the rules that span
lines and names the line of every issue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bwms.epc import EpcError, gs1_check_digit, normalize_gtin

DEFAULT_HS_CODE_DIGITS = 10

# The Gen2 protocol-control word gives the EPC length in 16-bit words in a 5-bit
# field, so an EPC is at most 31 words long.
EPC_MAX_WORDS = 31

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Text = Annotated[str, Field(max_length=500)]


# --- field checks -----------------------------------------------------------------


# The largest value of the database's INTEGER column type (32 bits in PostgreSQL).
MAX_WHOLE_NUMBER = 2_147_483_647


def whole_number(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass in Python, and "2.5" or 2.5 must not become 2.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError(
            f"{name} must be a whole number of at least {minimum}, got {value!r}"
        )
    if number < minimum:
        raise ValueError(
            f"{name} must be a whole number of at least {minimum}, got {value!r}"
        )
    if number > MAX_WHOLE_NUMBER:
        raise ValueError(f"{name} must be at most {MAX_WHOLE_NUMBER}, got {value!r}")
    return number


def _digit_string(name: str, value: Any) -> str:
    # A JSON number or a spreadsheet cell read as one has already lost its leading
    # zeros, so codes are accepted only as text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(
            f"{name} must be a string of digits, not a number, so that leading zeros "
            "survive"
        )
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string of digits, got {value!r}")
    return value.strip()


def check_gtin(value: Any) -> str:
    """Return a GTIN-8/12/13/14 as GTIN-14, raising ValueError if it is invalid."""
    try:
        return normalize_gtin(_digit_string("GTIN", value))
    except EpcError as exc:
        raise ValueError(str(exc)) from exc


def check_sscc(value: Any) -> str:
    """Return an SSCC-18, raising ValueError unless it has 18 digits and a valid check digit."""
    sscc = _digit_string("SSCC", value)
    if not (sscc.isascii() and sscc.isdigit() and len(sscc) == 18):
        raise ValueError(f"SSCC {sscc!r} must be exactly 18 digits")
    expected = gs1_check_digit(sscc[:-1])
    if sscc[-1] != expected:
        raise ValueError(f"SSCC {sscc} has check digit {sscc[-1]}; expected {expected}")
    return sscc


def check_epc(value: Any) -> str:
    """Return an EPC as uppercase hex, raising ValueError unless it is whole words."""
    if not isinstance(value, str):
        raise ValueError(f"EPC must be a hex string, not a {type(value).__name__}")
    epc = value.strip().upper()
    if not epc or any(char not in "0123456789ABCDEF" for char in epc):
        raise ValueError(f"EPC {value!r} is not a hex string")
    # Readers report the EPC bank in 16-bit words, so a listed EPC must be in that
    # form to be compared with what is read.
    if len(epc) % 4 != 0 or len(epc) > EPC_MAX_WORDS * 4:
        raise ValueError(
            f"EPC {epc} has {len(epc)} hex digits; expected whole 16-bit words "
            f"(a multiple of 4 hex digits, at most {EPC_MAX_WORDS * 4})"
        )
    return epc


def check_hs_code(value: Any, digits: int) -> str:
    """Return an HS code, raising ValueError unless it is exactly `digits` digits."""
    code = _digit_string("HS code", value)
    if not (code.isascii() and code.isdigit()):
        raise ValueError(f"HS code {code!r} must contain only digits")
    # A short code is not padded, because the missing digits may be leading zeros
    # that a spreadsheet dropped or digits cut from the end.
    if len(code) != digits:
        raise ValueError(f"HS code {code!r} has {len(code)} digits; expected {digits}")
    return code


def _hs_code_digits(info: ValidationInfo) -> int:
    context = info.context or {}
    digits = context.get("hs_code_digits", DEFAULT_HS_CODE_DIGITS)
    return int(digits)


# --- input models -----------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _optional_quantity(value: Any) -> int | None:
    return None if value is None else whole_number("quantity", value, 1)


def _optional_epcs(value: Any) -> list[str] | None:
    return _epc_list(value)


# Input types shared by pallet contents, lines and manual confirmations.
Quantity = Annotated[int | None, BeforeValidator(_optional_quantity)]
EpcList = Annotated[list[str] | None, BeforeValidator(_optional_epcs)]


class ContentIn(_Input):
    """One entry of a pallet's contents: a GTIN with a quantity, or listed EPCs."""

    gtin: str | None = None
    quantity: Quantity = None
    epcs: EpcList = None

    @field_validator("gtin", mode="before")
    @classmethod
    def _gtin(cls, value: Any) -> str | None:
        return None if value is None else check_gtin(value)

    @model_validator(mode="after")
    def _one_identity(self) -> ContentIn:
        if (self.gtin is None) == (self.epcs is None):
            raise ValueError("give either gtin with quantity, or epcs")
        if self.gtin is not None and self.quantity is None:
            raise ValueError(f"GTIN {self.gtin} needs a quantity")
        if self.epcs is not None:
            self.quantity = _listed_quantity(self.quantity, self.epcs)
        return self


class LineIn(_Input):
    """One manifest line: exactly one of gtin, sscc or epcs identifies its goods."""

    line_no: int
    gtin: str | None = None
    sscc: str | None = None
    epcs: EpcList = None
    quantity: Quantity = Field(
        default=None,
        description="Units expected. It is required with gtin and is 1 for an SSCC. "
        "With epcs it defaults to the number of EPCs listed.",
    )
    unit: str = Field(min_length=1, max_length=16, description="Unit, e.g. CT, PCE, PLT.")
    description: Text = ""
    hs_code: str | None = Field(
        default=None, description="HS code as a digit string of the national length."
    )
    batch: str | None = Field(default=None, max_length=64)
    gross_kg: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    contents: list[ContentIn] = Field(
        default_factory=list,
        description="Cartons on an SSCC pallet line, counted against this line.",
    )

    @field_validator("line_no", mode="before")
    @classmethod
    def _line_no(cls, value: Any) -> int:
        return whole_number("line_no", value, 1)

    @field_validator("gtin", mode="before")
    @classmethod
    def _gtin(cls, value: Any) -> str | None:
        return None if value is None else check_gtin(value)

    @field_validator("sscc", mode="before")
    @classmethod
    def _sscc(cls, value: Any) -> str | None:
        return None if value is None else check_sscc(value)

    @field_validator("hs_code", mode="before")
    @classmethod
    def _hs_code(cls, value: Any, info: ValidationInfo) -> str | None:
        return None if value is None else check_hs_code(value, _hs_code_digits(info))

    @model_validator(mode="after")
    def _one_identity(self) -> LineIn:
        identities = [
            name
            for name, value in (("gtin", self.gtin), ("sscc", self.sscc), ("epcs", self.epcs))
            if value is not None
        ]
        if len(identities) != 1:
            named = " and ".join(identities) if identities else "none of them"
            raise ValueError(f"give exactly one of gtin, sscc or epcs; this line gives {named}")
        if self.contents and self.sscc is None:
            raise ValueError("contents are allowed only on an SSCC (pallet) line")

        if self.gtin is not None and self.quantity is None:
            raise ValueError(f"GTIN {self.gtin} needs a quantity")
        if self.sscc is not None:
            # An SSCC identifies exactly one logistic unit.
            if self.quantity not in (None, 1):
                raise ValueError(
                    f"an SSCC line is one logistic unit, so quantity must be 1, "
                    f"got {self.quantity}"
                )
            self.quantity = 1
        if self.epcs is not None:
            self.quantity = _listed_quantity(self.quantity, self.epcs)
        return self


def _epc_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError("epcs must be a non-empty list of hex strings")
    epcs = [check_epc(item) for item in value]
    repeated = sorted({epc for epc in epcs if epcs.count(epc) > 1})
    if repeated:
        raise ValueError(f"EPC {repeated[0]} is listed more than once")
    return epcs


def _listed_quantity(quantity: int | None, epcs: list[str]) -> int:
    if quantity is not None and quantity != len(epcs):
        raise ValueError(f"quantity {quantity} differs from the {len(epcs)} listed EPCs")
    return len(epcs)


class ManifestHeader(_Input):
    """The fields of a manifest other than its lines."""

    manifest_id: Id
    direction: Literal["in", "out"]
    declaration_no: str = Field(min_length=1, max_length=64)
    site: str | None = Field(
        default=None, description="Site id; defaults to the hub's site."
    )
    portals: list[str] = Field(min_length=1, description="Portal ids the goods may pass.")
    window_start: datetime | None = Field(
        default=None, description="RFC 3339 time with offset; movements before it do not count."
    )
    window_end: datetime | None = Field(
        default=None, description="RFC 3339 time with offset; the manifest closes after it."
    )

    @field_validator("window_start", "window_end")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"{info.field_name} {value.isoformat()} has no UTC offset; "
                "write it as RFC 3339, e.g. 2025-03-01T08:00:00+08:00"
            )
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _window_order(self) -> ManifestHeader:
        if (
            self.window_start is not None
            and self.window_end is not None
            and self.window_end < self.window_start
        ):
            raise ValueError(
                f"window_end {self.window_end.isoformat()} is before "
                f"window_start {self.window_start.isoformat()}"
            )
        return self


class ManifestIn(ManifestHeader):
    """A whole manifest as the API accepts it."""

    lines: list[LineIn] = Field(min_length=1)


class ConfirmIn(_Input):
    """Units of one line that a keeper confirms by hand."""

    epcs: EpcList = None
    quantity: Quantity = None
    by: str = Field(min_length=1, max_length=100, description="Who confirms.")
    reason: str = Field(min_length=1, max_length=500, description="Why RFID missed them.")

    @model_validator(mode="after")
    def _one_kind(self) -> ConfirmIn:
        if (self.epcs is None) == (self.quantity is None):
            raise ValueError("give either epcs or quantity")
        return self


# --- output models ----------------------------------------------------------------


class ContentOut(BaseModel):
    gtin: str | None
    quantity: int
    epcs: list[str] | None


class LineOut(BaseModel):
    line_no: int
    gtin: str | None
    sscc: str | None
    epcs: list[str] | None
    quantity: int
    unit: str
    description: str
    hs_code: str | None
    batch: str | None
    gross_kg: float | None
    contents: list[ContentOut]


class ManifestOut(BaseModel):
    manifest_id: str
    direction: str
    declaration_no: str
    site: str
    portals: list[str]
    window_start: datetime | None
    window_end: datetime | None
    status: str
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    lines: list[LineOut]


class ManifestSummary(BaseModel):
    """A manifest in a list, without its lines."""

    manifest_id: str
    direction: str
    declaration_no: str
    site: str
    portals: list[str]
    window_start: datetime | None
    window_end: datetime | None
    status: str
    created_at: datetime
    closed_at: datetime | None
    line_count: int
