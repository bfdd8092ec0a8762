"""Publishing job changes (:func:`taskpack.events.on_job_changed`)."""

from __future__ import annotations

from .. import events
from ..store import Job


def job_changed(job: Job | None) -> None:
    """Tell subscribers about ``job`` (nothing for None: no change made)."""
    if job is not None:
        events.job_changed(job)
