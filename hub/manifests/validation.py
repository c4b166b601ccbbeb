"""Validation of untrusted manifests, naming the line of each issue.

`parse_manifest` is the one entry point for manifests from the API and from CSV
files alike. It validates the header and every line independently, then the rules
that span lines, and raises `ManifestInvalid` with every issue found, so that a
broker can fix a file in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bwms.site import Site
from hub.manifests.schemas import (
    DEFAULT_HS_CODE_DIGITS,
    LineIn,
    ManifestHeader,
    ManifestIn,
    whole_number,
)


@dataclass(frozen=True, slots=True)
class ManifestIssue:
    """One problem in a manifest, with the line it belongs to where there is one.

    `position` is the index in the manifest's list of lines. It stays usable when
    the line number itself is missing or repeated.
    """

    message: str
    line_no: int | None = None
    position: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        if self.line_no is not None:
            return f"line {self.line_no}: {self.message}"
        if self.position is not None:
            return f"line at position {self.position + 1}: {self.message}"
        return self.message

    def as_dict(self) -> dict[str, Any]:
        """Return the issue as one entry of the API's 422 detail list."""
        return {"line_no": self.line_no, "field": self.field, "msg": str(self)}


class ManifestInvalid(ValueError):
    """A manifest with one or more issues, of which nothing was stored."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues


def _error_text(error: Mapping[str, Any]) -> tuple[str, str]:
    """Return the field path and a readable message of one pydantic error."""
    loc = list(error["loc"])
    name = str(loc.pop()) if loc and not isinstance(loc[-1], int) else None
    path = ".".join(str(part) for part in error["loc"]) or "(root)"

    # Nested places read as "contents entry 2", counting from 1 as people do.
    place_parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            place_parts.append(f"entry {part + 1}")
        else:
            place_parts.append(str(part))
    place = " ".join(place_parts)

    kind = error["type"]
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "missing":
        message = f"{name} is missing"
    elif kind == "extra_forbidden":
        message = f"unknown field {name!r}"
    else:
        message = f"{name or 'value'}: {error['msg']}"
    return path, f"{place}: {message}" if place else message


def validation_issues(
    exc: ValidationError, *, line_no: int | None = None, position: int | None = None
) -> list[ManifestIssue]:
    """Turn a pydantic error into issues that name the line."""
    issues = []
    for error in exc.errors():
        field, message = _error_text(error)
        issues.append(
            ManifestIssue(message, line_no=line_no, position=position, field=field)
        )
    return issues


def _raw_line_no(raw: Any) -> int | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return whole_number("line_no", raw.get("line_no"), 1)
    except ValueError:
        return None


def _validate_lines(
    raw_lines: Any, hs_code_digits: int
) -> tuple[list[LineIn], list[ManifestIssue]]:
    if not isinstance(raw_lines, list) or not raw_lines:
        return [], [ManifestIssue("a manifest needs at least one line", field="lines")]
    lines: list[LineIn] = []
    issues: list[ManifestIssue] = []
    context = {"hs_code_digits": hs_code_digits}
    for position, raw in enumerate(raw_lines):
        try:
            lines.append(LineIn.model_validate(raw, context=context))
        except ValidationError as exc:
            issues.extend(validation_issues(exc, line_no=_raw_line_no(raw), position=position))
    return lines, issues


def _repeated_line_numbers(raw_lines: Any) -> list[ManifestIssue]:
    # Read from the raw lines, so a repeat is found even when a copy is invalid.
    if not isinstance(raw_lines, list):
        return []
    issues: list[ManifestIssue] = []
    seen: set[int] = set()
    for position, raw in enumerate(raw_lines):
        line_no = _raw_line_no(raw)
        if line_no is None:
            continue
        if line_no in seen:
            issues.append(
                ManifestIssue(
                    f"line number {line_no} is repeated",
                    line_no=line_no,
                    position=position,
                    field="line_no",
                )
            )
        seen.add(line_no)
    return issues


def _cross_line_issues(lines: list[LineIn]) -> list[ManifestIssue]:
    """Check that no SSCC or listed EPC appears on two lines."""
    issues: list[ManifestIssue] = []
    line_of_sscc: dict[str, int] = {}
    line_of_epc: dict[str, int] = {}
    for position, line in enumerate(lines):
        if line.sscc is not None:
            first = line_of_sscc.setdefault(line.sscc, line.line_no)
            if first != line.line_no:
                issues.append(
                    ManifestIssue(
                        f"SSCC {line.sscc} is also on line {first}",
                        line_no=line.line_no,
                        position=position,
                        field="sscc",
                    )
                )

        listed = list(line.epcs or [])
        for content in line.contents:
            listed.extend(content.epcs or [])
        for epc in listed:
            first = line_of_epc.setdefault(epc, line.line_no)
            if first != line.line_no:
                issues.append(
                    ManifestIssue(
                        f"EPC {epc} is also listed on line {first}",
                        line_no=line.line_no,
                        position=position,
                        field="epcs",
                    )
                )
    return issues


def _site_issues(payload: Mapping[str, Any], site: Site | None) -> list[ManifestIssue]:
    # Run on the raw values, so an unknown portal is reported together with any
    # other header error.
    if site is None:
        return []
    issues: list[ManifestIssue] = []
    given_site = payload.get("site")
    if isinstance(given_site, str) and given_site != site.site.id:
        issues.append(
            ManifestIssue(
                f"site {given_site!r} is not this hub's site {site.site.id!r}",
                field="site",
            )
        )
    portals = payload.get("portals")
    known = {portal.id for portal in site.portals}
    for portal in portals if isinstance(portals, list) else []:
        if isinstance(portal, str) and portal not in known:
            issues.append(
                ManifestIssue(
                    f"portal {portal!r} is not in site {site.site.id} "
                    f"(known: {', '.join(sorted(known))})",
                    field="portals",
                )
            )
    return issues


def parse_manifest(
    payload: Any, *, site: Site | None, hs_code_digits: int = DEFAULT_HS_CODE_DIGITS
) -> ManifestIn:
    """Validate a manifest given as JSON-like data and return it normalised.

    `site` is the hub's site: portals must exist in it and a given site id must be
    its id. Raises ManifestInvalid listing every issue found.
    """
    if not isinstance(payload, Mapping):
        raise ManifestInvalid(
            [ManifestIssue(f"a manifest must be a JSON object, got {type(payload).__name__}")]
        )

    issues: list[ManifestIssue] = []
    header_fields = {key: value for key, value in payload.items() if key != "lines"}
    header: ManifestHeader | None = None
    try:
        header = ManifestHeader.model_validate(header_fields)
    except ValidationError as exc:
        issues.extend(validation_issues(exc))
    issues.extend(_site_issues(payload, site))

    lines, line_issues = _validate_lines(payload.get("lines"), hs_code_digits)
    issues.extend(line_issues)
    issues.extend(_repeated_line_numbers(payload.get("lines")))
    issues.extend(_cross_line_issues(lines))

    if issues or header is None:
        # Header issues first, then line issues in the order of the lines.
        issues.sort(key=lambda issue: -1 if issue.position is None else issue.position)
        raise ManifestInvalid(issues)
    data = header.model_dump()
    if data["site"] is None and site is not None:
        data["site"] = site.site.id
    if data["site"] is None:
        raise ManifestInvalid(
            [ManifestIssue("site is missing and the hub has no site file", field="site")]
        )
    return ManifestIn.model_construct(**data, lines=lines)
