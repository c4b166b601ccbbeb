"""Sizes and timings of a fault-injection run.

One set of scenario functions serves both the short form that the test suite runs
and the long form run by hand (`bwms chaos --size long`): only these numbers change.
The short form keeps every retry and backoff low so that a fault costs about a
second of waiting instead of the production defaults' half-minute.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Size = Literal["ci", "long"]


class ChaosSettings(BaseModel):
    """Stream size, portal timing and the edge and hub retry settings of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    portals: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Dock doors of the test site, each with its own LLRP reader "
        "simulator and edge daemon.",
    )
    waves: int = Field(
        default=24,
        ge=1,
        le=100_000,
        description="Rounds of crossings. In each round one tag enters and one tag "
        "leaves through every portal, so a round makes two movements per portal.",
    )
    idle_gap_s: float = Field(
        default=0.3,
        ge=0.1,
        le=10.0,
        description="Portal idle gap written to the site file: a movement closes "
        "once its tags have not been read for this long.",
    )
    wave_pause_s: float = Field(
        default=0.1,
        ge=0.0,
        le=60.0,
        description="Extra reader time between the end of one round's movements and "
        "the next round's first read, so rounds never merge into one movement.",
    )
    ack_timeout_s: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description="Edge wait for the hub's ack before a movement is sent again.",
    )
    resend_backoff_max_s: float = Field(
        default=1.0,
        gt=0.0,
        le=600.0,
        description="Maximum edge wait between two resends of one movement.",
    )
    reconnect_max_s: float = Field(
        default=1.0,
        ge=1.0,
        le=600.0,
        description="Maximum wait between broker reconnect attempts, edge and hub. "
        "The hub's MQTT client takes whole seconds, at least 1.",
    )
    inflight_window: int = Field(
        default=200,
        ge=1,
        le=900,
        description="Movements each edge daemon keeps published but unconfirmed.",
    )
    reader_keepalive_s: float = Field(
        default=0.25,
        gt=0.0,
        le=60.0,
        description="LLRP keepalive period the edge daemon asks its reader for; "
        "shorter than the idle gap, so keepalives show the reader clock moving on "
        "between rounds.",
    )
    reader_missed_keepalives: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Keepalive periods without a message before the daemon drops "
        "the reader link. Six periods of 0.25 s ride out the stalls of a busy test "
        "machine, which three would take for a dead reader.",
    )
    start_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=600.0,
        description="Time allowed for a process to start or a reader link to come up.",
    )
    settle_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        le=7200.0,
        description="Time allowed after the last crossing for every movement to be "
        "stored and confirmed.",
    )
    seed: int | None = Field(
        default=None,
        description="Seed of the fault timing; a new random seed when unset. The "
        "seed of each run is printed so that a failure can be replayed.",
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> ChaosSettings:
        if self.ack_timeout_s > self.resend_backoff_max_s:
            raise ValueError("ack_timeout_s must not exceed resend_backoff_max_s")
        if self.reader_keepalive_s >= self.idle_gap_s:
            raise ValueError("reader_keepalive_s must be shorter than idle_gap_s")
        return self

    @property
    def crossing_span_s(self) -> float:
        """Reader time one crossing's reads cover, from the first to the last read."""
        return (READS_PER_SIDE * 2 - 1) * READ_INTERVAL_S

    @property
    def wave_period_s(self) -> float:
        """Time from one round of crossings to the next."""
        return self.crossing_span_s + self.idle_gap_s + self.wave_pause_s


# Reads of one tag crossing a door: this many on the side it comes from, then as many
# on the side it goes to, this far apart. Three reads a side give each side's mean
# read time a spread of 8 ms against a 30 ms gap between the sides, so the portal
# logic decides the direction with room to spare (docs/portal-logic.md).
READS_PER_SIDE = 3
READ_INTERVAL_S = 0.01

SIZES: dict[Size, ChaosSettings] = {
    "ci": ChaosSettings(),
    "long": ChaosSettings(
        portals=4,
        waves=600,
        resend_backoff_max_s=10.0,
        reconnect_max_s=5.0,
        settle_timeout_s=900.0,
        start_timeout_s=60.0,
    ),
}


def settings_for(size: Size, **overrides: object) -> ChaosSettings:
    """Return the settings of a named size with some fields replaced."""
    base = SIZES[size]
    if not overrides:
        return base
    return ChaosSettings.model_validate({**base.model_dump(), **overrides})
