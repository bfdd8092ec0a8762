"""Platform adapters: one module per platform entry (DESIGN §14).

Each converts its platform's events into the runtime's own calls
(:func:`taskpack.fire.run_fire` for a scheduled fire, :func:`taskpack.http.handle`
for the task API) and back; none holds task logic of its own.
"""

from __future__ import annotations

from datetime import datetime


def epoch_ms(text: str) -> int:
    """The RFC 3339 / ISO 8601 time ``text`` (``Z`` or an offset) as epoch
    milliseconds: a platform's scheduled time. ``ValueError`` whose message
    ends the caller's sentence: ``is not an RFC 3339 time`` or ``has no UTC
    offset``."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ValueError("has no UTC offset")
    return int(when.timestamp() * 1000)
