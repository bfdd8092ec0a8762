"""Riding out a store that is down: growing pauses, one log line per change.

A loop that talks to the store (the worker, the scheduler) keeps one
:class:`StoreHealth`. After a failure it asks :meth:`StoreHealth.failed`
how long to pause (0.2 s doubling up to 10 s) and logs a WARNING only when
the store goes from up to down, and an INFO line when it comes back; a
store that stays down for an hour writes two lines, not thousands.
"""

from __future__ import annotations

import logging

from ..store import StoreUnavailable

FIRST_PAUSE = 0.2
MAX_PAUSE = 10.0


class StoreHealth:
    """The state of one loop's store connection (see the module docstring);
    ``label`` names the loop in log lines (``worker host:1234``)."""

    def __init__(self, label: str, logger: logging.Logger) -> None:
        self.label = label
        self.logger = logger
        self.down = False
        self.failures = 0

    def failed(self, action: str, exc: BaseException) -> float:
        """Record a failure of ``action``; the seconds to pause before trying again."""
        self.failures += 1
        if not self.down:
            self.down = True
            kind = "unavailable" if isinstance(exc, StoreUnavailable) else "failing"
            self.logger.warning("%s: store %s (%s: %s); retrying with backoff until it is back",
                                self.label, kind, action, exc or type(exc).__name__,
                                exc_info=not isinstance(exc, StoreUnavailable))
        return min(MAX_PAUSE, FIRST_PAUSE * 2.0 ** min(self.failures - 1, 10))

    def ok(self) -> None:
        """Record a success; logs once when the store is back."""
        if self.down:
            self.logger.info("%s: store is back after %d failed attempt(s)", self.label,
                             self.failures)
        self.down = False
        self.failures = 0
