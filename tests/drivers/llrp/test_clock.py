"""Clock offset estimate: the least-delayed sample within a host-time window."""

from __future__ import annotations

import pytest

from drivers.llrp.clock import ClockOffsetEstimator

HOST_US = 1_700_000_000_000_000


def test_estimate_none_before_samples() -> None:
    assert ClockOffsetEstimator().offset_us() is None


def test_estimate_takes_least_delayed_sample() -> None:
    estimator = ClockOffsetEstimator()
    # True offset +500 ms; delays of 40, 3 and 120 ms.
    for delay_us, step in ((40_000, 0), (3_000, 1), (120_000, 2)):
        host = HOST_US + step * 1_000_000
        estimator.add(host + 500_000 - delay_us, host)
    assert estimator.offset_us() == 497_000


def test_estimate_negative_offset() -> None:
    estimator = ClockOffsetEstimator()
    estimator.add(HOST_US - 3_000_000, HOST_US + 2_000)
    assert estimator.offset_us() == -3_002_000


def test_old_samples_expire() -> None:
    estimator = ClockOffsetEstimator(window_s=10.0)
    estimator.add(HOST_US + 5_000_000, HOST_US)
    # The reader clock was stepped back; 11 s later the old sample leaves the window.
    estimator.add(HOST_US + 11_000_000, HOST_US + 11_000_000)
    assert estimator.offset_us() == 0


def test_sample_count_kept() -> None:
    estimator = ClockOffsetEstimator()
    for step in range(5):
        estimator.add(HOST_US + step, HOST_US + step)
    assert estimator.samples == 5


def test_invalid_window_raises() -> None:
    with pytest.raises(ValueError):
        ClockOffsetEstimator(window_s=0)
