"""MQTT topics and payload schemas shared by the edge daemons and the hub.

Every payload carries a `schema` field naming its JSON Schema (`bwms/schemas/`), and
the topic tree is `bwms/v1/{site}/{portal}/{kind}`. Both halves import the names
below instead of spelling topics or schema ids themselves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs

TOPIC_ROOT = "bwms/v1"


class Kind(StrEnum):
    """Last topic level: what a message on that topic is."""

    MOVEMENT = "movement"
    CROSSING = "crossing"
    STATUS = "status"
    ACK = "ack"


# Schema id carried in each payload's `schema` field, by topic kind.
SCHEMA_IDS: dict[Kind, str] = {
    Kind.MOVEMENT: "bwms.movement/1",
    Kind.CROSSING: "bwms.crossing/1",
    Kind.STATUS: "bwms.status/1",
    Kind.ACK: "bwms.ack/1",
}

# MQTT QoS per topic kind. Movements and confirmations must arrive; a crossing
# notice is only useful while the tag is at the portal, so it is not queued.
QOS: dict[Kind, int] = {
    Kind.MOVEMENT: 1,
    Kind.CROSSING: 0,
    Kind.STATUS: 1,
    Kind.ACK: 1,
}


class TopicError(ValueError):
    """A topic outside the `bwms/v1/{site}/{portal}/{kind}` tree."""


def topic(site: str, portal: str, kind: Kind) -> str:
    """Build the topic for one portal's messages of one kind."""
    for name, value in (("site", site), ("portal", portal)):
        if not value or any(c in value for c in "/+#"):
            raise TopicError(f"invalid {name} id {value!r} for a topic level")
    return f"{TOPIC_ROOT}/{site}/{portal}/{kind.value}"


def subscription(kind: Kind, site: str = "+", portal: str = "+") -> str:
    """Build a subscription filter; `+` matches every site or portal."""
    return f"{TOPIC_ROOT}/{site}/{portal}/{kind.value}"


def parse_topic(value: str) -> tuple[str, str, Kind]:
    """Split a topic into (site, portal, kind) or raise TopicError."""
    parts = value.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise TopicError(f"topic {value!r} is not under {TOPIC_ROOT}/{{site}}/{{portal}}")
    try:
        kind = Kind(parts[4])
    except ValueError as exc:
        raise TopicError(f"topic {value!r} has unknown kind {parts[4]!r}") from exc
    return parts[2], parts[3], kind


@cache
def load_schema(kind: Kind) -> dict[str, Any]:
    """Load the JSON Schema document for one payload kind."""
    name = SCHEMA_IDS[kind].replace("/", "-") + ".schema.json"
    text = resources.files("bwms.schemas").joinpath(name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(kind: Kind) -> jsonschema.protocols.Validator:
    schema = load_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class PayloadError(ValueError):
    """A payload that is not JSON or does not match its schema."""


@cache
def _fast_validator(kind: Kind) -> Any:
    return jsonschema_rs.validator_for(load_schema(kind))


def validate(kind: Kind, payload: dict[str, Any]) -> None:
    """Raise PayloadError naming the first schema violation of `payload`.

    jsonschema-rs checks the payload first because it is about a hundred times
    faster, and the edge validates every payload it builds. Only a payload it
    rejects goes through the Python validator, which decides and words the error.
    """
    if _fast_validator(kind).is_valid(payload):
        return
    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise PayloadError(f"{SCHEMA_IDS[kind]} invalid at {where}: {error.message}")


def decode(kind: Kind, raw: bytes) -> dict[str, Any]:
    """Parse and validate one MQTT payload, raising PayloadError."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"payload is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        # Deeply nested arrays or objects exhaust the parser's stack.
        raise PayloadError("payload is not usable JSON: nested too deeply") from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is a JSON {type(payload).__name__}, not an object")
    validate(kind, payload)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Serialise a payload compactly with stable key order."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def format_time_us(epoch_us: int) -> str:
    """Format microseconds since the Unix epoch as RFC 3339 UTC with microseconds."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time_us(value: str) -> int:
    """Parse an RFC 3339 timestamp into microseconds since the Unix epoch."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
