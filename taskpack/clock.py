"""The scheduler's clocks: wall time for fire instants, and step detection.

Fire instants are wall-clock times (a cron names wall times, and every
host must compute the same instant so that their claims agree), but sleeps
run on the monotonic clock. :class:`StepWatch` compares the two: when the
wall clock moves by more than the monotonic clock did (plus
:data:`STEP_TOLERANCE`), the system clock was stepped (NTP correction, a
suspended machine, an operator), and the scheduler re-plans from the new
wall time instead of sleeping towards an instant computed before the step.

Test hook: :func:`wall_clock` adds the number of seconds written in the
file named by ``$TASKPACK_TEST_CLOCK_FILE`` (re-read when the file changes;
missing or empty: 0). Tests use it to step the clock of a real server
process without changing the machine's clock; it is not meant for
production and nothing sets it by default.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

TEST_CLOCK_ENV = "TASKPACK_TEST_CLOCK_FILE"

STEP_TOLERANCE = 1.0
"""Seconds of disagreement between the wall and monotonic clocks taken as a
step (NTP slews smaller offsets gradually; steps are usually larger)."""


class _OffsetFile:
    """The test hook's offset, cached by the file's modification time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.offset = 0.0

    def __call__(self) -> float:
        try:
            info = os.stat(self.path)
        except OSError:
            return 0.0
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self.stamp:
            try:
                with open(self.path, encoding="utf-8") as file:
                    text = file.read().strip()
                self.offset = float(text) if text else 0.0
            except (OSError, ValueError):
                return self.offset
            self.stamp = stamp
        return self.offset


_offset: _OffsetFile | None = None
if os.environ.get(TEST_CLOCK_ENV):
    _offset = _OffsetFile(os.environ[TEST_CLOCK_ENV])


def wall_clock() -> float:
    """The wall-clock time in POSIX seconds (``time.time()``, plus the test
    hook's offset when ``$TASKPACK_TEST_CLOCK_FILE`` is set)."""
    if _offset is None:
        return time.time()
    return time.time() + _offset()


@dataclass
class Step:
    """A detected clock step: ``seconds`` the wall clock moved beyond the
    monotonic clock (negative: backwards)."""

    seconds: float


class StepWatch:
    """Tells whether the wall clock was stepped since the last look.

    ``wall`` is the wall clock (the scheduler's). :meth:`check` returns a
    :class:`Step` when the wall clock moved more (or less) than the
    monotonic clock since the previous call, by over ``tolerance`` seconds,
    and None otherwise; each step is reported once.
    """

    def __init__(self, wall: Callable[[], float], tolerance: float = STEP_TOLERANCE) -> None:
        self._wall = wall
        self.tolerance = tolerance
        self._drift = self._now_drift()

    def _now_drift(self) -> float:
        return self._wall() - time.monotonic()

    def check(self) -> Step | None:
        drift = self._now_drift()
        moved = drift - self._drift
        self._drift = drift
        if abs(moved) > self.tolerance:
            return Step(moved)
        return None
