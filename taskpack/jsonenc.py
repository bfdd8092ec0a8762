"""JSON encoders made once, for the paths that encode per run.

``json.JSONEncoder(...).encode`` builds its C encoder anew on every call
(and a Python closure beside it); on the task API's path, which encodes a
result and a payload key per run, that set-up cost as much as the encoding
itself. :func:`encoder` builds the C encoder once and returns a function
with ``JSONEncoder.encode``'s output and exceptions, except that circular
structures are not looked for: they fail with ``RecursionError`` (as
structures nested too deeply do) instead of ``ValueError``, so callers catch
both. It needs CPython's C accelerator (``_json``), which CPython and
Pyodide both have.
"""

from __future__ import annotations

from _json import encode_basestring as _escape
from _json import encode_basestring_ascii as _escape_ascii
from _json import make_encoder as _make_encoder
from collections.abc import Callable
from typing import Any


def encoder(*, ensure_ascii: bool = True, allow_nan: bool = True, sort_keys: bool = False,
            separators: tuple[str, str] = (", ", ": "),
            default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """``json.JSONEncoder(...).encode`` with these options, made once."""
    item, key = separators
    make: Any = _make_encoder
    chunks = make(None, default or _refuse, _escape_ascii if ensure_ascii else _escape,
                  None, key, item, sort_keys, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
