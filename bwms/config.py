"""Base class of the product's settings read from environment variables."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings


class EnvSettings(BaseSettings):
    """Settings whose environment variables must all be known.

    pydantic-settings ignores environment variables it has no field for, so a
    misspelt `BWMS_MQTT_KEEPALIVE` (for `BWMS_MQTT_KEEPALIVE_S`) would silently keep
    the default. Every variable that starts with the class's prefix must name a
    field, or validation fails and names it.
    """

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_environment(cls, data: Any) -> Any:
        prefix = str(cls.model_config.get("env_prefix") or "").upper()
        if not prefix:
            return data
        known = {prefix + name.upper() for name in cls.model_fields}
        unknown = sorted(
            key for key in os.environ if key.upper().startswith(prefix) and key.upper() not in known
        )
        if unknown:
            raise ValueError(
                f"unknown environment variable(s) {', '.join(unknown)}; "
                f"known {prefix}* variables: {', '.join(sorted(known))}"
            )
        return data


def describe_errors(exc: ValidationError) -> str:
    """Format a settings validation error as one line per problem, for a terminal."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{exc.title}: {where + ': ' if where else ''}{message}")
    return "\n".join(lines)
