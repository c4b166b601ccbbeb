"""Estimate of a reader's clock offset from the host, from its message timestamps."""

from __future__ import annotations

from collections import deque


class ClockOffsetEstimator:
    """Running estimate of reader clock minus host clock, in microseconds.

    Each sample pairs a reader timestamp with the host time at which the message
    carrying it arrived. The difference is the true offset minus the delivery delay,
    and that delay is never negative, so every sample is a lower bound of the offset.
    The largest sample in the window is the one with the least delay, so it is the
    estimate. On a LAN the smallest delay is a few milliseconds, so the estimate reads
    low by about that much. The window is measured in host time, so a reader whose
    clock is stepped is followed within `window_s`.
    """

    def __init__(self, window_s: float = 60.0, max_samples: int = 1024) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        self._window_us = int(window_s * 1_000_000)
        # (host time in us, sample in us), oldest first; kept as a monotonic queue whose
        # samples decrease, so the maximum is always at the front.
        self._candidates: deque[tuple[int, int]] = deque()
        self._max_samples = max_samples
        self._count = 0

    def add(self, reader_time_us: int, host_time_us: int) -> None:
        """Record that a message stamped `reader_time_us` arrived at `host_time_us`."""
        sample = reader_time_us - host_time_us
        while self._candidates and self._candidates[-1][1] <= sample:
            self._candidates.pop()
        self._candidates.append((host_time_us, sample))
        while len(self._candidates) > self._max_samples:
            self._candidates.popleft()
        self._expire(host_time_us)
        self._count += 1

    def _expire(self, now_us: int) -> None:
        while self._candidates and now_us - self._candidates[0][0] > self._window_us:
            self._candidates.popleft()

    def offset_us(self) -> int | None:
        """Return the estimate, or None before the first sample."""
        if not self._candidates:
            return None
        return self._candidates[0][1]

    @property
    def samples(self) -> int:
        """Number of samples recorded since creation."""
        return self._count

    def reset(self) -> None:
        """Forget all samples, for example after connecting to a different reader."""
        self._candidates.clear()
